"""Pure text helpers for showing answers in Discord: splitting, fences, footers."""

from __future__ import annotations

import re
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

    Cuts at paragraph or line boundaries where it can, and never leaves a code block broken: a fence
    open at a cut is closed at the end of that message and reopened, with its language, at the start
    of the next.
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


def fit(text: str, limit: int = DISCORD_LIMIT) -> str:
    """Text for one Discord message: never longer than Discord takes, shortened with an ellipsis."""
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def thread_title(prompt: str, limit: int = 90) -> str:
    """A thread name from the first line of a prompt (Discord allows 100 characters)."""
    first = " ".join(prompt.strip().split("\n", 1)[0].split())
    first = re.sub(r"<@[!&]?\d+>", "", first).strip() or "Conversation"
    return first if len(first) <= limit else first[: limit - 1].rstrip() + "…"


def neutralize_mentions(text: str) -> str:
    """Belt and braces beside allowed_mentions=none: break @everyone/@here so they never even look live."""
    return text.replace("@everyone", "@\u200beveryone").replace("@here", "@\u200bhere")
