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
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any, Literal, TypeVar

import aiohttp
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
T = TypeVar("T")
_READ_ERRORS = (httpx.TransportError, aiohttp.ClientError)
_END_GRACE = 0.25  # seconds a finished stream waits for its body's end (that keeps its connection in the pool)


@dataclass(frozen=True, slots=True)
class Timeouts:
    connect: float = 10.0
    first_byte: float = 60.0
    idle: float = 60.0
    total: float = 900.0  # a streamed answer, from its request to its end
    idle_content: float = 300.0  # between two data events of a stream: keep-alive comments do not count
    gather: float = 0.25  # a trickling stream is read at most this often once tokens flow (see ChatStream)


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
        # Every connection is kept for a minute after use: a follow-up needs no new TCP and TLS handshake
        # (OpenRouter's edge keeps an idle HTTP/1.1 connection for 400 s; one it closed all the same as a
        # request went out fails before any token and is retried)
        limits = httpx.Limits(max_connections=200, max_keepalive_connections=200, keepalive_expiry=60.0)
        # aiohttp's C parser under httpx's API; a chat stream is read from aiohttp's response directly
        # (`_aiohttp_stream`), through the same connection pool
        self._aiohttp = AiohttpTransport(limits=limits) if transport == "aiohttp" else None
        self._http = httpx.AsyncClient(
            transport=self._aiohttp,
            headers=headers,
            # The first-byte and idle timeouts are enforced per read below; httpx's read timeout
            # is only a safety net behind them.
            timeout=httpx.Timeout(connect=t.connect, read=max(t.first_byte, t.idle) + 5,
                                  write=_WRITE_TIMEOUT, pool=t.connect),
            limits=limits,
            follow_redirects=False,
        )
        # A stream's reads have their own deadlines (`_SSEReader`), so it goes without the safety net:
        # with it, the transport re-arms a timer for each network segment, and a token is a segment.
        self._stream_timeout = httpx.Timeout(connect=t.connect, read=None, write=_WRITE_TIMEOUT, pool=t.connect)
        self._aiohttp_timeout = aiohttp.ClientTimeout(total=None, connect=t.connect, sock_connect=t.connect,
                                                      sock_read=None)

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
                return _load_json(await self._read_body(response.aread))

        return await call_with_retries(once, self._retry.next_delay)

    @asynccontextmanager
    async def _sse_events(self, path: str, body: JSONBody) -> AsyncIterator[_SSEReader]:
        started = asyncio.get_running_loop().time()
        if self._aiohttp is not None:
            async with self._aiohttp_stream(path, body) as stream:
                # aiohttp's `readany` takes all that has come; pausing its transport while the stream
                # gathers lets the kernel join the segments that come meanwhile into one
                reader = _SSEReader(stream.content.readany, stream.headers, self._timeouts, started,
                                    stream.connection.transport if stream.connection else None, drains=True)
                async with reader.reading():
                    yield reader
            return
        async with self._open("POST", path, content=body, accept="text/event-stream",
                              safety_net=self._stream_timeout) as response:
            reader = _SSEReader(partial(anext, response.aiter_bytes(), b""), response.headers, self._timeouts,
                                started)
            async with reader.reading():
                yield reader

    @asynccontextmanager
    async def _aiohttp_stream(self, path: str, body: JSONBody) -> AsyncIterator[aiohttp.ClientResponse]:
        """A streamed request sent with the aiohttp session under the httpx client (its pool, its headers):
        the body is then read with one call per network read, not through httpx's layers of generators."""
        assert self._aiohttp is not None
        if not isinstance(self._aiohttp.client, aiohttp.ClientSession):  # made at the first request
            self._aiohttp.client = self._aiohttp.get_client()
        request = self._http.build_request("POST", self._base_url + path,
                                           headers=self._headers(body, "text/event-stream"))
        response = await self._send(self._aiohttp.client.request(
            "POST", str(request.url), headers=request.headers, data=body, allow_redirects=False,
            timeout=self._aiohttp_timeout))
        async with response:
            if response.status >= 400:
                raw = await self._read_body(response.read)
                raise _http_error(response.status, raw, response.headers)
            yield response

    @asynccontextmanager
    async def _open(self, method: str, path: str, *, content: JSONBody | None = None,
                    params: dict[str, str] | None = None,
                    accept: str = "application/json",
                    safety_net: httpx.Timeout | None = None) -> AsyncIterator[httpx.Response]:
        """Send a request; yield the response once its headers arrived with a success status."""
        request = self._http.build_request(method, self._base_url + path, content=content,
                                           params=params, headers=self._headers(content, accept),
                                           timeout=safety_net or httpx.USE_CLIENT_DEFAULT)
        response = await self._send(self._http.send(request, stream=True))
        try:
            if response.status_code >= 400:
                raise _http_error(response.status_code, await self._read_body(response.aread), response.headers)
            yield response
        finally:
            await response.aclose()

    async def _send(self, sending: Awaitable[T]) -> T:
        """A request sent, through httpx or aiohttp, until its response headers came (within the first-byte
        timeout); failing to reach OpenRouter becomes a typed error."""
        try:
            async with asyncio.timeout(self._timeouts.first_byte):
                return await sending
        except (httpx.TimeoutException, aiohttp.ServerTimeoutError) as exc:  # (the latter is a TimeoutError)
            raise ConnectionFailed(f"timed out connecting to OpenRouter ({type(exc).__name__})") from None
        except _READ_ERRORS as exc:
            raise ConnectionFailed(f"cannot reach OpenRouter: {type(exc).__name__}: {exc}") from None
        except TimeoutError:
            raise _timeout(f"no response from OpenRouter within {self._timeouts.first_byte:g} s") from None

    @staticmethod
    def _headers(content: JSONBody | None, accept: str) -> dict[str, str]:
        headers = {"Accept": accept}
        if content is not None:  # sent as it is encoded, with its length known (not chunked)
            headers |= {"Content-Type": "application/json", "Content-Length": str(content.length)}
        return headers

    async def _read_body(self, read: Callable[[], Awaitable[bytes]]) -> bytes:
        try:
            async with asyncio.timeout(self._timeouts.idle):
                return await read()
        except TimeoutError:
            raise RequestTimeout(f"OpenRouter stopped sending for {self._timeouts.idle:g} s") from None
        except _READ_ERRORS as exc:
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
    `generation_id` is the response's `X-Generation-Id`. `read` gives the body's next bytes (b"" at its end).

    A read waits at most `idle` seconds, and never past the stream's deadlines: `total` seconds after
    the request was sent, `idle_content` seconds after the last data event (or the response headers).
    A dropped connection becomes `StreamInterrupted`.

    The deadlines are watched by one timer per stream, not one per read (a read is often one token): a read
    only notes when it began; the timer, when it goes off, cancels a read that is past its deadline, or
    is set again for the deadline that progress has moved it to.
    """

    __slots__ = ("_armed_for", "_cancelling", "_content_at", "_decoder", "_ended", "_loop", "_read", "_read_at",
                 "_started", "_task", "_timeouts", "_timer", "_transport", "drains", "generation_id")

    def __init__(self, read: Callable[[], Awaitable[bytes]], headers: Mapping[str, str], timeouts: Timeouts,
                 started: float, transport: asyncio.Transport | None = None, *, drains: bool = False) -> None:
        self._transport = transport
        self.drains = drains
        # OpenRouter names the generation in the headers, before any token: what it may bill
        self.generation_id: str | None = headers.get("X-Generation-Id") or None
        self._read = read
        self._decoder = SSEDecoder()
        self._timeouts = timeouts
        self._loop = asyncio.get_running_loop()
        self._started = started
        self._content_at = self._loop.time()
        self._ended = False
        self._read_at: float | None = None  # when the read under way began
        self._task: asyncio.Task[Any] | None = None  # the task waiting for it
        self._timer: asyncio.TimerHandle | None = None
        self._armed_for = 0.0  # the deadline the timer was set for
        self._cancelling: int | None = None  # the task's cancel count before the timer cancelled it

    def __aiter__(self) -> _SSEReader:
        return self

    async def __anext__(self) -> list[bytes]:
        if self._ended:
            raise StopAsyncIteration
        now = self._loop.time()
        if self._due(now) <= now:  # a read of data already buffered would not time out
            raise self._expired(now)
        self._read_at, self._task = now, asyncio.current_task()
        if self._timer is None:
            self._arm(now)
        try:
            chunk = await self._read()
        except asyncio.CancelledError:
            if self._cancelling is not None and self._timed_out():
                raise self._expired(now) from None
            raise
        except _READ_ERRORS as exc:
            raise StreamInterrupted(f"connection lost mid-stream: {type(exc).__name__}") from None
        finally:
            self._read_at = None
        if not chunk:
            self._ended = True
            return self._decoder.flush()
        events = self._decoder.feed(chunk)
        if events:
            self._content_at = self._loop.time()
        return events

    async def gather(self, seconds: float) -> None:
        """Wait while the body collects, with the connection's reading paused (when there is a transport
        to pause): what comes meanwhile is then read with one system call and parsed in one go.

        The wait (half to one and a half times `seconds`) ends on the loop clock's next multiple of `seconds`:
        the streams that gather at once wake together, in one turn of the event loop, not each in its own."""
        now = self._loop.time()
        wait = (now + seconds * 0.5) // seconds * seconds + seconds - now
        transport = self._transport
        if transport is None or not transport.is_reading():
            await asyncio.sleep(wait)
            return
        transport.pause_reading()
        try:
            await asyncio.sleep(wait)
        finally:
            transport.resume_reading()

    @asynccontextmanager
    async def reading(self) -> AsyncIterator[None]:
        """While the stream is read. Once its answer is done ([DONE]), the body's end (which comes right
        after) is waited for a moment: a connection whose response was not read to its end is not reused."""
        try:
            yield
            if not self._ended:
                with contextlib.suppress(OpenRouterError, TimeoutError):
                    async with asyncio.timeout(_END_GRACE):
                        async for _ in self:
                            pass
        finally:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None

    def _due(self, read_at: float) -> float:
        """When a read begun at `read_at` times out."""
        t = self._timeouts
        return min(read_at + t.idle, self._started + t.total, self._content_at + t.idle_content)

    def _arm(self, read_at: float) -> None:
        self._armed_for = due = self._due(read_at)
        self._timer = self._loop.call_at(due, self._check)

    def _check(self) -> None:
        """The timer went off: cancel the read under way if its deadline has come, else watch on."""
        self._timer = None
        read_at, task = self._read_at, self._task
        if read_at is None or task is None:
            return  # no read under way: the next one sets the timer again
        if self._due(read_at) > self._armed_for:  # progress since the timer was set
            self._arm(read_at)
            return
        self._cancelling = task.cancelling()
        task.cancel()

    def _timed_out(self) -> bool:
        """The read was cancelled by the timer alone (not also by a Stop or a shutdown)."""
        assert self._task is not None and self._cancelling is not None
        cancelling, self._cancelling = self._cancelling, None
        return self._task.uncancel() <= cancelling

    def _expired(self, read_at: float) -> RequestTimeout:
        t = self._timeouts
        total_left = self._started + t.total - read_at
        content_left = self._content_at + t.idle_content - read_at
        if total_left <= min(t.idle, content_left):
            return _timeout(f"the answer took longer than the {t.total:g} s allowed")
        if content_left <= t.idle:
            return _timeout(f"OpenRouter sent nothing but keep-alives for {t.idle_content:g} s")
        return _timeout(f"no data from OpenRouter for {t.idle:g} s")


def _http_error(status: int, raw: bytes, headers: Mapping[str, str]) -> OpenRouterError:
    """The typed error for a response with an error status."""
    message, _code, metadata = parse_error_body(raw)
    return classify(status, message, metadata, headers=headers)


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
