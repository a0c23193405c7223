"""Shows a streaming answer in Discord: the first words at once, then paced edits.

Text is split with `split_for_discord`; a message that fills up is finished and the answer goes on in
a new message. Every write goes through the `ChannelPacer`; no write may mention anyone.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import time
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any, TypeVar

import discord
from discord.http import MultipartParameters, Route

from bot.chat.text import CURSOR, DISCORD_LIMIT, footer, neutralize_mentions, sources_block, split_for_discord
from bot.chat.view import AnswerOutcome
from bot.discord.pacing import ChannelPacer, Rank
from bot.logs import get_logger
from bot.metrics import Metrics
from bot.retry import call_with_retries
from bot.states import AnswerStatus, NoticeKind

log = get_logger(__name__)
T = TypeVar("T")

NO_MENTIONS = discord.AllowedMentions.none()
NO_MENTIONS_PAYLOAD = NO_MENTIONS.to_dict()
BODY_LIMIT = DISCORD_LIMIT - 200  # room for the cursor, notices and the footer
THINKING = "💭 *Thinking…*"
WAITING = "⏳ *Waiting for the previous answer in this conversation…*"

OpenFirst = Callable[[str, discord.ui.View | None], Awaitable[discord.Message]]  # posts the first message: text, view
Opened = Callable[[list[int]], Awaitable[None]]
SendMore = Callable[..., Awaitable[discord.Message]]  # posts a further message: text, and a view when given
FinalView = Callable[[AnswerOutcome], Awaitable[discord.ui.View | None]]  # the buttons under a finished answer


class DiscordAnswerView:
    """One answer, possibly spanning several Discord messages. Implements the core's `AnswerView`."""

    def __init__(self, *, open_first: OpenFirst, send_more: SendMore, channel_id: int, pacer: ChannelPacer,
                 interval: float = 1.0, show_reasoning: bool = True, stop_view: discord.ui.View | None = None,
                 notices: list[str] | None = None, final_retry_budget: float = 60.0,
                 first_via_channel: tuple[discord.abc.Messageable, float] | None = None,
                 metrics: Metrics | None = None, asked_at: float | None = None,
                 final_view: FinalView | None = None,
                 http: discord.http.HTTPClient | None = None, interaction: discord.Interaction[Any] | None = None,
                 first_words_wait: float = 0.0) -> None:
        self._open_first = open_first
        self._send_more = send_more
        self.channel_id = channel_id
        self.pacer = pacer
        self.interval = interval
        self.show_reasoning = show_reasoning
        self.stop_view = stop_view
        self.final_retry_budget = final_retry_budget
        # An interaction's response is edited with its token, which Discord honours for 15 minutes:
        # past the given loop time, the first message is edited through its channel instead.
        self._first_via_channel = first_via_channel
        # live edits go straight through discord.py's HTTP client when given (an interaction's response
        # through its webhook route)
        self._http = http
        self._interaction = interaction
        self.first_words_wait = first_words_wait  # the first message waits this long for words, at most
        self._words = asyncio.Event()  # the first words have come
        self.notices: list[str] = list(notices or [])
        self.status_line: str | None = None
        self.messages: list[discord.Message] = []
        self._sent: list[str] = []  # what each message shows now
        self._content: list[str] = []
        self._reasoning: list[str] = []
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._finished = False
        self._last_edit = 0.0
        self._words_shown = False  # the answer's first words are on screen
        self.final_view = final_view
        self.metrics = metrics
        self.asked_at = asked_at  # when the question was asked (Unix time, from its Discord id)
        self._counted = False  # counted in the pacer's `awaiting_words`
        self._saving: asyncio.Task[None] | None = None  # the latest save of the message ids
        self._opened: Opened | None = None  # told the message ids as messages open (crash recovery needs them)
        self._opening = False  # the first message's request is on its way: it can no longer be called off
        self._first_has_view = True  # the first message may carry a view (a Stop button) the final form removes

    def adopt(self, messages: list[discord.Message]) -> None:
        """Show into messages that already exist (an answer shown again after a restart)."""
        self.messages = list(messages)
        self._sent = [m.content for m in messages]

    # -- the core's AnswerView ----------------------------------------------------------------

    def begin(self, opened: Opened) -> None:
        """Start showing the answer: its first message opens as soon as the pacer allows, with the first
        words if they have come by then (a placeholder if not), and its Stop button from the start."""
        self._opened = opened
        self._await_words(True)
        waiting = bool(self.messages)
        self._start_rendering()
        if waiting:  # the "waiting" message stays until there is something new to show
            self._changed.clear()

    async def open_waiting(self) -> None:
        """Say at once that a message was seen and waits for the answer before it (no Stop button yet)."""
        await self._open(lambda: WAITING, None)

    async def _open(self, text_now: Callable[[], str], view: discord.ui.View | None, *,
                    rank: Rank | None = None, wordless: Callable[[], bool] | None = None) -> None:
        """The answer's first message, paced like any write (an interaction's response is exempt from
        the global budget); its text is taken once the slot is granted, so it carries what came meanwhile."""
        await self.pacer.acquire(self.channel_id, global_budget=self._first_via_channel is None, rank=rank,
                                 wordless=wordless)
        self._opening = True  # from here on the message is as good as sent: `finish` waits for it
        text = text_now()
        message = await self._open_first(text, view)
        self.messages.append(message)
        self._sent.append(text)
        self._first_has_view = view is not None

    async def _open_live(self) -> None:
        """The first message while streaming: the first words if they have come, else a placeholder."""
        words = False
        if self.first_words_wait > 0:  # one write with the words rather than a placeholder and then an edit
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._words.wait(), self.first_words_wait)

        def text_now() -> str:
            nonlocal words
            self._changed.clear()
            words = bool("".join(self._content).strip())
            return self._live_parts()[0]

        await self._open(text_now, self.stop_view, rank=self._opening_rank, wordless=self._wordless)
        if words:  # the reply opened with its first words
            self._words_visible()
        self._await_words(not words)
        if words:  # a placeholder is followed by the first words at once, not an interval later
            self._last_edit = asyncio.get_running_loop().time()
        self._report_opened()

    def _await_words(self, awaiting: bool) -> None:
        """Count this answer among those whose first words the pacer waits for (live edits yield to them)."""
        if awaiting != self._counted:
            self._counted = awaiting
            self.pacer.awaiting_words += 1 if awaiting else -1

    def _opening_rank(self) -> float:
        """While the budget is short, a reply that would open with words goes before one that has none yet
        (a placeholder would cost a second write for the same words)."""
        return 0.0 if self._content else 1.0

    def _wordless(self) -> bool:
        """The reply would open as a placeholder: the pacer may hold it back for its words while busy."""
        return not self._content

    def _live_rank(self) -> float:
        """Live edits share what is left oldest-updated first."""
        return self._last_edit

    def _report_opened(self) -> None:
        """Tell the core the answer's messages, apart from the rendering (a busy database must not hold
        up the first words); `finish` waits for it, so the saves land in order."""
        if self._opened is not None:
            previous, ids, opened = self._saving, self.message_ids(), self._opened

            async def save() -> None:
                if previous is not None:
                    await previous
                try:
                    await opened(ids)
                except Exception:  # the answer goes on; its final save comes at the end
                    log.exception("could not report an answer's messages", messages=ids)

            self._saving = asyncio.create_task(save(), name=f"save-messages-{self.channel_id}")

    def message_ids(self) -> list[int]:
        return [m.id for m in self.messages]

    def append(self, content: str, reasoning: str) -> None:
        if content:
            first = not self._content
            self._content.append(content)
            self._words.set()
            if first and not self.messages:
                self.pacer.nudge()  # a reply held back for its first words may open now
        if reasoning:
            self._reasoning.append(reasoning)
            if self.show_reasoning:
                self._words.set()  # something to show: a first message waiting for words need not wait longer
        self._start_rendering()

    async def notice(self, text: str, kind: NoticeKind = NoticeKind.NOTE) -> None:
        if kind == NoticeKind.PROGRESS:
            self.status_line = f"⏳ {text}"  # transient: replaced by the answer as soon as it flows
            self._words.set()  # shown at once ("retrying in 2 s"), not after the wait for words
        else:
            self.notices.append(text)
        if self.messages:  # before `begin`, the notice simply waits to be shown with the answer
            self._start_rendering()

    def _start_rendering(self) -> None:
        """Mark the answer changed; the render loop (started once) shows it at its own pace."""
        self._changed.set()
        if self._task is None and not self._finished:
            self._task = asyncio.create_task(self._render_loop(), name=f"render-{self.channel_id}")

    async def finish(self, outcome: AnswerOutcome) -> bool:
        """The final form: the whole text, notices, footer, no cursor and no Stop button. Its writes are
        retried while Discord fails; False when they never landed (the next start shows it again)."""
        self._finished = True
        self._await_words(False)
        if self._task is not None:
            if not self.messages and not self._opening:
                self._task.cancel()  # still waiting for its slot: the final form opens the message instead
            self._changed.set()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._saving is not None:
            await self._saving
        parts, reasoning = self.final_parts(outcome)
        buttons = await self.final_view(outcome) if self.final_view is not None else None
        try:
            if not self.messages:  # a refusal, or an answer over before its message opened: no Stop button
                first_view = buttons if len(parts) == 1 else None  # one message: its buttons come with it
                await self._retrying(partial(self._open, lambda: parts[0], first_view))
                if first_view is not None:
                    self._first_has_view, buttons = False, None  # nothing left to take away or to add
            await self._show(parts, final=True, reasoning=reasoning, buttons=buttons)
            if ("".join(self._content) or outcome.content).strip():
                self._words_visible()  # (a short answer's first words may come with its final form)
        except discord.HTTPException as exc:
            log.error("could not show an answer's final form", error=str(exc), status=exc.status,
                      messages=self.message_ids())
            return False
        return True

    def final_parts(self, outcome: AnswerOutcome) -> tuple[list[str], bytes | None]:
        """The final messages' texts, and the reasoning to attach (if shown)."""
        content = "".join(self._content) or outcome.content
        reasoning = "".join(self._reasoning) or outcome.reasoning
        parts = split_for_discord(neutralize_mentions(content), BODY_LIMIT) if content.strip() else []
        closing = self._closing(outcome)
        if not parts:
            parts = [closing] if closing else ["(no answer)"]
        elif len(parts[-1]) + len(closing) + 2 <= DISCORD_LIMIT:
            parts[-1] = f"{parts[-1]}\n\n{closing}" if closing else parts[-1]
        else:
            parts.append(closing)
        shown = self.show_reasoning and reasoning.strip() and outcome.status != AnswerStatus.REFUSED
        return parts, reasoning.encode() if shown else None

    def _closing(self, outcome: AnswerOutcome) -> str:
        """Notices, the error if any, and the footer, within one message."""
        tail: list[str] = [f"-# ℹ️ {n}" for n in self.notices]
        if sources := sources_block(outcome.sources):
            tail.insert(0, sources)
        if outcome.error_message:
            tail.append(f"⚠️ {outcome.error_message}")
        footer_line = ""
        if outcome.status != AnswerStatus.REFUSED:
            extra = "the bot was restarting" if outcome.status == AnswerStatus.STOPPED and outcome.stopped_by is None \
                else None
            footer_line = footer(model=outcome.model, tokens=outcome.tokens, cost=outcome.cost,
                                 finish_reason=outcome.finish_reason, status=outcome.status, extra=extra)
            tail.append(footer_line)
        closing = "\n".join(tail)
        if len(closing) > DISCORD_LIMIT:  # many refused files: keep the footer, shorten the notes
            room = DISCORD_LIMIT - len(footer_line) - 2
            closing = "\n".join(tail[:-1] if footer_line else tail)[:room].rstrip() + "…\n" + footer_line
        return closing

    # -- rendering ------------------------------------------------------------------------------

    def finished(self) -> bool:
        return self._finished

    def _live_parts(self) -> list[str]:
        content = "".join(self._content)
        if content.strip():
            parts = split_for_discord(neutralize_mentions(content), BODY_LIMIT)
            parts[-1] += CURSOR
            return parts
        lines = [THINKING]
        if self.status_line:
            lines = [self.status_line]
        elif self._reasoning and self.show_reasoning:
            recent = " ".join("".join(self._reasoning)[-300:].split())
            lines.append(f"> -# {neutralize_mentions(recent)}")
        return ["\n".join(lines)]

    async def _render_loop(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            if not self.messages:
                await self._open_live()
            while not self.finished():
                await self._changed.wait()
                if self.finished():
                    return
                self._changed.clear()
                wait = self._last_edit + self.interval - loop.time()
                if wait > 0 and self._last_edit:
                    await asyncio.sleep(wait)
                    if self.finished():
                        return
                    self._changed.clear()
                # live edits keep one slot of the channel's budget free for the final edit
                wait = self.pacer.delay(self.channel_id, reserve=1)
                if wait > 0:
                    await asyncio.sleep(wait)
                    if self.finished():
                        return
                    self._changed.clear()
                # the first words of an answer go before other answers' later live edits
                first_words = not self._words_shown and bool("".join(self._content).strip())
                await self._show(self._live_parts(), final=False, urgent=first_words)
                if first_words:
                    self._words_visible()
                self._await_words(not self._words_shown)
                self._last_edit = loop.time()
        except discord.HTTPException as exc:
            log.warning("could not update a streaming answer", error=str(exc), status=exc.status)

    def _words_visible(self) -> None:
        """The answer's first words are on screen: how long after the question (once per answer)."""
        if not self._words_shown and self.metrics is not None and self.asked_at is not None:
            self.metrics.first_visible_words(time.time() - self.asked_at)
        self._words_shown = True

    async def _show(self, parts: list[str], *, final: bool, urgent: bool = False,
                    reasoning: bytes | None = None, buttons: discord.ui.View | None = None) -> None:
        for index, text in enumerate(parts):
            last = index == len(parts) - 1
            view_kwargs: dict[str, object] = {}
            if index == 0 and final and self._first_has_view:
                view_kwargs["view"] = None  # the Stop button goes away at the end
            elif index == 0 and not final and self.stop_view is not None and not self._first_has_view:
                view_kwargs["view"] = self.stop_view  # opened "waiting": the Stop button comes with the words
            if final and last and buttons is not None:  # the finished answer's buttons, on its last message
                view_kwargs["view"] = buttons
            attach = reasoning if final and last else None
            if index < len(self.messages):
                if self._sent[index] == text and attach is None and "view" not in view_kwargs:
                    continue
                message = self.messages[index]
                kwargs: dict[str, object] = {"content": text, "allowed_mentions": NO_MENTIONS, **view_kwargs}
                # a live edit changes the text alone: sent as is, with no discord.Message built from the answer
                edit = partial(self._edit, message, kwargs, attach) if final or view_kwargs \
                    else partial(self._edit_text, message, text)
                await self._write(edit, final=final, urgent=urgent, global_budget=not self._via_webhook(message))
                self._sent[index] = text
                self._first_has_view = view_kwargs.get("view") is not None if view_kwargs else self._first_has_view
            else:
                message = await self._write(partial(self._send_more, text, **view_kwargs), final=final)
                self.messages.append(message)
                self._sent.append(text)
                if not final:
                    self._report_opened()
                if attach is not None:
                    await self._write(partial(self._edit, message, {"allowed_mentions": NO_MENTIONS}, attach),
                                      final=final, global_budget=not self._via_webhook(message))

    async def _write(self, write: Callable[[], Awaitable[T]], *, final: bool, urgent: bool = False,
                     global_budget: bool = True) -> T:
        """One write to Discord, paced (a live edit that is not `urgent` yields to other writes). The
        final form's writes are retried while Discord fails."""
        async def paced() -> T:
            live = not (final or urgent)
            await self.pacer.acquire(self.channel_id, live=live, global_budget=global_budget,
                                     rank=self._live_rank if live else None)
            return await write()

        return await (self._retrying(paced) if final else paced())

    async def _retrying(self, write: Callable[[], Awaitable[T]]) -> T:
        return await call_with_retries(write, self.final_retry_schedule, retry_on=discord.HTTPException,
                                       what="final Discord write")

    def _via_webhook(self, message: discord.Message) -> bool:
        """Whether editing `message` goes through an interaction webhook (exempt from the global limit)."""
        return isinstance(message, discord.InteractionMessage) and self._editable(message) is message

    def final_retry_schedule(self, attempt: int, error: discord.HTTPException, elapsed: float) -> float | None:
        """Discord's outages (5xx) and rate limits past discord.py's own retries, for `final_retry_budget`."""
        if error.status != 429 and error.status < 500:
            return None
        delay = min(8.0, 0.5 * 2 ** (attempt - 1))
        return delay if elapsed + delay <= self.final_retry_budget else None

    def _editable(self, message: discord.Message) -> discord.Message | discord.PartialMessage:
        """The message to edit, through the channel once an interaction's token is about to expire."""
        if self._first_via_channel is not None and self.messages and message is self.messages[0]:
            channel, deadline = self._first_via_channel
            if asyncio.get_running_loop().time() >= deadline and hasattr(channel, "get_partial_message"):
                return channel.get_partial_message(message.id)  # type: ignore[no-any-return]
        return message

    async def _edit_text(self, message: discord.Message, text: str) -> None:
        """A live edit: the text only (the view stays as it is), straight through discord.py's HTTP client."""
        if self._http is None:
            await self._edit(message, {"content": text, "allowed_mentions": NO_MENTIONS})
            return
        payload = {"content": text, "allowed_mentions": NO_MENTIONS_PAYLOAD}
        target = self._editable(message)
        try:
            if self._interaction is not None and target is message and isinstance(message, discord.InteractionMessage):
                await self._http.request(Route("PATCH", "/webhooks/{webhook_id}/{webhook_token}/messages/@original",
                                               webhook_id=self._interaction.application_id,
                                               webhook_token=self._interaction.token), json=payload)
            else:
                await self._http.edit_message(target.channel.id, target.id,
                                              params=MultipartParameters(payload, None, None))
        except discord.NotFound:
            log.info("an answer message was deleted; going on without it", message=message.id)

    async def _edit(self, message: discord.Message, kwargs: dict[str, object], attach: bytes | None = None) -> None:
        if attach is not None:  # a new File each try: a File is read once
            kwargs = {**kwargs, "attachments": [discord.File(io.BytesIO(attach), filename="reasoning.txt")]}
        try:
            await self._editable(message).edit(**kwargs)  # type: ignore[arg-type]
        except discord.NotFound:
            log.info("an answer message was deleted; going on without it", message=message.id)
