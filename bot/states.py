"""The named states that cross layers: stored by `store/`, decided by the core, shown by `discord/`.

They are `StrEnum`s, so the database keeps plain text (see the CHECK constraints in `migrations/`)
and a state compares equal to its text.
"""

from __future__ import annotations

from enum import StrEnum


class TurnStatus(StrEnum):
    """A stored answer's state (`turns.status`)."""

    STREAMING = "streaming"  # being written now; found at start, it was cut by a crash
    COMPLETE = "complete"
    STOPPED = "stopped"  # the Stop button, or a shutdown
    ERROR = "error"
    INTERRUPTED = "interrupted"  # the process died (or was cancelled) while it streamed


class AnswerStatus(StrEnum):
    """How an answer ended, as shown to people: a stored status, or a refusal (nothing stored)."""

    COMPLETE = "complete"
    STOPPED = "stopped"
    ERROR = "error"
    INTERRUPTED = "interrupted"
    REFUSED = "refused"  # policy, quota or vision check said no before anything was requested

    @property
    def stored(self) -> TurnStatus:
        if self is AnswerStatus.REFUSED:
            raise ValueError("a refusal is not stored as a turn")
        return TurnStatus(self.value)


class CostSource(StrEnum):
    """Where a settled cost came from (`reservations.settled_from`)."""

    USAGE = "usage"  # usage.cost in the stream
    GENERATION = "generation"  # OpenRouter's /generation endpoint
    ESTIMATE = "estimate"  # the catalogue's prices × counted tokens
    TURN = "turn"  # a crash left the hold open; the turn had recorded its cost
    RESERVED = "reserved"  # the cost could not be known: the full hold is charged
    RELEASED = "released"  # nothing was requested (the request failed before it was sent): $0


class AttachmentKind(StrEnum):
    """What a stored file is to the model (`attachments.kind`)."""

    IMAGE = "image"  # vision input
    TEXT = "text"  # decoded and sent as text
    PDF = "pdf"  # sent as a file part


class NoticeKind(StrEnum):
    """How an answer's view shows a notice from the core."""

    NOTE = "note"  # kept under the answer (trimmed context, lowered budget, quota warnings)
    PROGRESS = "progress"  # transient: shown while nothing else is, replaced once the answer flows


class ChannelKind(StrEnum):
    """Where a message was written, as far as conversations care."""

    THREAD = "thread"
    DM = "dm"
    CHANNEL = "channel"  # a server's text channel: a mention starts a conversation there


class SearchMode(StrEnum):
    """When answers on a server search the web (`guild_settings.web_search`)."""

    OFF = "off"
    ON_REQUEST = "on_request"  # when `/chat search:True` (or a model's `:online`) asks
    ALWAYS = "always"


class Effort(StrEnum):
    """How hard a reasoning model thinks (OpenRouter's `reasoning.effort`)."""

    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
