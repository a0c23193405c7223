"""How the chat core behaves: chosen by the operator's settings, fixed for the process."""

from __future__ import annotations

from dataclasses import dataclass, field

from bot.chat.attachments import AttachmentLimits


@dataclass(frozen=True, slots=True)
class ChatConfig:
    system_prompt: str | None
    attachment_limits: AttachmentLimits = field(default_factory=AttachmentLimits)
    generation_lookup_attempts: int = 3
    generation_lookup_delay: float = 0.5
    progress_save_interval: float = 3.0
