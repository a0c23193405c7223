"""Streamed chat completions: `ChatStream` (what the chat core iterates) and the `StreamAccumulator`
that turns OpenRouter's chunks into a `Completion`, one decoded chunk at a time.

The accumulator handles everything real OpenRouter sends (see tests/fixtures/*.sse): a usage chunk with an empty
delta, with `choices: []`, or repeating the finish reason; tool-call fragments assembled by index;
reasoning kept apart from the answer; unknown fields ignored; and a chunk with a top-level `error`,
which ends the stream with a typed error that keeps what had arrived.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol

import orjson

from bot.logs import get_logger
from bot.openrouter.errors import InvalidResponse, OpenRouterError, StreamInterrupted, classify
from bot.openrouter.types import ChatDelta, Citation, Completion, ToolCall, Usage
from bot.retry import Retrier

log = get_logger(__name__)

_RARE_FIELDS = frozenset({"tool_calls", "reasoning_details", "refusal", "annotations"})  # looked at apart


class EventBatches(Protocol):
    """A response's SSE `data` payloads, a batch per network read, and its `X-Generation-Id`."""

    generation_id: str | None
    drains: bool  # a read takes all of the body that has come (else a part of it, e.g. one HTTP chunk)

    def __aiter__(self) -> AsyncIterator[list[bytes]]: ...

    async def gather(self, seconds: float) -> None:
        """Wait `seconds` while the body collects (the next read takes what came meanwhile)."""


OpenEvents = Callable[[], AbstractAsyncContextManager[EventBatches]]
"""Sends the request once; the context yields the response's events once its headers arrived."""
OnGeneration = Callable[[str], Awaitable[None]]
"""Told the generation's id as soon as the response headers name it (before any token)."""

_raw_decode = json.JSONDecoder().raw_decode


def _loads(payload: bytes) -> Any:
    """JSON from one `data:` payload: orjson (about 3x faster per chunk) for what it reads; anything
    it refuses (`NaN`, integers past 64 bits, trailing text after the object, bad UTF-8) goes to the
    standard library's decoder, so every payload reads exactly as it did with `json` alone."""
    try:
        return orjson.loads(payload)
    except orjson.JSONDecodeError:
        return _loads_stdlib(payload)


def _loads_stdlib(payload: bytes) -> Any:
    """Decoded as UTF-8 first (json.loads on bytes sniffs the encoding every time), and without the
    trailing-whitespace scan (the SSE decoder has split lines)."""
    text = payload.decode("utf-8")
    if text[:1].isspace():
        text = text.lstrip()
    return _raw_decode(text)[0]


class TextBuilder:
    """Appends many small strings; memory stays close to the text's own size.

    A plain list of 200,000 four-character strings costs ~60 bytes a piece; pieces are folded into
    one string every `FOLD` appends, so the overhead stays flat however long the stream runs.
    """

    __slots__ = ("_folded", "_pieces")
    FOLD = 256

    def __init__(self) -> None:
        self._pieces: list[str] = []
        self._folded: list[str] = []

    def add(self, text: str) -> None:
        pieces = self._pieces
        pieces.append(text)
        if len(pieces) >= self.FOLD:
            self._folded.append("".join(pieces))
            pieces.clear()
            if len(self._folded) >= self.FOLD:
                self._folded = ["".join(self._folded)]

    def text(self) -> str:
        return "".join(self._folded + self._pieces)


class StreamAccumulator:
    __slots__ = ("_content", "_reasoning", "_tools", "completion", "done")

    def __init__(self) -> None:
        self.completion = Completion()
        self._content = TextBuilder()
        self._reasoning = TextBuilder()
        self._tools: dict[int, list[Any]] = {}
        self.done = False

    def feed(self, payload: bytes) -> ChatDelta | None:
        """Take one SSE `data` payload; return the visible delta it carries, if any.

        Raises `OpenRouterError` (with `partial`) for an error chunk or an unreadable one.
        """
        if payload == b"[DONE]":
            self.done = True
            return None
        try:
            chunk = _loads(payload)
        except (ValueError, UnicodeDecodeError):
            raise InvalidResponse(
                f"malformed stream chunk: {payload[:120]!r}", partial=self.snapshot()
            ) from None
        if type(chunk) is not dict:
            raise InvalidResponse("stream chunk is not a JSON object", partial=self.snapshot())
        completion = self.completion
        if completion.generation_id is None:
            completion.generation_id = chunk.get("id")
        model = chunk.get("model")
        if model:
            completion.model = model
        provider = chunk.get("provider")
        if provider:
            completion.provider = provider
        usage = chunk.get("usage")
        if usage:
            completion.usage = Usage.from_wire(usage)
        delta_out: ChatDelta | None = None
        for choice in chunk.get("choices") or ():
            delta = choice.get("delta")
            if delta:
                content = delta.get("content")
                reasoning = delta.get("reasoning")
                if content:
                    self._content.add(content)
                if reasoning:
                    self._reasoning.add(reasoning)
                if content or reasoning:
                    delta_out = ChatDelta(content or "", reasoning or "")
                if not _RARE_FIELDS.isdisjoint(delta):
                    self._rare_fields(delta)
            finish = choice.get("finish_reason")
            if finish:
                completion.finish_reason = finish
                completion.native_finish_reason = choice.get("native_finish_reason") or finish
        error = chunk.get("error")
        if error:
            self._raise_error(error)
        return delta_out

    def _rare_fields(self, delta: dict[str, Any]) -> None:
        for call in delta.get("tool_calls") or ():
            index = int(call.get("index", len(self._tools)))
            slot = self._tools.get(index)
            if slot is None:
                slot = self._tools[index] = [None, "function", "", []]
            if call.get("id"):
                slot[0] = call["id"]
            if call.get("type"):
                slot[1] = call["type"]
            function = call.get("function") or {}
            if function.get("name"):
                slot[2] = function["name"]
            if function.get("arguments"):
                slot[3].append(function["arguments"])
        details = delta.get("reasoning_details")
        if details:
            self.completion.reasoning_details.extend(details)
        if delta.get("refusal"):
            self.completion.refusal = (self.completion.refusal or "") + delta["refusal"]
        for annotation in delta.get("annotations") or ():
            self._cite(annotation)

    def _cite(self, annotation: Any) -> None:
        """Keep a `url_citation`'s url and title, once per url; other annotations are not shown."""
        if not isinstance(annotation, dict) or annotation.get("type") != "url_citation":
            return
        cited = annotation.get("url_citation") or {}
        url = cited.get("url") if isinstance(cited, dict) else None
        if isinstance(url, str) and url and all(c.url != url for c in self.completion.citations):
            title = cited.get("title")
            self.completion.citations.append(Citation(url, title if isinstance(title, str) else ""))

    def _raise_error(self, error: Any) -> None:
        if isinstance(error, dict):
            code = error.get("code")
            message = str(error.get("message") or "error in stream")
            metadata = error.get("metadata") if isinstance(error.get("metadata"), dict) else {}
        else:
            code, message, metadata = None, str(error), {}
        self.completion.finish_reason = "error"
        status = code if isinstance(code, int) else None
        raise classify(status, message, metadata, partial=self.snapshot())

    def snapshot(self) -> Completion:
        """The completion as it stands: joined text, assembled tool calls."""
        completion = self.completion
        completion.content = self._content.text()
        completion.reasoning = self._reasoning.text()
        completion.tool_calls = [
            ToolCall(id=slot[0] or f"call_{index}", type=slot[1], name=slot[2], arguments="".join(slot[3]))
            for index, slot in sorted(self._tools.items())
        ]
        return completion


class ChatStream:
    """A streamed chat completion: iterate it for `ChatDelta`s; `completion` is what arrived so far.

    Use it as an async context manager so the connection is released even when the caller stops
    early (or is cancelled, e.g. by a Stop button). A failed try is retried (as `retrier` allows)
    only while nothing has reached the caller; each try starts a fresh `StreamAccumulator`.
    """

    GATHER_BELOW = 4  # a read that brought fewer events than this, after waiting for them: the stream trickles
    TRICKLE_WAIT = 0.002
    GATHER_UNTIL = 64  # a read that brought this many events or more: the producer is fast, reads go on freely

    def __init__(self, open_events: OpenEvents, retrier: Retrier[OpenRouterError], *,
                 on_generation: OnGeneration | None = None, gather: float = 0.0) -> None:
        self._open_events = open_events
        # Once tokens flow, a stream that trickles (a token or two per network read) is read at most
        # every `gather` seconds: one read then handles the tokens that came meanwhile, instead of a
        # wake-up of the whole reading stack for each token (and while it gathers, the aiohttp reader
        # does not read the socket: the segments that come meanwhile are received and parsed as one).
        # The first token is never held back.
        self._gather = gather
        self._retrier = retrier
        self._on_generation = on_generation
        self._accumulator = StreamAccumulator()
        self._deltas = self._run()

    @property
    def completion(self) -> Completion:
        """What has arrived so far; complete once iteration ended without an error."""
        return self._accumulator.snapshot()

    def __aiter__(self) -> ChatStream:
        return self

    async def __anext__(self) -> ChatDelta:
        return await self._deltas.__anext__()

    async def __aenter__(self) -> ChatStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._deltas.aclose()

    async def _run(self) -> AsyncGenerator[ChatDelta, None]:
        loop = asyncio.get_running_loop()
        earlier: list[str] = []  # the generations of tries retried before their first token
        while True:
            accumulator = self._accumulator = StreamAccumulator()
            accumulator.completion.earlier_generations = list(earlier)
            delivered = gathering = False
            try:
                async with self._open_events() as events:
                    await self._started(accumulator, events.generation_id)
                    asked = loop.time()
                    async for payloads in events:
                        waited = loop.time() - asked  # a producer faster than us is never held up
                        for payload in payloads:
                            delta = accumulator.feed(payload)
                            if delta is not None:
                                delivered = True
                                yield delta
                            if accumulator.done:
                                break
                        if accumulator.done:
                            break
                        if delivered and self._gather:
                            gathering = self._trickles(gathering, waited, len(payloads))
                            if gathering and (events.drains or waited > self.TRICKLE_WAIT):
                                await events.gather(self._gather)
                        asked = loop.time()
                self._finish()
                return
            except OpenRouterError as exc:
                if exc.partial is None:
                    exc.partial = accumulator.snapshot()
                if delivered:
                    raise  # never retry once a token has reached the caller
                await self._retrier.backoff(exc)
                if accumulator.completion.generation_id:
                    earlier.append(accumulator.completion.generation_id)

    def _trickles(self, gathering: bool, waited: float, events: int) -> bool:
        """Whether the stream trickles, to be read at most every `gather` seconds: from a read that waited
        for a few events on, until a read brings many (a producer faster than that is never held up).
        (A reader whose read takes only a part of what came, e.g. an HTTP chunk, gathers again only
        once a read has had to wait.)"""
        if events >= self.GATHER_UNTIL:
            return False
        return gathering or (waited > self.TRICKLE_WAIT and events < self.GATHER_BELOW)

    async def _started(self, accumulator: StreamAccumulator, generation_id: str | None) -> None:
        """The headers arrived: from now on OpenRouter may bill this generation, even with no token."""
        if generation_id:
            accumulator.completion.generation_id = generation_id
            if self._on_generation is not None:
                await self._on_generation(generation_id)

    def _finish(self) -> None:
        """The body has ended: check that the answer did, and log it."""
        completion = self._accumulator.snapshot()
        if not self._accumulator.done and completion.finish_reason is None:
            raise StreamInterrupted("the stream ended before the answer finished", partial=completion)
        usage = completion.usage
        log.info(
            "chat completion finished",
            generation_id=completion.generation_id, model=completion.model, provider=completion.provider,
            finish_reason=completion.finish_reason, native_finish_reason=completion.native_finish_reason,
            prompt_tokens=usage.prompt_tokens if usage else None,
            completion_tokens=usage.completion_tokens if usage else None,
            cost=str(usage.cost) if usage and usage.cost is not None else None,
            attempts=self._retrier.retries + 1,
        )
