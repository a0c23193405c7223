"""Pure text helpers for showing answers in Discord: splitting, fences, footers."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from decimal import Decimal

from bot.money import usd
from bot.states import AnswerStatus

DISCORD_LIMIT = 2000
CURSOR = " ▌"
_FENCE = re.compile(r"^\s*(```+|~~~+)(.*)$")


def open_fence(text: str) -> str | None:
    """The opening line of a code fence left open at the end of `text` (e.g. "```python"), else None."""
    opener: str | None = None
    marker = ""
    for line in text.split("\n"):
        match = _FENCE.match(line)
        if not match:
            continue
        if opener is None:
            marker = match.group(1)
            opener = marker + match.group(2).strip()
        elif match.group(1).startswith(marker[:3]) and not match.group(2).strip():
            opener = None
    return opener


def _extends(char: str) -> bool:
    """Whether `char` belongs to the grapheme before it (Unicode's Extend and SpacingMark, roughly)."""
    code = ord(char)
    if code < 0x300:
        return False
    return (unicodedata.category(char) in ("Mn", "Me", "Mc")  # combining marks, variation selectors
            or code in (0x200C, 0x200D, 0xFF9E, 0xFF9F)  # ZWNJ, ZWJ, halfwidth kana voicing marks
            or 0x1F3FB <= code <= 0x1F3FF  # emoji skin tones
            or 0xE0020 <= code <= 0xE007F  # emoji tag sequences (subdivision flags)
            or 0x1160 <= code <= 0x11FF or 0xD7B0 <= code <= 0xD7FF)  # Hangul vowel and final jamo


def _regional_indicator(char: str) -> bool:
    return 0x1F1E6 <= ord(char) <= 0x1F1FF


def is_grapheme_boundary(text: str, index: int) -> bool:
    """Whether cutting `text` at `index` keeps every user-perceived character whole: combining marks,
    emoji ZWJ sequences, variation selectors, skin tones, flags (regional-indicator pairs and tag
    sequences), Hangul jamo, Indic conjuncts and CR LF. Errs towards "no" where unsure."""
    if index <= 0 or index >= len(text):
        return True
    before, after = text[index - 1], text[index]
    if before == "\r" and after == "\n":
        return False
    if _extends(after) or before == "\u200d":  # ZWJ glues the next pictograph (👨‍👩‍👧)
        return False
    if unicodedata.combining(before) == 9 and after.isalpha():  # a virama joins the next consonant
        return False
    if (0x1100 <= ord(before) <= 0x115F or 0xA960 <= ord(before) <= 0xA97F) and (
            0x1100 <= ord(after) <= 0x115F or 0xAC00 <= ord(after) <= 0xD7A3):
        return False  # a Hangul leading jamo takes what follows
    if _regional_indicator(before) and _regional_indicator(after):
        run = 0
        while index - run - 1 >= 0 and _regional_indicator(text[index - run - 1]):
            run += 1
        return run % 2 == 0  # flags pair up from the start of the run
    return True


def grapheme_floor(text: str, index: int, lowest: int = 1) -> int:
    """The nearest grapheme boundary at or before `index`, but not below `lowest`; `index` itself when
    there is none (one grapheme longer than the room there is: it has to be cut somewhere)."""
    cut = index
    while cut > lowest and not is_grapheme_boundary(text, cut):
        cut -= 1
    return cut if is_grapheme_boundary(text, cut) else index


def _cut_point(text: str, limit: int) -> int:
    """Where to cut `text` (longer than `limit`): a paragraph, else a line, else a space, else hard."""
    window = text[:limit]
    for sep in ("\n\n", "\n"):
        index = window.rfind(sep)
        if index > limit // 3:
            return index + len(sep)
    index = window.rfind(" ")
    if index > limit // 2:
        return index + 1
    return limit


def split_for_discord(text: str, limit: int = DISCORD_LIMIT) -> list[str]:
    """Split text into messages of at most `limit` characters.

    Cuts at paragraph or line boundaries where it can, never inside a grapheme (an accented letter,
    an emoji sequence, a flag), and never leaves a code block broken: a fence open at a cut is closed
    at the end of that message and reopened, with its language, at the start of the next.
    """
    if limit < 40:
        raise ValueError("limit too small to split sensibly")
    parts: list[str] = []
    rest = text
    prefix = ""
    while True:
        candidate = prefix + rest
        if len(candidate) <= limit:
            if candidate.strip():
                parts.append(candidate)
            return parts
        # room for a closing fence if we cut inside a code block
        room = limit - 4
        cut = _cut_point(candidate, room)
        if cut <= len(prefix):  # never cut inside the reopened fence line itself
            cut = min(len(candidate), max(room, len(prefix) + 1))
        cut = grapheme_floor(candidate, cut, len(prefix) + 1)
        head = candidate[:cut]
        fence = open_fence(head)
        if fence is not None:
            head = head.rstrip("\n") + "\n" + fence[:3] if not head.endswith("\n") else head + fence[:3]
            prefix = fence + "\n"
        else:
            prefix = ""
        head = head.rstrip()
        if head:
            parts.append(head)
        rest = candidate[cut:]
        if not prefix:
            rest = rest.lstrip("\n")


def format_cost(cost: Decimal | None) -> str:
    """An answer's cost in its footer."""
    if cost is None:
        return "cost unknown"
    return "free" if cost == 0 else usd(cost)


FINISH_NOTES = {
    "length": "⚠️ cut off: it reached the length limit",
    "content_filter": "⚠️ stopped by the provider's content filter",
    "error": "⚠️ the answer ended with an error",
}


def footer(*, model: str | None, tokens: int | None, cost: Decimal | None, finish_reason: str | None,
           status: AnswerStatus = AnswerStatus.COMPLETE, extra: str | None = None) -> str:
    """The one-line footer under a finished answer (Discord's small-text markdown)."""
    bits = [f"`{model}`" if model else "unknown model"]
    if tokens is not None:
        bits.append(f"{tokens:,} tokens")
    bits.append(format_cost(cost))
    line = " · ".join(bits)
    if status == AnswerStatus.STOPPED:
        line += " · ⏹️ stopped"
    elif status == AnswerStatus.INTERRUPTED:
        line += " · ⚠️ interrupted (the bot restarted)"
    note = FINISH_NOTES.get(finish_reason or "")
    if note and status == AnswerStatus.COMPLETE:
        line += f" · {note}"
    if extra:
        line += f" · {extra}"
    return f"-# {line}"


SOURCES_SHOWN = 10
SOURCES_LIMIT = 900  # characters: room is left for the answer's end, notices and the footer
_NOT_IN_URL = re.compile(r"[\s<>]")
_NOT_IN_TITLE = re.compile(r"[\[\]()<>`*_~|\\#]")


def sources_block(sources: Sequence[tuple[str, str]], limit: int = SOURCES_LIMIT) -> str:
    """The sources an answer cited, numbered, as links Discord does not unfurl (`[title](<url>)`).
    Only http(s) links; a title loses what would break the link or its markdown; cut to `limit`."""
    lines: list[str] = []
    usable = [(u, t) for u, t in sources if u.startswith(("https://", "http://")) and not _NOT_IN_URL.search(u)]
    for number, (url, title) in enumerate(usable[:SOURCES_SHOWN], 1):
        name = neutralize_mentions(_NOT_IN_TITLE.sub("", " ".join(title.split())))[:80].strip()
        lines.append(f"{number}. [{name or url.split('/')[2]}](<{url}>)")
    if not lines:
        return ""
    text, left = "**Sources**", len(usable)
    for line in lines:
        more = f"\n-# … and {left} more"
        if len(text) + 1 + len(line) + len(more) > limit:
            return text + more if text != "**Sources**" else ""
        text, left = f"{text}\n{line}", left - 1
    return text + (f"\n-# … and {left} more" if left else "")


def fit(text: str, limit: int = DISCORD_LIMIT) -> str:
    """Text for one Discord message: never longer than Discord takes, shortened with an ellipsis."""
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def thread_title(prompt: str, limit: int = 90) -> str:
    """A thread name from the first line of a prompt (Discord allows 100 characters)."""
    first = " ".join(prompt.strip().split("\n", 1)[0].split())
    first = re.sub(r"<@[!&]?\d+>", "", first).strip() or "Conversation"
    return first if len(first) <= limit else first[: grapheme_floor(first, limit - 1)].rstrip() + "…"


def neutralize_mentions(text: str) -> str:
    """Belt and braces beside allowed_mentions=none: break @everyone/@here so they never even look live."""
    return text.replace("@everyone", "@\u200beveryone").replace("@here", "@\u200bhere")
