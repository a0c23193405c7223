"""Reads a Discord message's attachments once, on arrival (Discord's CDN links expire)."""

from __future__ import annotations

from collections.abc import Sequence

import discord

from bot.chat.attachments import AttachmentLimits, Rejected, check_before_download, prepare
from bot.store.conversations import StoredAttachment


async def read_attachments(attachments: Sequence[discord.Attachment],
                           limits: AttachmentLimits) -> tuple[list[StoredAttachment], list[Rejected]]:
    kept: list[StoredAttachment] = []
    rejected: list[Rejected] = []
    for index, attachment in enumerate(attachments):
        problem = check_before_download(attachment.filename, attachment.content_type, attachment.size, index, limits)
        if problem is not None:
            rejected.append(problem)
            continue
        try:
            data = await attachment.read()
        except (discord.HTTPException, discord.NotFound) as exc:
            rejected.append(Rejected(attachment.filename, f"it could not be downloaded from Discord ({exc.status})"))
            continue
        prepared = prepare(attachment.filename, attachment.content_type, data, limits)
        (rejected if isinstance(prepared, Rejected) else kept).append(prepared)  # type: ignore[arg-type]
    return kept, rejected
