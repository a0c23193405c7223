"""The response to a `/chat` command: opened with the answer's first words when they come soon.

Discord wants an interaction answered within 3 seconds. Deferring at once ("thinking…") and editing the
response once the words come costs two requests before anyone sees a word; when the model answers
quickly, one response that carries the first words (and the Stop button) is both sooner and cheaper.
So the response waits for the answer's first message, and defers only if nothing was sent
`defer_after` seconds after Discord created the command: in time for its deadline whatever the model does.
"""

from __future__ import annotations

import asyncio
from typing import Any

import discord

from bot.discord.render import NO_MENTIONS
from bot.logs import get_logger

log = get_logger(__name__)


class ChatResponse:
    """Sends the response of one interaction: its first message (`open`) or a deferral, whichever comes
    first; after a deferral, `open` edits the deferred response."""

    def __init__(self, interaction: discord.Interaction[Any], *, defer_after: float) -> None:
        self.interaction = interaction
        self._deferring: asyncio.Task[None] | None = None
        self._claimed = False  # a response (the message or the deferral) is on its way
        # counted from when Discord created the interaction: a command that reached a busy bot late defers sooner
        age = discord.utils.utcnow().timestamp() - discord.utils.snowflake_time(interaction.id).timestamp()
        self._timer = asyncio.get_running_loop().call_later(max(0.0, defer_after - max(0.0, age)), self._defer)

    def _defer(self) -> None:
        if not self._claimed:
            self._claimed = True
            self._deferring = asyncio.create_task(self._send_deferral(), name="defer-chat")

    async def _send_deferral(self) -> None:
        try:
            await self.interaction.response.defer(thinking=True)
        except discord.HTTPException as exc:  # `open` then fails the same way, and says so
            log.warning("could not defer a /chat response", error=str(exc), status=exc.status)

    async def open(self, text: str, view: discord.ui.View | None) -> discord.Message:
        """The response's first message: sent as the response itself if nothing was yet, else as an edit
        of the deferred one."""
        self._timer.cancel()
        if not self._claimed:
            self._claimed = True
            sent = await self.interaction.response.send_message(
                text, view=view if view is not None else discord.utils.MISSING, allowed_mentions=NO_MENTIONS)
            if isinstance(sent.resource, discord.InteractionMessage):
                return sent.resource
            return await self.interaction.original_response()
        if self._deferring is not None:
            await self._deferring
        return await self.interaction.edit_original_response(content=text, view=view, allowed_mentions=NO_MENTIONS)

    def close(self) -> None:
        """The command is over: no deferral after it (the response was sent, or the command failed)."""
        self._timer.cancel()
