"""Unit tests for bot.chat.attachments: which files go to the model, and how."""

from __future__ import annotations

import base64

import pytest

from bot.chat.attachments import (
    AttachmentLimits,
    Rejected,
    check_before_download,
    check_total,
    data_url,
    kind_of,
    prepare,
    text_block,
)
from bot.store.conversations import StoredAttachment

LIMITS = AttachmentLimits()
KB = 1024
MB = 1024 * 1024

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + b"\x00" * 20
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"\x00" * 20
WEBP = b"RIFF" + (36).to_bytes(4, "little") + b"WEBPVP8 " + b"\x00" * 20
GIF87 = b"GIF87a" + b"\x01\x00\x01\x00" + b"\x00" * 10
GIF89 = b"GIF89a" + b"\x01\x00\x01\x00" + b"\x00" * 10
PDF = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n"


# -- kind_of --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("filename", "content_type", "expected"), [
    ("a.png", "image/png", "image"),
    ("a.jpg", "image/jpeg", "image"),
    ("a.webp", "image/webp", "image"),
    ("a.gif", "image/gif", "image"),
    ("photo", "image/png", "image"),  # no extension, the MIME type decides
    ("a.PNG", "IMAGE/PNG; charset=binary", "image"),  # case and parameters do not matter
    ("doc.pdf", "application/pdf", "pdf"),
    ("doc", "application/pdf", "pdf"),
    ("notes", "text/plain; charset=utf-8", "text"),
    ("data", "application/json", "text"),
    ("conf", "application/x-yaml", "text"),
    ("feed", "application/xml", "text"),
    ("run", "application/x-sh", "text"),
    ("archive.zip", "application/zip", None),
    ("movie.mp4", "video/mp4", None),
    ("drawing.svg", "image/svg+xml", None),  # an image type the models do not take
    ("program.exe", None, None),
])
def test_kind_of_by_mime(filename: str, content_type: str | None, expected: str | None) -> None:
    assert kind_of(filename, content_type) == expected


@pytest.mark.parametrize(("filename", "expected"), [
    ("cat.png", "image"),
    ("cat.JPG", "image"),
    ("cat.jpeg", "image"),
    ("cat.webp", "image"),
    ("cat.gif", "image"),
    ("paper.pdf", "pdf"),
    ("Paper.PDF", "pdf"),
    ("main.py", "text"),
    ("README.md", "text"),
    ("lib.rs", "text"),
    ("data.csv", "text"),
    ("query.sql", "text"),
    ("archive.tar.gz", None),
    ("noextension", None),
    ("image.bmp", None),
])
def test_kind_of_by_extension_without_mime(filename: str, expected: str | None) -> None:
    assert kind_of(filename, None) == expected
    assert kind_of(filename, "") == expected


def test_octet_stream_falls_back_to_the_extension() -> None:
    assert kind_of("cat.png", "application/octet-stream") == "image"
    assert kind_of("paper.pdf", "application/octet-stream") == "pdf"
    assert kind_of("main.go", "application/octet-stream") == "text"
    assert kind_of("blob.bin", "application/octet-stream") is None


def test_a_declared_non_image_type_wins_over_an_image_extension() -> None:
    # Discord says it is text: treat it as text (the content check in prepare() then decides)
    assert kind_of("fake.png", "text/plain") == "text"
    assert kind_of("fake.png", "application/zip") is None


def test_multi_part_text_extension_is_recognised() -> None:
    assert kind_of("config.env.example", None) == "text"
    assert kind_of(".env.example", None) == "text"


# -- check_before_download ------------------------------------------------------------------------------


def test_acceptable_files_pass() -> None:
    assert check_before_download("a.png", "image/png", 1 * MB, 0, LIMITS) is None
    assert check_before_download("a.txt", "text/plain", 512 * KB, 9, LIMITS) is None  # exactly at the caps
    assert check_before_download("a.pdf", "application/pdf", 20 * MB, 3, LIMITS) is None


def test_too_many_files() -> None:
    rejected = check_before_download("eleventh.png", "image/png", 10, 10, LIMITS)
    assert rejected == Rejected("eleventh.png", "a message may carry at most 10 files")
    assert check_before_download("x.png", "image/png", 10, 2, AttachmentLimits(max_files=2)) is not None


def test_too_many_is_checked_before_the_type() -> None:
    rejected = check_before_download("x.zip", "application/zip", 10, 10, LIMITS)
    assert rejected is not None
    assert "at most 10 files" in rejected.reason


@pytest.mark.parametrize(("filename", "content_type", "size", "expected"), [
    ("big.png", "image/png", 12 * MB, "it is 12 MB; image files may be at most 10 MB"),
    ("big.txt", "text/plain", 600 * KB, "it is 600 KB; text files may be at most 512 KB"),
    ("big.pdf", "application/pdf", 25 * MB + MB // 2, "it is 25.5 MB; pdf files may be at most 20 MB"),
    ("big.log", None, 2 * MB, "it is 2 MB; text files may be at most 512 KB"),
])
def test_too_large_for_its_kind(filename: str, content_type: str | None, size: int, expected: str) -> None:
    rejected = check_before_download(filename, content_type, size, 0, LIMITS)
    assert rejected == Rejected(filename, expected)


def test_one_byte_over_is_too_large() -> None:
    limits = AttachmentLimits(max_text_bytes=2 * KB)
    assert check_before_download("a.txt", "text/plain", 2 * KB, 0, limits) is None
    rejected = check_before_download("a.txt", "text/plain", 2 * KB + 1, 0, limits)
    assert rejected is not None
    assert "at most 2 KB" in rejected.reason


def test_sizes_just_over_a_limit_read_differently() -> None:
    limits = AttachmentLimits(max_text_bytes=100)
    rejected = check_before_download("a.txt", "text/plain", 200, 0, limits)
    assert rejected is not None
    assert rejected.reason == "it is 0.2 KB; text files may be at most 0.1 KB"
    over = check_before_download("a.png", "image/png", 10 * MB + 60 * KB, 0, LIMITS)
    assert over is not None and over.reason == "it is 10.06 MB; image files may be at most 10 MB"


def test_unsupported_type_names_the_type() -> None:
    rejected = check_before_download("a.zip", "application/zip", 10, 0, LIMITS)
    assert rejected is not None
    assert rejected.filename == "a.zip"
    assert "application/zip" in rejected.reason
    assert "not supported" in rejected.reason


def test_unsupported_type_without_mime_names_the_extension_or_unknown() -> None:
    by_suffix = check_before_download("Setup.EXE", None, 10, 0, LIMITS)
    assert by_suffix is not None
    assert "files of type .EXE are not supported" in by_suffix.reason
    no_hint = check_before_download("mystery", None, 10, 0, LIMITS)
    assert no_hint is not None
    assert "files of type unknown are not supported" in no_hint.reason


# -- prepare --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("data", "mime"), [
    (PNG, "image/png"), (JPEG, "image/jpeg"), (WEBP, "image/webp"), (GIF87, "image/gif"), (GIF89, "image/gif"),
])
def test_images_are_sniffed_from_their_bytes(data: bytes, mime: str) -> None:
    prepared = prepare("picture.png", "image/png", data, LIMITS)  # the declared type is not trusted
    assert prepared == StoredAttachment("picture.png", mime, "image", len(data), data=data)


def test_a_png_name_on_something_else_is_rejected() -> None:
    prepared = prepare("notreally.png", "image/png", b"<html>not an image</html>", LIMITS)
    assert isinstance(prepared, Rejected)
    assert prepared.filename == "notreally.png"
    assert "does not look like a PNG, JPEG, WebP or GIF image" in prepared.reason


def test_riff_that_is_not_webp_is_rejected() -> None:
    wav = b"RIFF" + (36).to_bytes(4, "little") + b"WAVEfmt " + b"\x00" * 20
    assert isinstance(prepare("sound.webp", None, wav, LIMITS), Rejected)


def test_empty_image_is_rejected() -> None:
    assert isinstance(prepare("empty.png", "image/png", b"", LIMITS), Rejected)


def test_image_larger_than_the_limit_after_download_is_rejected() -> None:
    limits = AttachmentLimits(max_image_bytes=len(PNG) - 1)
    prepared = prepare("a.png", "image/png", PNG, limits)
    assert isinstance(prepared, Rejected)
    assert "images may be at most" in prepared.reason


def test_pdf_magic_is_checked() -> None:
    prepared = prepare("paper.pdf", "application/pdf", PDF, LIMITS)
    assert prepared == StoredAttachment("paper.pdf", "application/pdf", "pdf", len(PDF), data=PDF)
    fake = prepare("paper.pdf", "application/pdf", b"PK\x03\x04 a zip", LIMITS)
    assert isinstance(fake, Rejected)
    assert "does not look like a PDF" in fake.reason


def test_pdf_mime_is_normalised() -> None:
    prepared = prepare("paper.pdf", "application/octet-stream", PDF, LIMITS)
    assert isinstance(prepared, StoredAttachment)
    assert prepared.mime == "application/pdf"


def test_utf8_text_is_decoded() -> None:
    raw = "héllo wörld — ✓\n".encode()
    prepared = prepare("notes.txt", "text/plain; charset=utf-8", raw, LIMITS)
    assert prepared == StoredAttachment("notes.txt", "text/plain", "text", len(raw), text="héllo wörld — ✓\n")


def test_utf8_bom_is_stripped() -> None:
    raw = b"\xef\xbb\xbfprint('hi')\n"
    prepared = prepare("main.py", None, raw, LIMITS)
    assert isinstance(prepared, StoredAttachment)
    assert prepared.text == "print('hi')\n"
    assert prepared.mime == "text/plain"  # no declared type: plain text
    assert prepared.size == len(raw)
    assert prepared.data is None


def test_invalid_utf8_falls_back_to_latin1() -> None:
    raw = "café, naïve".encode("latin-1")
    prepared = prepare("old.csv", "text/csv", raw, LIMITS)
    assert isinstance(prepared, StoredAttachment)
    assert prepared.text == "café, naïve"
    assert prepared.mime == "text/csv"


def test_binary_looking_text_is_rejected() -> None:
    prepared = prepare("dump.log", "text/plain", b"abc\x00\x01\x02def", LIMITS)
    assert isinstance(prepared, Rejected)
    assert prepared.filename == "dump.log"
    assert "binary" in prepared.reason


def test_nul_beyond_the_sniffed_prefix_is_tolerated() -> None:
    raw = b"a" * 8192 + b"\x00"
    assert isinstance(prepare("big.txt", "text/plain", raw, LIMITS), StoredAttachment)


def test_a_png_declared_as_text_is_rejected_as_binary() -> None:
    prepared = prepare("fake.png", "text/plain", PNG, LIMITS)
    assert isinstance(prepared, Rejected)
    assert "binary" in prepared.reason


def test_empty_text_file_is_kept() -> None:
    prepared = prepare("empty.txt", "text/plain", b"", LIMITS)
    assert prepared == StoredAttachment("empty.txt", "text/plain", "text", 0, text="")


def test_unsupported_type_is_rejected_by_prepare_too() -> None:
    prepared = prepare("a.zip", "application/zip", b"PK\x03\x04", LIMITS)
    assert isinstance(prepared, Rejected)
    assert "not supported" in prepared.reason


# -- Rejected, data_url, text_block ---------------------------------------------------------------------


def test_rejected_message_names_the_file() -> None:
    assert Rejected("cat.bmp", "files of type image/bmp are not supported").message() == (
        "`cat.bmp` was not included: files of type image/bmp are not supported.")


def test_rejected_message_from_a_real_check() -> None:
    rejected = check_before_download("huge.png", "image/png", 11 * MB, 0, LIMITS)
    assert rejected is not None
    assert rejected.message() == "`huge.png` was not included: it is 11 MB; image files may be at most 10 MB."


def test_data_url_round_trips() -> None:
    attachment = StoredAttachment("a.jpg", "image/jpeg", "image", len(JPEG), data=JPEG)
    url = data_url(attachment)
    prefix = "data:image/jpeg;base64,"
    assert url.startswith(prefix)
    assert base64.b64decode(url[len(prefix):]) == JPEG


def test_data_url_needs_data() -> None:
    with pytest.raises(AssertionError):
        data_url(StoredAttachment("a.txt", "text/plain", "text", 1, text="x"))


def test_text_block_names_the_file_and_fences_the_text() -> None:
    attachment = StoredAttachment("main.py", "text/x-python", "text", 12, text="print('hi')")
    assert text_block(attachment) == "File `main.py`:\n```\nprint('hi')\n```"


def test_text_block_uses_a_longer_fence_when_the_text_has_one() -> None:
    text = "# README\n```python\nprint('hi')\n```\n"
    attachment = StoredAttachment("README.md", "text/markdown", "text", len(text), text=text)
    assert text_block(attachment) == f"File `README.md`:\n````\n{text}\n````"


def test_text_block_with_no_text() -> None:
    attachment = StoredAttachment("empty.txt", "text/plain", "text", 0, text=None)
    assert text_block(attachment) == "File `empty.txt`:\n```\n\n```"


def test_text_block_fence_is_longer_than_any_run_in_the_text() -> None:
    text = "How to nest fences:\n````markdown\n```python\nx = 1\n```\n````\nThe end.\n"
    block = text_block(StoredAttachment("nesting.md", "text/markdown", "text", len(text), text=text))
    fence = block.split("\n")[1]
    assert set(fence) == {"`"}
    assert len(fence) > 4
    assert block.endswith("\n" + fence)


def test_a_messages_files_are_bounded_in_total() -> None:
    limits = AttachmentLimits(max_total_bytes=10 * KB)
    assert check_total("a.png", 6 * KB, 0, limits) is None
    assert check_total("b.png", 4 * KB, 6 * KB, limits) is None  # exactly the total
    refused = check_total("c.pdf", 5 * KB, 6 * KB, limits)
    assert refused is not None and refused.message() == (
        "`c.pdf` was not included: with the files before it this message would carry 11 KB; "
        "a message's files may be at most 10 KB in all.")
