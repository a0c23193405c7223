"""Reads a Discord message's attachments once, on arrival (Discord's CDN links expire)."""

from __future__ import annotations

from collections.abc import Sequence

import discord

from bot.chat.attachments import AttachmentLimits, Rejected, check_before_download, check_total, prepare
from bot.store.conversations import StoredAttachment


async def read_attachments(attachments: Sequence[discord.Attachment],
                           limits: AttachmentLimits) -> tuple[list[StoredAttachment], list[Rejected]]:
    """The files the turn can carry, in order, and a reason for each of the others. A file that would
    take the message past its total is refused and the next ones are still considered."""
    kept: list[StoredAttachment] = []
    rejected: list[Rejected] = []
    used = 0
    for index, attachment in enumerate(attachments):
        name = attachment.filename
        problem = (check_before_download(name, attachment.content_type, attachment.size, index, limits)
                   or check_total(name, attachment.size, used, limits))
        if problem is not None:
            rejected.append(problem)
            continue
        try:
            data = await attachment.read()
        except (discord.HTTPException, discord.NotFound) as exc:
            rejected.append(Rejected(name, f"it could not be downloaded from Discord ({exc.status})"))
            continue
        prepared = prepare(name, attachment.content_type, data, limits)
        if isinstance(prepared, StoredAttachment):
            prepared = check_total(name, prepared.size, used, limits) or prepared
        if isinstance(prepared, Rejected):
            rejected.append(prepared)
            continue
        kept.append(prepared)
        used += prepared.size
    return kept, rejected
