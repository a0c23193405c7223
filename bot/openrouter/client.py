"""The OpenRouter HTTP client: one pooled `httpx.AsyncClient` per process.

Streamed chat completions, the models catalogue, generation stats and key info, with retries
(`bot.openrouter.retry`: backoff with jitter, honouring `Retry-After` and `X-RateLimit-Reset`) on 408,
429, 5xx and connection errors, never on 400/401/402/403 and never once a token has been delivered.
Timeouts: connect, first byte (until the response headers arrive) and idle (between any two reads;
OpenRouter's keep-alive comments count as life). A stream also ends at two deadlines that keep-alives
do not push back: `total` (from the request to the answer's end) and `idle_content` (between two
`data` events). None of these is retried: a model that slow would only make the person wait twice as
long.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any, Literal

import httpx
from httpx_aiohttp import AiohttpTransport

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
from bot.openrouter.retry import OnRetry, RetryNotice, RetryPolicy, call_with_retries, openrouter_retrier
from bot.openrouter.sse import SSEDecoder
from bot.openrouter.stream import ChatStream, OnGeneration
from bot.openrouter.types import ChatRequest, GenerationStats, KeyInfo, ModelInfo

__all__ = ["ChatStream", "OpenRouterClient", "RetryNotice", "Timeouts"]

log = get_logger(__name__)
_WRITE_TIMEOUT = 30.0


@dataclass(frozen=True, slots=True)
class Timeouts:
    connect: float = 10.0
    first_byte: float = 60.0
    idle: float = 60.0
    total: float = 900.0  # a streamed answer, from its request to its end
    idle_content: float = 300.0  # between two data events of a stream: keep-alive comments do not count
    gather: float = 0.1  # a trickling stream is read at most this often once tokens flow (see ChatStream)


class OpenRouterClient:
    def __init__(self, *, api_key: str, base_url: str = "https://openrouter.ai/api/v1",
                 app_url: str | None = None, app_title: str | None = None,
                 timeouts: Timeouts | None = None, retry: RetryPolicy | None = None,
                 transport: Literal["aiohttp", "httpx"] = "aiohttp") -> None:
        self._timeouts = t = timeouts or Timeouts()
        self._retry = retry or RetryPolicy()
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
        limits = httpx.Limits(max_connections=200, max_keepalive_connections=50)
        self._http = httpx.AsyncClient(
            # aiohttp's C parser under httpx's API: streams are read in batches, not token by token
            transport=AiohttpTransport(limits=limits) if transport == "aiohttp" else None,
            headers=headers,
            # The first-byte and idle timeouts are enforced per read below; httpx's read timeout
            # is only a safety net behind them.
            timeout=httpx.Timeout(connect=t.connect, read=max(t.first_byte, t.idle) + 5,
                                  write=_WRITE_TIMEOUT, pool=t.connect),
            limits=limits,
            follow_redirects=False,
        )
        # A stream's every read has its own deadline (`_SSEReader`), so it goes without the safety net:
        # with it, the transport re-arms a timer for each network segment, and a token is a segment.
        self._stream_timeout = httpx.Timeout(connect=t.connect, read=None, write=_WRITE_TIMEOUT, pool=t.connect)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> OpenRouterClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def stream_chat(self, request: ChatRequest, *, on_retry: OnRetry | None = None,
                    on_generation: OnGeneration | None = None) -> ChatStream:
        """The answer to `request`, streamed; nothing is sent until the stream is iterated.
        `on_generation` gets the generation's id as soon as the response headers arrive."""
        body = JSONBody(request.to_body())
        return ChatStream(partial(self._sse_events, "/chat/completions", body),
                          openrouter_retrier(self._retry.next_delay, on_retry), on_generation=on_generation,
                          gather=self._timeouts.gather)

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
        """Stats of a finished generation. Just after a stream ends it may 404 for a moment: asked
        up to `attempts` times, waiting `delay`, 2 × `delay`, ... in between."""
        def not_recorded_yet(attempt: int, error: OpenRouterError, elapsed: float) -> float | None:
            return delay * attempt if isinstance(error, ModelNotFound) and attempt < attempts else None

        raw = await call_with_retries(partial(self._get_json, "/generation", {"id": generation_id}), not_recorded_yet)
        return GenerationStats.from_wire(raw)

    # -- plumbing -------------------------------------------------------------------------------

    async def _get_json(self, path: str, params: dict[str, str] | None = None) -> dict[str, Any]:
        async def once() -> dict[str, Any]:
            async with self._open("GET", path, params=params) as response:
                return _load_json(await self._read_all(response))

        return await call_with_retries(once, self._retry.next_delay)

    @asynccontextmanager
    async def _sse_events(self, path: str, body: JSONBody) -> AsyncIterator[_SSEReader]:
        started = asyncio.get_running_loop().time()
        async with self._open("POST", path, content=body, accept="text/event-stream",
                              safety_net=self._stream_timeout) as response:
            yield _SSEReader(response, self._timeouts, started)

    @asynccontextmanager
    async def _open(self, method: str, path: str, *, content: JSONBody | None = None,
                    params: dict[str, str] | None = None,
                    accept: str = "application/json",
                    safety_net: httpx.Timeout | None = None) -> AsyncIterator[httpx.Response]:
        """Send a request; yield the response once its headers arrived with a success status."""
        headers = {"Accept": accept}
        if content is not None:  # sent as it is encoded, with its length known (not chunked)
            headers |= {"Content-Type": "application/json", "Content-Length": str(content.length)}
        request = self._http.build_request(method, self._base_url + path, content=content,
                                           params=params, headers=headers,
                                           timeout=safety_net or httpx.USE_CLIENT_DEFAULT)
        try:
            async with asyncio.timeout(self._timeouts.first_byte):
                response = await self._http.send(request, stream=True)
        except TimeoutError:
            raise _timeout(f"no response from OpenRouter within {self._timeouts.first_byte:g} s") from None
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
            async with asyncio.timeout(self._timeouts.idle):
                return await response.aread()
        except TimeoutError:
            raise RequestTimeout(f"OpenRouter stopped sending for {self._timeouts.idle:g} s") from None
        except httpx.TransportError as exc:
            raise StreamInterrupted(f"connection lost reading the response: {type(exc).__name__}") from None


class JSONBody:
    """A JSON request body encoded piece by piece as httpx sends it, never held whole: a conversation's
    images and PDFs are not copied into one string and again into its bytes. It can be sent again (a
    retry encodes it anew). `ensure_ascii` makes every character one byte, so its length is known."""

    CHUNK = 64 * 1024
    _encoder = json.JSONEncoder()

    def __init__(self, data: Any) -> None:
        self._data = data
        self.length = sum(len(piece) for piece in self._encoder.iterencode(data))

    async def __aiter__(self) -> AsyncIterator[bytes]:
        pending: list[str] = []
        size = 0
        for piece in self._encoder.iterencode(self._data):
            pending.append(piece)
            size += len(piece)
            if size >= self.CHUNK:
                yield "".join(pending).encode("ascii")
                pending.clear()
                size = 0
        if pending:
            yield "".join(pending).encode("ascii")


class _SSEReader:
    """An SSE response body: each step is the `data` payloads that one network read completed;
    `generation_id` is the response's `X-Generation-Id`.

    A read waits at most `idle` seconds, and never past the stream's deadlines: `total` seconds after
    the request was sent, `idle_content` seconds after the last data event (or the response headers).
    A dropped connection becomes `StreamInterrupted`.
    """

    __slots__ = ("_chunks", "_content_at", "_decoder", "_ended", "_loop", "_started", "_timeouts", "generation_id")

    def __init__(self, response: httpx.Response, timeouts: Timeouts, started: float) -> None:
        # OpenRouter names the generation in the headers, before any token: what it may bill
        self.generation_id: str | None = response.headers.get("X-Generation-Id") or None
        self._chunks = response.aiter_bytes()
        self._decoder = SSEDecoder()
        self._timeouts = timeouts
        self._loop = asyncio.get_running_loop()
        self._started = started
        self._content_at = self._loop.time()
        self._ended = False

    def __aiter__(self) -> _SSEReader:
        return self

    async def __anext__(self) -> list[bytes]:
        if self._ended:
            raise StopAsyncIteration
        t = self._timeouts
        total_left = self._started + t.total - self._loop.time()
        content_left = self._content_at + t.idle_content - self._loop.time()
        if total_left <= 0 or content_left <= 0:  # a read of data already buffered would not time out
            raise self._expired(total_left, content_left)
        try:
            async with asyncio.timeout(max(0.0, min(t.idle, total_left, content_left))):
                events = self._decoder.feed(await self._chunks.__anext__())
        except StopAsyncIteration:
            self._ended = True
            return self._decoder.flush()
        except TimeoutError:
            raise self._expired(total_left, content_left) from None
        except httpx.TransportError as exc:
            raise StreamInterrupted(f"connection lost mid-stream: {type(exc).__name__}") from None
        if events:
            self._content_at = self._loop.time()
        return events

    def _expired(self, total_left: float, content_left: float) -> RequestTimeout:
        t = self._timeouts
        if total_left <= min(t.idle, content_left):
            return _timeout(f"the answer took longer than the {t.total:g} s allowed")
        if content_left <= t.idle:
            return _timeout(f"OpenRouter sent nothing but keep-alives for {t.idle_content:g} s")
        return _timeout(f"no data from OpenRouter for {t.idle:g} s")


def _timeout(detail: str) -> RequestTimeout:
    """Our own first-byte or idle timeout: not retried (unlike a 408 from OpenRouter)."""
    error = RequestTimeout(detail)
    error.retryable = False
    return error


def _load_json(raw: bytes) -> dict[str, Any]:
    """Parse a JSON body; OpenRouter may pad it with leading whitespace while it waits."""
    try:
        data = json.loads(raw)  # json.loads skips surrounding whitespace
    except ValueError:
        raise InvalidResponse(f"OpenRouter sent a body that is not JSON: {raw[:120]!r}") from None
    if not isinstance(data, dict):
        raise InvalidResponse("OpenRouter sent JSON that is not an object")
    return data
