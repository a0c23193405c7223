"""A local fake OpenRouter HTTP server for tests and benchmarks.

It speaks OpenRouter's wire format (SSE chat streams, JSON bodies, JSON error envelopes) over real
sockets on 127.0.0.1, using aiohttp: what the bot uses, no more. Chat is streamed only. Replies can be
scripted per route; when a route's script is empty its default applies (a generated chat stream that
echoes the last user message, the recorded models list and key, the generations it streamed).

In tests::

    async with FakeOpenRouter() as fake:            # or: fake = FakeOpenRouter(); await fake.start()
        fake.script("chat", JSONReply(429, fixture_bytes("error-429-upstream-provider.json"),
                                      {"Retry-After": "1"}))
        ...  # point the client at fake.base_url; the 2nd chat request gets the default generated stream
        assert fake.chat_requests()[0].json()["model"] == "openai/gpt-4o"

Benchmarks: `on_request` and `on_stream_start` tell when requests arrive and when generated streams
start; standalone, ``python -m tests.fakes.openrouter_server --port 0 --chunks 20000`` prints the base
URL on its first stdout line and serves until killed.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import math
import random
import signal
import string
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import quote

from aiohttp import web
from aiohttp.typedefs import Handler

FIXTURES_DIR = Path(__file__).resolve().parent.parent / "fixtures"
KEEPALIVE_FRAME = b": OPENROUTER PROCESSING\n\n"
DONE_FRAME = b"data: [DONE]\n\n"
API_PREFIX = "/api/v1"
ROUTES = ("chat", "models", "key", "generation")
PROMPT_PRICE = Decimal("0.000001")  # USD per token of the generated answers
COMPLETION_PRICE = Decimal("0.000002")
PROVIDER = "FakeProvider"
MAX_GENERATIONS = 10_000  # /generation records kept (a long benchmark must not grow without end)

_ID_ALPHABET = string.ascii_letters + string.digits
_BULK_TEXT = "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor. "
_BULK_ID = "gen-0000000000-BULKPLACEHOLDER000000"
_BATCH_BYTES = 64 * 1024


def fixture_bytes(name: str) -> bytes:
    return (FIXTURES_DIR / name).read_bytes()


def fixture_json(name: str) -> Any:
    return json.loads(fixture_bytes(name))


def split_sse(data: bytes) -> list[bytes]:
    """An SSE body cut into frames after each blank line; ``b"".join(split_sse(data)) == data``."""
    frames = [frame + b"\n\n" for frame in data.split(b"\n\n")]
    last = frames.pop()[:-2]
    return [*frames, last] if last else frames


def sse_frames(name: str) -> list[bytes]:
    """The frames of the recording ``tests/fixtures/<name>``."""
    return split_sse(fixture_bytes(name))


def _dumps(obj: Any) -> bytes:
    """Compact JSON like OpenRouter's (raw UTF-8, no spaces); Decimals become JSON numbers."""
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"), default=float).encode()


def data_frame(obj: Any) -> bytes:
    """One SSE ``data:`` frame holding ``obj`` as compact JSON."""
    return b"data: " + _dumps(obj) + b"\n\n"


def _content_text(content: Any) -> str:
    if isinstance(content, list):
        return "\n".join(str(p.get("text", "")) for p in content if isinstance(p, dict) and p.get("type") == "text")
    return content if isinstance(content, str) else ""


def last_user_text(body: dict[str, Any]) -> str:
    users = [m for m in body.get("messages") or [] if isinstance(m, dict) and m.get("role") == "user"]
    return _content_text(users[-1].get("content")) if users else ""


def echo_reply(body: dict[str, Any]) -> str:
    """The default answer: ``"Echo: "`` + the text of the last user message."""
    return "Echo: " + last_user_text(body)


def _prompt_tokens(body: dict[str, Any]) -> int:
    """ceil(characters of every message / 4) + 85 per image."""
    chars = images = 0
    for message in body.get("messages") or []:
        content = message.get("content") if isinstance(message, dict) else None
        chars += len(_content_text(content))
        if isinstance(content, list):
            images += sum(1 for p in content if isinstance(p, dict) and p.get("type") == "image_url")
    return math.ceil(chars / 4) + 85 * images


# --------------------------------------------------------------------------------------------
# Recorded requests, scripted replies, benchmark hooks
# --------------------------------------------------------------------------------------------


@dataclass
class Recorded:
    """One request the server received (recorded before it is answered)."""

    method: str
    path: str  # full path, e.g. "/api/v1/chat/completions"
    query: dict[str, str]
    headers: dict[str, str]  # names lower-cased
    body: bytes
    at: float = field(default_factory=time.monotonic)
    peer: str = ""  # the client's address and port: which connection carried the request

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class JSONReply:
    """A scripted JSON reply: a dict/list body is sent as JSON, bytes/str as they are."""

    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class SSEReply:
    """A scripted SSE reply: raw ``events`` or the frames of a recording (``fixture``), with faults."""

    events: Sequence[bytes | str] | None = None
    fixture: str | None = None
    delay_before: float = 0  # before the response headers
    interval: float = 0  # between two frames
    keepalive_every: float | None = None  # keep-alive comments while waiting
    drop_after: int | None = None  # cut the connection after this many frames
    split_writes: bool = False  # write each frame in pieces, cutting UTF-8 characters and lines
    generation_id: str | None = None  # sent as the `X-Generation-Id` header, as OpenRouter does

    def frames(self) -> list[bytes]:
        if self.fixture is not None:
            return sse_frames(self.fixture)
        return [e.encode() if isinstance(e, str) else bytes(e) for e in self.events or ()]


@dataclass
class DropConnection:
    """Close the socket without sending any response."""


Reply = JSONReply | SSEReply | DropConnection


@dataclass
class StreamStart:
    """Given to `FakeOpenRouter.on_stream_start` just before a generated stream's headers are sent."""

    at: float  # time.monotonic(); the first content chunk leaves in the same write as the headers
    body: dict[str, Any]  # the request
    text: str  # the whole answer
    first_piece: str  # the first content chunk
    completion_tokens: int


@dataclass
class _Answer:
    """A generated answer, decided once per request."""

    gen_id: str
    model: str
    text: str
    pieces: list[str]
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int
    search_results: int = 0  # the `web` plugin ran (through Exa): results found, each billed
    citations: list[dict[str, Any]] = field(default_factory=list)  # its `url_citation` annotations

    @property
    def cost(self) -> Decimal:
        return (self.prompt_tokens * PROMPT_PRICE + self.completion_tokens * COMPLETION_PRICE
                + self.search_results * SEARCH_PRICE_PER_RESULT)

    def chunk(self, content: str, finish: str | None) -> dict[str, Any]:
        delta: dict[str, Any] = {"content": content, "role": "assistant"}
        if finish and self.citations:  # OpenRouter streams the annotations with the answer's text
            delta["annotations"] = self.citations
        return {"id": self.gen_id, "object": "chat.completion.chunk", "created": int(time.time()),
                "model": self.model, "provider": PROVIDER,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "native_finish_reason": finish}]}

    def content_frames(self) -> list[bytes]:
        return [self.content_frame(i) for i in range(len(self.pieces))]

    def content_frame(self, i: int) -> bytes:
        return data_frame(self.chunk(self.pieces[i], self.finish_reason if i == len(self.pieces) - 1 else None))

    def tail_frames(self) -> list[bytes]:
        usage = {
            "prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens, "cost": self.cost, "is_byok": False,
            "prompt_tokens_details": {"cached_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0},
        }
        chunk = {"id": self.gen_id, "object": "chat.completion.chunk", "created": int(time.time()),
                 "model": self.model, "provider": PROVIDER, "choices": [], "usage": usage}
        return [data_frame(chunk), DONE_FRAME]


class _PacedFrames(Sequence[bytes]):
    """A generated answer's frames (a keep-alive, one per piece, the usage and [DONE]), each encoded when
    it is sent: a server does not have a long answer's last tokens when it sends the first (and encoding
    hundreds of frames for each of many requests at once delayed every first token)."""

    def __init__(self, answer: _Answer) -> None:
        self._answer = answer
        self._tail: list[bytes] | None = None

    def __len__(self) -> int:
        return len(self._answer.pieces) + 3

    def __getitem__(self, i: int) -> bytes:  # type: ignore[override]
        pieces = len(self._answer.pieces)
        if not -len(self) <= i < len(self):
            raise IndexError(i)
        i %= len(self)
        if i == 0:
            return KEEPALIVE_FRAME
        if i <= pieces:
            return self._answer.content_frame(i - 1)
        if self._tail is None:
            self._tail = self._answer.tail_frames()
        return self._tail[i - pieces - 1]


SEARCH_PRICE_PER_RESULT = Decimal("0.004")  # Exa, as OpenRouter documents it
SEARCH_TOKENS_PER_RESULT = 400


def search_citation(number: int, query: str) -> dict[str, Any]:
    """A `url_citation` annotation as OpenRouter streams it for a web search result."""
    return {"type": "url_citation", "url_citation": {
        "url": f"https://example.org/results/{number}?q={quote(query[:40])}", "title": f"Result {number}: {query[:60]}",
        "content": f"What page {number} says about {query[:60]}.", "start_index": 0, "end_index": 0}}


def _new_gen_id() -> str:
    return f"gen-{int(time.time())}-" + "".join(random.choices(_ID_ALPHABET, k=20))


# --------------------------------------------------------------------------------------------
# The server
# --------------------------------------------------------------------------------------------


class FakeOpenRouter:
    """Fake OpenRouter API on 127.0.0.1 (aiohttp). See the module docstring and the tests."""

    def __init__(self) -> None:
        self.models: list[dict[str, Any]] = fixture_json("models-sample.json")["data"]
        self.key_info: dict[str, Any] = fixture_json("key-sample-docs.json")
        self.requests: list[Recorded] = []
        self.record_requests = True
        self.base_url = ""
        self.keepalive_timeout: float | None = None  # seconds an idle connection is kept (aiohttp's default)

        # the generated answers
        self.reply_text: str | Callable[[dict[str, Any]], str] = echo_reply
        self.tokens_per_second: float | None = None  # None: as fast as possible
        self.chunk_chars = 4  # characters per content chunk (4 characters count as one token)
        self.stream_chunks: int | None = None  # benchmarks: this many chunks of filler text instead
        self.use_fallback_model = False  # answer with the first of `models` other than `model`

        # /generation: records of the generated streams, by id (tests may add their own)
        self.generations: dict[str, dict[str, Any]] = {}
        self.generation_404_first = 0  # answer 404 to the first N lookups of each id
        self._lookups: dict[str, int] = {}

        # benchmark hooks
        self.on_request: Callable[[Recorded], None] | None = None
        self.on_stream_start: Callable[[StreamStart], None] | None = None

        self._scripts: dict[str, deque[Reply]] = {route: deque() for route in ROUTES}
        self._runner: web.AppRunner | None = None
        self._active: set[asyncio.Task[Any]] = set()
        self._bulk: dict[tuple[int, int, str], list[bytes]] = {}

    async def start(self, *, host: str = "127.0.0.1", port: int = 0) -> None:
        app = web.Application(middlewares=[self._middleware], client_max_size=64 * 1024 * 1024)
        app.router.add_post(f"{API_PREFIX}/chat/completions", self._handle_chat)
        app.router.add_get(f"{API_PREFIX}/models", self._handle_models)
        app.router.add_get(f"{API_PREFIX}/key", self._handle_key)
        app.router.add_get(f"{API_PREFIX}/generation", self._handle_generation)
        kept = {} if self.keepalive_timeout is None else {"keepalive_timeout": self.keepalive_timeout}
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0, **kept)
        await runner.setup()
        await web.TCPSite(runner, host, port, reuse_address=True).start()
        self._runner = runner
        self.base_url = f"http://{host}:{runner.addresses[0][1]}{API_PREFIX}"

    async def close(self) -> None:
        runner, self._runner = self._runner, None
        if runner is None:
            return
        for task in list(self._active):
            task.cancel()
        await runner.cleanup()

    async def __aenter__(self) -> FakeOpenRouter:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def script(self, route: str, *replies: Reply) -> None:
        """Queue replies for ``route`` ("chat", "models", "key", "generation"), used in order."""
        if route not in self._scripts:
            raise ValueError(f"unknown route {route!r}; expected one of {ROUTES}")
        self._scripts[route].extend(replies)

    def chat_requests(self) -> list[Recorded]:
        return [r for r in self.requests if r.path == f"{API_PREFIX}/chat/completions"]

    # ---------------------------------------------------------------- plumbing

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        headers: dict[str, str] = {}
        for name, value in request.headers.items():
            key = name.lower()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        peer = request.transport.get_extra_info("peername") if request.transport is not None else None
        recorded = Recorded(request.method, request.path, dict(request.query), headers, await request.read(),
                            peer=f"{peer[0]}:{peer[1]}" if peer else "")
        if self.record_requests:
            self.requests.append(recorded)
        if self.on_request is not None:
            self.on_request(recorded)
        task = asyncio.current_task()
        if task is not None:
            self._active.add(task)
        try:
            return await handler(request)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            return _json(exc.status, {"error": {"code": exc.status, "message": exc.reason}})
        finally:
            if task is not None:
                self._active.discard(task)

    async def _scripted(self, route: str, request: web.Request) -> web.StreamResponse | None:
        """Play the next scripted reply for ``route``; None if there is none."""
        if not self._scripts[route]:
            return None
        reply = self._scripts[route].popleft()
        if isinstance(reply, DropConnection):
            if request.transport is not None:
                request.transport.close()
            return web.Response(status=204)  # aiohttp fails to write it to the closed socket and moves on
        if isinstance(reply, JSONReply):
            if isinstance(reply.body, bytes | str):
                raw = reply.body.encode() if isinstance(reply.body, str) else reply.body
                return web.Response(status=reply.status, body=raw,
                                    headers={"Content-Type": "application/json", **reply.headers})
            return _json(reply.status, reply.body, reply.headers)
        if reply.delay_before > 0:
            await asyncio.sleep(reply.delay_before)
        frames = reply.frames()
        return await self._stream(request, frames, [0.0] + [reply.interval] * (len(frames) - 1),
                                  gen_id=reply.generation_id, keepalive_every=reply.keepalive_every,
                                  drop_after=reply.drop_after, split_writes=reply.split_writes)

    # ---------------------------------------------------------------- handlers

    async def _handle_chat(self, request: web.Request) -> web.StreamResponse:
        scripted = await self._scripted("chat", request)
        if scripted is not None:
            return scripted
        try:
            body = json.loads(await request.read())
        except ValueError:
            body = None
        if not isinstance(body, dict) or body.get("stream") is not True:
            return _json(400, {"error": {"code": 400, "message": "the fake OpenRouter takes streamed JSON requests"}})
        answer = self._answer(body)
        self._record_generation(answer)
        bulk = self.stream_chunks is not None and not self.tokens_per_second
        frames: Sequence[bytes]
        if bulk:  # already in ~64 KiB writes
            frames, waits = self._bulk_frames(answer), None
        else:
            frames = _PacedFrames(answer)
            waits = self._pacing(answer, len(frames))
        if self.on_stream_start is not None:
            self.on_stream_start(StreamStart(time.monotonic(), body, answer.text, answer.pieces[0],
                                             answer.completion_tokens))
        return await self._stream(request, frames, waits, gen_id=answer.gen_id, coalesce=not bulk)

    async def _handle_models(self, request: web.Request) -> web.StreamResponse:
        scripted = await self._scripted("models", request)
        return _json(200, {"data": self.models}) if scripted is None else scripted

    async def _handle_key(self, request: web.Request) -> web.StreamResponse:
        scripted = await self._scripted("key", request)
        return _json(200, self.key_info) if scripted is None else scripted

    async def _handle_generation(self, request: web.Request) -> web.StreamResponse:
        scripted = await self._scripted("generation", request)
        if scripted is not None:
            return scripted
        gen_id = request.query.get("id", "")
        self._lookups[gen_id] = seen = self._lookups.get(gen_id, 0) + 1
        data = self.generations.get(gen_id)
        if data is None or seen <= self.generation_404_first:
            return _json(404, {"error": {"code": 404, "message": "Generation not found"}})
        return _json(200, {"data": data})

    # ---------------------------------------------------------------- generated answers

    def _answer(self, body: dict[str, Any]) -> _Answer:
        model = body.get("model") or "openai/gpt-4o"
        if self.use_fallback_model:
            model = next((m for m in body.get("models") or [] if m != model), model)
        if model == "openrouter/auto":
            model = self.models[0]["id"]
        size, finish = max(1, self.chunk_chars), "stop"
        if self.stream_chunks is not None:
            total = self.stream_chunks * size
            text = (_BULK_TEXT * (total // len(_BULK_TEXT) + 1))[:total]
        else:
            text = self.reply_text(body) if callable(self.reply_text) else self.reply_text
            limit = body.get("max_tokens")
            if isinstance(limit, int) and math.ceil(len(text) / 4) > limit:
                text, finish = text[: limit * 4], "length"
        pieces = [text[i: i + size] for i in range(0, len(text), size)] or [""]
        answer = _Answer(_new_gen_id(), model, text, pieces, finish, _prompt_tokens(body), math.ceil(len(text) / 4))
        web = next((p for p in body.get("plugins") or () if isinstance(p, dict) and p.get("id") == "web"), None)
        if web is not None:  # the results reach the model as prompt tokens, and each result is billed
            answer.search_results = int(web.get("max_results") or 5)
            answer.citations = [search_citation(i, last_user_text(body)) for i in range(1, answer.search_results + 1)]
            answer.prompt_tokens += SEARCH_TOKENS_PER_RESULT * answer.search_results
        return answer

    def _pacing(self, answer: _Answer, n_frames: int) -> list[float] | None:
        """Per-frame waits implementing ``tokens_per_second`` (the keep-alive frame comes first)."""
        tps = self.tokens_per_second
        if not tps:
            return None
        waits = [0.0] * n_frames
        for i, piece in enumerate(answer.pieces[1:], start=2):
            waits[i] = len(piece) / 4 / tps
        return waits

    def _bulk_frames(self, answer: _Answer) -> list[bytes]:
        """Benchmarks' long streams, built once per shape (in ~64 KiB writes) and given this answer's id."""
        key = (len(answer.pieces), len(answer.pieces[0]), answer.model)
        batches = self._bulk.get(key)
        if batches is None:
            template = _Answer(_BULK_ID, answer.model, answer.text, answer.pieces, "stop", 0, 0)
            batches, batch, size = [], [KEEPALIVE_FRAME], 0
            for frame in template.content_frames():
                batch.append(frame)
                size += len(frame)
                if size >= _BATCH_BYTES:
                    batches.append(b"".join(batch))
                    batch, size = [], 0
            batches.append(b"".join(batch))
            self._bulk = {key: batches}  # one shape at a time is all a benchmark needs
        new_id = answer.gen_id.encode()
        return [b.replace(_BULK_ID.encode(), new_id) for b in batches] + [b"".join(answer.tail_frames())]

    def _record_generation(self, answer: _Answer) -> None:
        """What `GET /generation` reports about a generated answer (the fields the bot reads)."""
        self.generations[answer.gen_id] = {
            "id": answer.gen_id, "total_cost": float(answer.cost), "model": answer.model, "provider_name": PROVIDER,
            "tokens_prompt": answer.prompt_tokens, "tokens_completion": answer.completion_tokens,
            "finish_reason": answer.finish_reason, "native_finish_reason": answer.finish_reason,
            "streamed": True, "cancelled": False,
        }
        while len(self.generations) > MAX_GENERATIONS:
            oldest = next(iter(self.generations))
            del self.generations[oldest]
            self._lookups.pop(oldest, None)

    # ---------------------------------------------------------------- streaming

    async def _stream(self, request: web.Request, frames: Sequence[bytes], waits: Sequence[float] | None, *,
                      gen_id: str | None = None, keepalive_every: float | None = None,
                      drop_after: int | None = None, split_writes: bool = False,
                      coalesce: bool = False) -> web.StreamResponse:
        """Send ``frames``, waiting ``waits[i]`` before frame i; frames due at once share a write if
        ``coalesce``. ``drop_after`` cuts the connection (no chunked terminator) after that many."""
        headers = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        if gen_id:
            headers["X-Generation-Id"] = gen_id
        resp = web.StreamResponse(status=200, headers=headers)
        sent = 0
        try:
            await resp.prepare(request)
            loop = asyncio.get_running_loop()
            target, pending = loop.time(), list[bytes]()
            for frame in itertools.islice(frames, drop_after):
                wait = waits[sent] if waits else 0.0
                if wait > 0:
                    target = max(target, loop.time() - 0.05) + wait
                    if target > loop.time():
                        if pending:
                            await resp.write(b"".join(pending))
                            pending.clear()
                        await _sleep_until(resp, target, keepalive_every)
                if coalesce:
                    pending.append(frame)
                elif split_writes:
                    await _write_split(resp, frame)
                else:
                    await resp.write(frame)
                sent += 1
            if pending:
                await resp.write(b"".join(pending))
            if sent < len(frames) and request.transport is not None:
                request.transport.close()
        except ConnectionError:
            pass
        finally:
            if gen_id in self.generations:
                self.generations[gen_id]["cancelled"] = sent < len(frames)
        return resp


async def _sleep_until(resp: web.StreamResponse, target: float, keepalive_every: float | None) -> None:
    loop = asyncio.get_running_loop()
    while keepalive_every and target - loop.time() > keepalive_every:
        await asyncio.sleep(keepalive_every)
        await resp.write(KEEPALIVE_FRAME)
    await asyncio.sleep(max(0.0, target - loop.time()))


async def _write_split(resp: web.StreamResponse, frame: bytes) -> None:
    """Write a frame in pieces: cut inside multi-byte UTF-8 characters, inside the line and inside \\n\\n."""
    continuation = [i for i in range(1, len(frame)) if frame[i] & 0xC0 == 0x80]
    cuts = {3, len(frame) // 2, len(frame) - 1, *continuation[:3], *continuation[-1:]}
    start = 0
    for cut in [*sorted(c for c in cuts if 0 < c < len(frame)), len(frame)]:
        await resp.write(frame[start:cut])
        start = cut
        if cut < len(frame):
            await asyncio.sleep(0.001)


def _json(status: int, payload: Any, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(status=status, body=_dumps(payload), headers={"Content-Type": "application/json",
                                                                     **(headers or {})})


# --------------------------------------------------------------------------------------------
# Standalone mode
# --------------------------------------------------------------------------------------------


async def serve_until_signalled(fake: FakeOpenRouter, *, host: str = "127.0.0.1", port: int = 0) -> None:
    """Start `fake`, print its base URL as the first line, serve until SIGTERM or SIGINT."""
    await fake.start(host=host, port=port)
    print(fake.base_url, flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await fake.close()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Fake OpenRouter server (prints its base URL first).")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--chunks", type=int, default=None, help="content chunks per generated stream")
    parser.add_argument("--tps", type=float, default=None, help="tokens per second per stream (a write per chunk)")
    args = parser.parse_args(argv)
    fake = FakeOpenRouter()
    fake.stream_chunks = args.chunks
    fake.tokens_per_second = args.tps
    fake.record_requests = False
    asyncio.run(serve_until_signalled(fake, port=args.port))


if __name__ == "__main__":
    main()
