"""Who said what in a conversation several members share: pure functions.

Every user message sent to a model carries its speaker twice over: the message's `name` field, in
the narrow form OpenAI-compatible providers accept (`^[A-Za-z0-9_-]{1,64}$`), and, once two or more
people have spoken, a short "Name: " prefix in the text itself, because many providers drop `name`.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

from bot.store.conversations import Turn

GROUP_NOTE = ("This conversation takes place in a Discord server, and several members may take part in it. "
              "When more than one has spoken, each of their messages starts with the author's name.")
NAME_MAX = 64
LABEL_MAX = 32
_NOT_NAME = re.compile(r"[^A-Za-z0-9_-]+")
_SPACES = re.compile(r"\s+")


def name_field(display_name: str | None, author_id: int | None) -> str | None:
    """The `name` of a user message (None when the display name is unknown): accents folded to ASCII,
    every other run of characters the providers refuse made one `_`; a name made only of such characters
    becomes `member_<last digits of the id>`."""
    if display_name is None:
        return None
    folded = unicodedata.normalize("NFKD", display_name or "").encode("ascii", "ignore").decode()
    name = _NOT_NAME.sub("_", folded).strip("_")[:NAME_MAX]
    if name:
        return name
    return f"member_{str(author_id or 0)[-6:]}"


def label(display_name: str | None, author_id: int | None) -> str:
    """The name shown to the model before a message's text: one line, no colon, at most `LABEL_MAX`
    characters (a display name can hold newlines or a fake "Assistant:" that would read as a new turn)."""
    text = _SPACES.sub(" ", (display_name or "").replace(":", " ")).strip()
    text = "".join(ch for ch in text if unicodedata.category(ch)[0] != "C")[:LABEL_MAX].strip()
    return text or f"member {str(author_id or 0)[-6:]}"


def speaker_labels(turns: Iterable[Turn]) -> dict[int, str]:
    """One label per author of these user turns, in order of first appearance, each its latest display
    name; two members showing the same name are told apart ("Sam", "Sam (2)")."""
    latest: dict[int, str | None] = {}
    for turn in turns:
        if turn.role == "user" and turn.author_id is not None and (turn.author_id not in latest or turn.author_name):
            latest[turn.author_id] = turn.author_name
    labels: dict[int, str] = {}
    taken: dict[str, int] = {}
    for author_id, display in latest.items():
        base = label(display, author_id)
        count = taken.get(base.casefold(), 0) + 1
        taken[base.casefold()] = count
        labels[author_id] = base if count == 1 else f"{base} ({count})"
    return labels
