"""From stored turns to the messages a model sees, trimmed to its context window: pure functions."""

from __future__ import annotations

import base64
import binascii
import math
import re
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bot.chat.attachments import data_url, text_block
from bot.chat.speakers import GROUP_NOTE, name_field, speaker_labels
from bot.openrouter.types import Message, file_part, image_part, text_part
from bot.states import AttachmentKind, TurnStatus
from bot.store.conversations import Turn

IMAGE_TOKENS = 1_100  # a conservative guess for one image; providers count 85–1,600
PDF_TOKENS_PER_KB = 12  # realistic, for trimming; a hold counts pages (`worst_case_prompt`)
# Worst cases, for holds: a model reading a PDF natively sees each page's text and an image of it
# (Anthropic documents 1,500–3,000 text tokens a page plus the page image; others count less).
PDF_TOKENS_PER_PAGE = 5_000
PDF_BYTES_PER_PAGE = 2_048  # pages assumed when none can be counted (encrypted, unreadable)
PAGE_OBJECT = re.compile(rb"/Type\s*/Page(?![A-Za-z0-9])")  # a page, not the `/Pages` tree
OBJECT_STREAM = re.compile(rb"/Type\s*/ObjStm\b")
STREAM_START = re.compile(rb"stream\r?\n")
MAX_INFLATED = 64 * 1024 * 1024
MESSAGE_OVERHEAD = 4
ANSWERABLE = frozenset({TurnStatus.COMPLETE, TurnStatus.STOPPED, TurnStatus.INTERRUPTED, TurnStatus.ERROR})


def estimate_text_tokens(text: str) -> int:
    """A deliberately generous estimate: about 3.5 characters a token for English and code, and a
    token for every other character (CJK scripts and emoji take one or more tokens a character)."""
    ascii_chars = len(text.encode("ascii", "ignore"))
    return math.ceil(ascii_chars / 3.5) + (len(text) - ascii_chars)


def estimate_tokens(message: Message) -> int:
    content: Any = message.get("content")
    tokens = MESSAGE_OVERHEAD
    if isinstance(content, str):
        return tokens + estimate_text_tokens(content)
    for part in content or ():
        kind = part.get("type")
        if kind == "text":
            tokens += estimate_text_tokens(part["text"])
        elif kind == "image_url":
            tokens += IMAGE_TOKENS
        elif kind == "file":
            tokens += PDF_TOKENS_PER_KB * (len(part["file"].get("file_data", "")) * 3 // 4 // 1024 + 1)
    return tokens


def pdf_pages(data: bytes) -> int:
    """Pages in a PDF, counted generously: its page objects, in the file and in its compressed object
    streams (PDF 1.5+ keeps them there); a page per `PDF_BYTES_PER_PAGE` when none can be read."""
    pages = len(PAGE_OBJECT.findall(data))
    for found in OBJECT_STREAM.finditer(data):
        start = STREAM_START.search(data, found.end())
        end = data.find(b"endstream", start.end()) if start else -1
        if start is None or end < 0:
            continue
        try:
            pages += len(PAGE_OBJECT.findall(zlib.decompressobj().decompress(data[start.end():end], MAX_INFLATED)))
        except zlib.error:
            continue
    return pages or max(1, math.ceil(len(data) / PDF_BYTES_PER_PAGE))


def file_bytes(part: dict[str, Any]) -> bytes:
    """The bytes of a `file` part's data URL (empty when it has none or they do not decode)."""
    url = str(part["file"].get("file_data", ""))
    try:
        return base64.b64decode(url.partition(",")[2] if url.startswith("data:") else url)
    except (binascii.Error, ValueError):
        return b""


@dataclass(frozen=True, slots=True)
class WorstPrompt:
    tokens: int
    pdf_pages: int


def worst_case_prompt(messages: Sequence[Message]) -> WorstPrompt:
    """What a prompt may cost at most, for a hold: a token per byte of text (byte-level tokenizers
    spend up to 4 on a character of a rare script) and `PDF_TOKENS_PER_PAGE` for every PDF page."""
    tokens = pages = 0
    for message in messages:
        content: Any = message.get("content")
        tokens += MESSAGE_OVERHEAD
        for part in [text_part(content)] if isinstance(content, str) else content or ():
            kind = part.get("type")
            if kind == "text":
                tokens += len(part["text"].encode())
            elif kind == "image_url":
                tokens += IMAGE_TOKENS
            elif kind == "file":
                found = pdf_pages(file_bytes(part))
                pages += found
                tokens += found * PDF_TOKENS_PER_PAGE
    return WorstPrompt(tokens, pages)


def count_images(messages: Sequence[Message]) -> int:
    return sum(1 for m in messages if isinstance(m.get("content"), list)
               for p in m["content"] if p.get("type") == "image_url")


def turn_message(turn: Turn, speaker: str | None = None) -> Message | None:
    """One stored turn as a chat message; None when there is nothing to say. A user message carries
    its author in `name`, and its text starts with `speaker` when one is given (a group conversation)."""
    if turn.role == "assistant":
        if turn.status not in ANSWERABLE or not turn.content.strip():
            return None
        return {"role": "assistant", "content": turn.content}
    message = _user_message(turn, speaker)
    name = name_field(turn.author_name, turn.author_id)
    if message is not None and name is not None:
        message["name"] = name
    return message


def _user_message(turn: Turn, speaker: str | None) -> Message | None:
    parts: list[dict[str, Any]] = []
    texts = [turn.content] if turn.content.strip() else []
    for attachment in turn.attachments:
        if attachment.kind == AttachmentKind.TEXT:
            texts.append(text_block(attachment))
    if texts:
        parts.append(text_part("\n\n".join(texts)))
    for attachment in turn.attachments:
        if attachment.kind == AttachmentKind.IMAGE:
            if attachment.data is not None:
                parts.append(image_part(data_url(attachment)))
            else:
                parts.append(text_part(f"[an earlier image, {attachment.filename}, is no longer shown]"))
        elif attachment.kind == AttachmentKind.PDF:
            if attachment.data is not None:
                parts.append(file_part(attachment.filename, data_url(attachment)))
            else:
                parts.append(text_part(f"[an earlier PDF, {attachment.filename}, is no longer sent]"))
    if not parts:
        return None
    if speaker is not None:
        if parts[0]["type"] != "text":
            parts.insert(0, text_part(""))
        parts[0] = text_part(f"{speaker}: {parts[0]['text']}".rstrip())
    if len(parts) == 1 and parts[0]["type"] == "text":
        return {"role": "user", "content": parts[0]["text"]}
    return {"role": "user", "content": parts}


def ordered_history(turns: Sequence[Turn], current: Turn) -> list[Turn]:
    """The turns before `current`, each answer right after the question it answers.

    Messages can arrive while an answer streams; ordering by id alone would put a later question
    before an earlier answer. A regenerated answer that succeeded has replaced the earlier one in
    the store (superseded answers are not read); of the answers left, the first is the question's.
    """
    answers: dict[int, list[Turn]] = {}
    for turn in turns:
        if turn.role == "assistant" and turn.reply_to is not None:
            answers.setdefault(turn.reply_to, []).append(turn)
    ordered: list[Turn] = []
    for turn in turns:
        if turn.role != "user" or turn.id >= current.id:
            continue
        ordered.append(turn)
        # one answer per question: a later one failed (the one it would have replaced is still there)
        ordered.extend(answers.get(turn.id, ())[:1])
    return ordered


@dataclass(frozen=True, slots=True)
class BuiltContext:
    messages: list[Message]
    dropped_turns: int
    prompt_tokens: int  # estimated


def build_context(system_prompt: str | None, history: Sequence[Turn], current: Turn, *,
                  context_length: int, reserve_for_answer: int, group: bool = False) -> BuiltContext:
    """System prompt + as much recent history as fits + the newest turn.

    History is dropped oldest first; the system prompt and the newest turn always stay. In a `group`
    conversation (on a server) the system prompt says several people may speak, and once two have,
    every user message starts with its speaker's name.
    """
    if group:
        system_prompt = f"{system_prompt}\n\n{GROUP_NOTE}" if system_prompt else GROUP_NOTE
    system: list[Message] = [{"role": "system", "content": system_prompt}] if system_prompt else []
    earlier = ordered_history(history, current)
    labels = speaker_labels([*earlier, current]) if group else {}
    if len(labels) < 2:
        labels = {}

    def as_message(turn: Turn) -> Message | None:
        return turn_message(turn, labels.get(turn.author_id) if turn.author_id is not None else None)

    newest = as_message(current) or {"role": "user", "content": current.content or "(empty message)"}
    budget = max(0, context_length - reserve_for_answer) if context_length else 1 << 60
    used = sum(estimate_tokens(m) for m in system) + estimate_tokens(newest)
    candidates = [m for m in (as_message(t) for t in earlier) if m is not None]
    kept: list[Message] = []
    for message in reversed(candidates):
        cost = estimate_tokens(message)
        if used + cost > budget:
            break
        kept.append(message)
        used += cost
    kept.reverse()
    # a conversation should not open with an orphaned answer
    while kept and kept[0]["role"] == "assistant":
        used -= estimate_tokens(kept.pop(0))
    dropped = len(candidates) - len(kept)
    return BuiltContext(messages=[*system, *kept, newest], dropped_turns=dropped, prompt_tokens=used)
