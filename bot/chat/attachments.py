"""Which files a turn can carry to the model, and how: pure functions.

Images (PNG, JPEG, WebP, GIF) go as base64 data URLs in `image_url` parts; text-like files as text
with their file name; PDFs as `file` parts. Anything too large (alone, or with the files before it
in the same message), too many, or of another type gets a clear reason naming the file, and the rest
of the turn still goes through. Later turns re-send only the newest few images and PDFs.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from pathlib import PurePosixPath

from bot.states import AttachmentKind
from bot.store.conversations import StoredAttachment

IMAGE_MIMES = {"image/png": "png", "image/jpeg": "jpeg", "image/webp": "webp", "image/gif": "gif"}
_IMAGE_EXT = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".webp": "image/webp",
              ".gif": "image/gif"}
TEXT_EXTENSIONS = frozenset(
    ".txt .md .markdown .rst .log .csv .tsv .json .jsonl .yaml .yml .toml .ini .cfg .xml .html .htm .css .sql "
    ".py .pyi .js .mjs .ts .tsx .jsx .java .kt .c .h .cpp .hpp .cc .cs .go .rs .rb .php .swift .sh .bash .zsh "
    ".ps1 .lua .r .m .scala .hs .ex .exs .erl .clj .dart .vue .svelte .tex .diff .patch .env.example".split()
)
_TEXT_MIMES = ("text/", "application/json", "application/xml", "application/x-yaml", "application/yaml",
               "application/toml", "application/javascript", "application/x-sh", "application/sql")


@dataclass(frozen=True, slots=True)
class AttachmentLimits:
    max_files: int = 10
    max_image_bytes: int = 10 * 1024 * 1024
    max_text_bytes: int = 512 * 1024
    max_pdf_bytes: int = 20 * 1024 * 1024
    max_total_bytes: int = 25 * 1024 * 1024  # all the files of one message together
    images_resent: int = 4  # only the newest few images of a conversation are sent again
    # (PDFs likewise: those of the newest `bot.store.conversations.PDFS_RESENT` turns that carry any)


@dataclass(frozen=True, slots=True)
class Rejected:
    filename: str
    reason: str

    def message(self) -> str:
        return f"`{self.filename}` was not included: {self.reason}."


def _mb(size: int) -> str:
    if size >= 1024 * 1024:
        return f"{size / (1024 * 1024):.2f}".rstrip("0").rstrip(".") + " MB"
    return f"{size / 1024:.1f}".rstrip("0").rstrip(".") + " KB"


def kind_of(filename: str, content_type: str | None) -> AttachmentKind | None:
    """What the file is to the model, or None when the bot cannot pass it on."""
    mime = (content_type or "").split(";")[0].strip().lower()
    suffix = PurePosixPath(filename.lower()).suffix
    if mime in IMAGE_MIMES or (not mime and suffix in _IMAGE_EXT) or (
            mime == "application/octet-stream" and suffix in _IMAGE_EXT):
        return AttachmentKind.IMAGE
    if mime == "application/pdf" or suffix == ".pdf":
        return AttachmentKind.PDF
    lowered = filename.lower()
    if mime.startswith(_TEXT_MIMES) or suffix in TEXT_EXTENSIONS or any(
            lowered.endswith(ext) for ext in TEXT_EXTENSIONS if ext.count(".") > 1):
        return AttachmentKind.TEXT
    return None


def check_before_download(filename: str, content_type: str | None, size: int, index: int,
                          limits: AttachmentLimits) -> Rejected | None:
    """Refuse what need not be downloaded at all: too many, too large, unsupported."""
    if index >= limits.max_files:
        return Rejected(filename, f"a message may carry at most {limits.max_files} files")
    kind = kind_of(filename, content_type)
    if kind is None:
        shown = content_type or PurePosixPath(filename).suffix or "unknown"
        return Rejected(filename, f"files of type {shown} are not supported (images, text, code and PDF are)")
    cap = {AttachmentKind.IMAGE: limits.max_image_bytes, AttachmentKind.TEXT: limits.max_text_bytes,
           AttachmentKind.PDF: limits.max_pdf_bytes}[kind]
    if size > cap:
        return Rejected(filename, f"it is {_mb(size)}; {kind} files may be at most {_mb(cap)}")
    return None


def check_total(filename: str, size: int, used: int, limits: AttachmentLimits) -> Rejected | None:
    """Refuse a file that would take the message's files past `max_total_bytes` (`used` so far)."""
    if used + size > limits.max_total_bytes:
        return Rejected(filename, f"with the files before it this message would carry {_mb(used + size)}; "
                                  f"a message's files may be at most {_mb(limits.max_total_bytes)} in all")
    return None


def _sniff_image(data: bytes) -> str | None:
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    return None


def prepare(filename: str, content_type: str | None, data: bytes,
            limits: AttachmentLimits) -> StoredAttachment | Rejected:
    """Turn downloaded bytes into what is stored and sent, checking the content itself."""
    kind = kind_of(filename, content_type)
    if kind == AttachmentKind.IMAGE:
        mime = _sniff_image(data)
        if mime is None:
            return Rejected(filename, "it does not look like a PNG, JPEG, WebP or GIF image")
        if len(data) > limits.max_image_bytes:
            return Rejected(filename, f"it is {_mb(len(data))}; images may be at most {_mb(limits.max_image_bytes)}")
        return StoredAttachment(filename, mime, AttachmentKind.IMAGE, len(data), data=data)
    if kind == AttachmentKind.PDF:
        if not data.startswith(b"%PDF"):
            return Rejected(filename, "it does not look like a PDF")
        return StoredAttachment(filename, "application/pdf", AttachmentKind.PDF, len(data), data=data)
    if kind == AttachmentKind.TEXT:
        if b"\x00" in data[:8192]:
            return Rejected(filename, "it looks like a binary file, not text")
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            text = data.decode("latin-1")
        mime = (content_type or "text/plain").split(";")[0].strip()
        return StoredAttachment(filename, mime, AttachmentKind.TEXT, len(data), text=text)
    return Rejected(filename, "files of this type are not supported")


def data_url(attachment: StoredAttachment) -> str:
    assert attachment.data is not None
    return f"data:{attachment.mime};base64,{base64.b64encode(attachment.data).decode('ascii')}"


def text_block(attachment: StoredAttachment) -> str:
    """A text file as the model sees it: its name, then its content in a fence."""
    longest = max((len(run) for run in re.findall(r"`+", attachment.text or "")), default=0)
    fence = "`" * max(3, longest + 1)
    return f"File `{attachment.filename}`:\n{fence}\n{attachment.text or ''}\n{fence}"
