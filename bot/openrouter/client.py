"""The OpenRouter HTTP client: one pooled `httpx.AsyncClient` per process.

Chat completions (streamed and not), the models catalogue, generation stats and key info, with
retries (exponential backoff with jitter, honouring `Retry-After` and `X-RateLimit-Reset`) on 408,
429, 5xx and connection errors, never on 400/401/402/403 and never once a token has been delivered.
Timeouts: connect, first byte (until the response headers arrive) and idle (between any two reads;
OpenRouter's keep-alive comments count as life).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx

from bot import __version__
from bot.logs import get_logger
from bot.openrouter.errors import (
    ConnectionFailed,
    InvalidResponse,
    ModelNotFound,
    OpenRouterError,
    RequestTimeout,
    StreamInterrupted,
    classify,
    parse_error_body,
)
from bot.openrouter.retry import RetryPolicy
from bot.openrouter.sse import SSEDecoder
from bot.openrouter.stream import StreamAccumulator, completion_from_json
from bot.openrouter.types import ChatDelta, ChatRequest, Completion, GenerationStats, KeyInfo, ModelInfo

log = get_logger(__name__)
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Timeouts:
    connect: float = 10.0
    first_byte: float = 60.0
    idle: float = 60.0
    write: float = 30.0


@dataclass(frozen=True, slots=True)
class RetryNotice:
    """Told to the caller before each retry, so a person can see why the answer is late."""

    attempt: int
    delay: float
    error: OpenRouterError


OnRetry = Callable[[RetryNotice], Awaitable[None]]


class ChatStream:
    """A streamed chat completion: iterate it for `ChatDelta`s, then read `completion`.

    Use it as an async context manager so the connection is released even when the caller stops
    early (or is cancelled, e.g. by a Stop button).
    """

    def __init__(self, client: OpenRouterClient, request: ChatRequest, on_retry: OnRetry | None) -> None:
        self.request = request
        self.attempts = 0
        self._accumulator = StreamAccumulator()
        self._decoder = SSEDecoder()
        self._events = client._stream_events(request, self, on_retry)

    @property
    def completion(self) -> Completion:
        """What has arrived so far; complete once iteration ended without an error."""
        return self._accumulator.snapshot()

    @property
    def keepalives(self) -> int:
        return self._decoder.comments

    def __aiter__(self) -> ChatStream:
        return self

    async def __anext__(self) -> ChatDelta:
        return await self._events.__anext__()

    async def __aenter__(self) -> ChatStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._events.aclose()

    async def collect(self) -> Completion:
        async with self:
            async for _ in self:
                pass
        return self.completion


class OpenRouterClient:
    def __init__(self, *, api_key: str, base_url: str = "https://openrouter.ai/api/v1",
                 app_url: str | None = None, app_title: str | None = None,
                 timeouts: Timeouts | None = None, retry: RetryPolicy | None = None,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        self.timeouts = timeouts or Timeouts()
        self.retry = retry or RetryPolicy()
        self._sleep = sleep
        self._base_url = base_url.rstrip("/")
        headers = {
            "Authorization": f"Bearer {api_key}",
            "User-Agent": f"openrouter-discord-bot/{__version__}",
            "Accept": "application/json",
        }
        if app_url:
            headers["HTTP-Referer"] = app_url
        if app_title:
            headers["X-OpenRouter-Title"] = app_title
            headers["X-Title"] = app_title
        t = self.timeouts
        self._http = httpx.AsyncClient(
            headers=headers,
            # The first-byte and idle timeouts are enforced per read below; httpx's read timeout
            # is only a safety net behind them.
            timeout=httpx.Timeout(connect=t.connect, read=max(t.first_byte, t.idle) + 5,
                                  write=t.write, pool=t.connect),
            limits=httpx.Limits(max_connections=200, max_keepalive_connections=50),
            follow_redirects=False,
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> OpenRouterClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- chat -----------------------------------------------------------------------------------

    def stream_chat(self, request: ChatRequest, *, on_retry: OnRetry | None = None) -> ChatStream:
        return ChatStream(self, request, on_retry)

    async def chat(self, request: ChatRequest, *, on_retry: OnRetry | None = None) -> Completion:
        body = json.dumps(request.to_body(stream=False)).encode()

        async def once() -> Completion:
            async with self._open("POST", "/chat/completions", content=body) as response:
                raw = await self._read_all(response)
                data = _load_json(raw)
                completion = completion_from_json(data, response.headers.get("x-generation-id"))
            _log_completion(completion, attempts=None, streamed=False)
            return completion

        return await self._with_retries(once, on_retry)

    async def _stream_events(self, request: ChatRequest, stream: ChatStream,
                             on_retry: OnRetry | None) -> AsyncGenerator[ChatDelta, None]:
        body = json.dumps(request.to_body(stream=True)).encode()
        loop = asyncio.get_running_loop()
        started = loop.time()
        attempt = 0
        while True:
            stream.attempts = attempt + 1
            accumulator = stream._accumulator = StreamAccumulator()
            decoder = stream._decoder = SSEDecoder()
            delivered = False
            try:
                async with self._open("POST", "/chat/completions", content=body,
                                      accept="text/event-stream") as response:
                    idle = self.timeouts.idle
                    chunks = response.aiter_bytes()
                    finished = False
                    while not finished:
                        try:
                            async with asyncio.timeout(idle):
                                payloads = decoder.feed(await chunks.__anext__())
                        except StopAsyncIteration:
                            payloads = decoder.flush()
                            finished = True
                        except TimeoutError:
                            error = RequestTimeout(f"no data from OpenRouter for {idle:g} s",
                                                   partial=accumulator.snapshot())
                            error.retryable = False
                            raise error from None
                        except httpx.TransportError as exc:
                            raise StreamInterrupted(
                                f"connection lost mid-stream: {type(exc).__name__}",
                                partial=accumulator.snapshot(),
                            ) from None
                        for payload in payloads:
                            delta = accumulator.feed(payload)
                            if delta is not None:
                                delivered = True
                                yield delta
                            if accumulator.done:
                                finished = True
                                break
                completion = accumulator.snapshot()
                if not accumulator.done and completion.finish_reason is None:
                    raise StreamInterrupted("the stream ended before the answer finished", partial=completion)
                _log_completion(completion, attempts=attempt + 1, streamed=True)
                return
            except OpenRouterError as exc:
                if exc.partial is None:
                    exc.partial = accumulator.snapshot()
                if delivered:  # never once a token has reached the caller
                    raise
                attempt += 1
                await self._wait_before_retry(exc, attempt, loop.time() - started, on_retry)

    # -- catalogue, key, generation -------------------------------------------------------------

    async def list_models(self) -> list[ModelInfo]:
        data = await self._get_json("/models")
        models: list[ModelInfo] = []
        for raw in data.get("data") or []:
            try:
                models.append(ModelInfo.from_wire(raw))
            except (KeyError, TypeError, ValueError) as exc:
                log.warning("skipping unreadable model entry", model=raw.get("id"), error=str(exc))
        return models

    async def get_key(self) -> KeyInfo:
        return KeyInfo.from_wire(await self._get_json("/key"))

    async def get_generation(self, generation_id: str, *, attempts: int = 5,
                             delay: float = 0.5) -> GenerationStats:
        """Stats of a finished generation. Just after a stream ends it may 404 for a moment."""
        attempt = 1
        while True:
            try:
                return GenerationStats.from_wire(await self._get_json("/generation", {"id": generation_id}))
            except ModelNotFound:  # a 404: not recorded yet
                if attempt >= attempts:
                    raise
                await self._sleep(delay * attempt)
                attempt += 1

    # -- plumbing -------------------------------------------------------------------------------

    async def _get_json(self, path: str, params: dict[str, str] | None = None) -> dict[str, Any]:
        async def once() -> dict[str, Any]:
            async with self._open("GET", path, params=params) as response:
                return _load_json(await self._read_all(response))

        return await self._with_retries(once, None)

    async def _with_retries(self, call: Callable[[], Awaitable[T]], on_retry: OnRetry | None) -> T:
        loop = asyncio.get_running_loop()
        started = loop.time()
        attempt = 0
        while True:
            try:
                return await call()
            except OpenRouterError as exc:
                attempt += 1
                await self._wait_before_retry(exc, attempt, loop.time() - started, on_retry)

    async def _wait_before_retry(self, error: OpenRouterError, attempt: int, elapsed: float,
                                 on_retry: OnRetry | None) -> None:
        """Sleep before retry number `attempt`; re-raise `error` when it may not be retried."""
        delay = self.retry.delay(attempt, getattr(error, "retry_after", None))
        if not error.retryable or not self.retry.should_retry(attempt, delay, elapsed):
            raise error
        notice = RetryNotice(attempt, delay, error)
        log.warning("retrying OpenRouter request", attempt=notice.attempt, delay=round(notice.delay, 3),
                    error=notice.error.kind, status=notice.error.status)
        if on_retry is not None:
            try:
                await on_retry(notice)
            except Exception:
                log.exception("retry callback failed")
        await self._sleep(delay)

    @asynccontextmanager
    async def _open(self, method: str, path: str, *, content: bytes | None = None,
                    params: dict[str, str] | None = None,
                    accept: str = "application/json") -> AsyncIterator[httpx.Response]:
        """Send a request; yield the response once its headers arrived with a success status."""
        headers = {"Accept": accept}
        if content is not None:
            headers["Content-Type"] = "application/json"
        request = self._http.build_request(method, self._base_url + path, content=content,
                                           params=params, headers=headers)
        try:
            async with asyncio.timeout(self.timeouts.first_byte):
                response = await self._http.send(request, stream=True)
        except TimeoutError:
            error = RequestTimeout(f"no response from OpenRouter within {self.timeouts.first_byte:g} s")
            error.retryable = False
            raise error from None
        except httpx.TimeoutException as exc:
            raise ConnectionFailed(f"timed out connecting to OpenRouter ({type(exc).__name__})") from None
        except httpx.TransportError as exc:
            raise ConnectionFailed(f"cannot reach OpenRouter: {type(exc).__name__}: {exc}") from None
        try:
            if response.status_code >= 400:
                raw = await self._read_all(response)
                message, _code, metadata = parse_error_body(raw)
                raise classify(response.status_code, message, metadata, headers=response.headers)
            yield response
        finally:
            await response.aclose()

    async def _read_all(self, response: httpx.Response) -> bytes:
        try:
            async with asyncio.timeout(self.timeouts.idle):
                return await response.aread()
        except TimeoutError:
            raise RequestTimeout(f"OpenRouter stopped sending for {self.timeouts.idle:g} s") from None
        except httpx.TransportError as exc:
            raise StreamInterrupted(f"connection lost reading the response: {type(exc).__name__}") from None


def _load_json(raw: bytes) -> dict[str, Any]:
    """Parse a JSON body; OpenRouter may pad it with leading whitespace while it waits."""
    try:
        data = json.loads(raw)  # json.loads skips surrounding whitespace
    except ValueError:
        raise InvalidResponse(f"OpenRouter sent a body that is not JSON: {raw[:120]!r}") from None
    if not isinstance(data, dict):
        raise InvalidResponse("OpenRouter sent JSON that is not an object")
    return data


def _log_completion(completion: Completion, *, attempts: int | None, streamed: bool) -> None:
    usage = completion.usage
    log.info(
        "chat completion finished",
        generation_id=completion.generation_id,
        model=completion.model,
        provider=completion.provider,
        finish_reason=completion.finish_reason,
        native_finish_reason=completion.native_finish_reason,
        prompt_tokens=usage.prompt_tokens if usage else None,
        completion_tokens=usage.completion_tokens if usage else None,
        cost=str(usage.cost) if usage and usage.cost is not None else None,
        attempts=attempts,
        streamed=streamed,
    )
