"""A local fake OpenRouter HTTP server for tests and benchmarks.

It speaks OpenRouter's wire format (SSE chat streams, JSON bodies, JSON error envelopes) over real
sockets on 127.0.0.1, using aiohttp. Responses can be scripted per route; when a route's script queue
is empty the route's default behaviour applies (a generated chat stream, the models list, ...).

In tests::

    async with FakeOpenRouter() as fake:            # or: fake = FakeOpenRouter(); await fake.start()
        fake.script("chat", JSONReply(status=429, body=fixture_json("error-429-upstream-provider.json"),
                                      headers={"Retry-After": "1"}))
        ...  # point the client at fake.base_url; the 2nd chat request gets the default generated stream
        assert fake.chat_requests()[0].json()["model"] == "openai/gpt-4o"

Standalone (for benchmarks)::

    python -m tests.fakes.openrouter_server --port 0 --chunks 20000

prints the base URL on its first stdout line and serves until killed.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import functools
import json
import math
import random
import re
import signal
import string
import time
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from http import HTTPStatus
from pathlib import Path
from typing import Any, Literal

from aiohttp import web
from aiohttp.typedefs import Handler

__all__ = [
    "DONE_FRAME",
    "FIXTURES_DIR",
    "KEEPALIVE_FRAME",
    "DropConnection",
    "FakeOpenRouter",
    "JSONReply",
    "Recorded",
    "SSEReply",
    "data_frame",
    "echo_reply",
    "fixture_bytes",
    "fixture_json",
    "main",
    "split_sse",
    "sse_frames",
]

FIXTURES_DIR = Path(__file__).resolve().parent.parent / "fixtures"

KEEPALIVE_FRAME = b": OPENROUTER PROCESSING\n\n"
DONE_FRAME = b"data: [DONE]\n\n"

# Whitespace keep-alive padding that real OpenRouter puts before non-streaming JSON bodies
# (copied from the start of chat-completion-nonstream.json).
NONSTREAM_PADDING = b"\n         \n\n         \n"

API_PREFIX = "/api/v1"
Route = Literal["chat", "models", "key", "generation"]
ROUTES: tuple[str, ...] = ("chat", "models", "key", "generation")

_ID_ALPHABET = string.ascii_letters + string.digits
_BATCH_BYTES = 64 * 1024
_BULK_ID = "gen-9999999999-BULKPLACEHOLDER000000"
_BULK_CREATED = 9999999999
_BULK_MODEL = "@@fake-bulk-model@@"
_BULK_PROVIDER = "@@fake-bulk-provider@@"
_BULK_TEXT = "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor. "
_DEC_MARK = "__fake_or_decimal__"
_DEC_RE = re.compile(rf'"{_DEC_MARK}([-0-9.]+)"')


# --------------------------------------------------------------------------------------------
# Fixture helpers
# --------------------------------------------------------------------------------------------


def fixture_bytes(name: str) -> bytes:
    """Raw bytes of ``tests/fixtures/<name>``."""
    return (FIXTURES_DIR / name).read_bytes()


def fixture_json(name: str) -> Any:
    """Parsed JSON of ``tests/fixtures/<name>`` (leading whitespace padding is fine)."""
    return json.loads(fixture_bytes(name))


def split_sse(data: bytes) -> list[bytes]:
    """Split an SSE body into frames on blank lines; each frame keeps its trailing ``\\n\\n``.

    ``b"".join(split_sse(data)) == data`` always holds.
    """
    frames: list[bytes] = []
    start = 0
    while start < len(data):
        end = data.find(b"\n\n", start)
        if end < 0:
            frames.append(data[start:])
            break
        frames.append(data[start : end + 2])
        start = end + 2
    return frames


def sse_frames(name: str) -> list[bytes]:
    """Frames of the fixture ``tests/fixtures/<name>`` (an ``.sse`` file), split on blank lines."""
    return split_sse(fixture_bytes(name))


def _dumps(obj: Any) -> str:
    """Compact JSON like OpenRouter's (raw UTF-8, no spaces); Decimals become plain JSON numbers."""

    def conv(o: Any) -> Any:
        if isinstance(o, Decimal):
            text = format(o.normalize(), "f") if o else "0"
            return _DEC_MARK + text
        raise TypeError(f"not JSON serializable: {type(o).__name__}")

    text = json.dumps(obj, ensure_ascii=False, separators=(",", ":"), default=conv)
    if _DEC_MARK in text:
        text = _DEC_RE.sub(r"\1", text)
    return text


def data_frame(obj: Any) -> bytes:
    """One SSE ``data:`` frame holding ``obj`` as compact JSON."""
    return b"data: " + _dumps(obj).encode() + b"\n\n"


@functools.cache
def _generation_template() -> dict[str, Any]:
    data: dict[str, Any] = fixture_json("generation-sample-docs.json")["data"]
    return data


def _new_gen_id(now: int | None = None) -> str:
    stamp = int(time.time()) if now is None else now
    return f"gen-{stamp}-" + "".join(random.choices(_ID_ALPHABET, k=20))


# --------------------------------------------------------------------------------------------
# Recorded requests and scripted replies
# --------------------------------------------------------------------------------------------


@dataclass
class Recorded:
    """One request the server received (recorded before it is answered)."""

    method: str
    path: str  # full path, e.g. "/api/v1/chat/completions"
    query: dict[str, str]
    headers: dict[str, str]  # names lower-cased
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class JSONReply:
    """A scripted non-streaming reply.

    ``body``: dict/list -> JSON; str/bytes -> sent raw. ``None`` -> for status >= 400 a generic
    ``{"error": {"code", "message"}}`` body, otherwise the route's default body (for "chat" the
    non-streaming completion), so ``JSONReply(delay=2)`` is a slow default answer.
    """

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0


@dataclass
class SSEReply:
    """A scripted SSE reply.

    ``events`` (raw frames) or ``fixture`` (a tests/fixtures/*.sse name). If both are None, the
    server's own generated stream for the request is sent, with this reply's timing/fault options.
    """

    events: Sequence[bytes | str] | None = None
    fixture: str | None = None
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay_before: float = 0
    first_event_delay: float = 0
    interval: float = 0
    keepalive_every: float | None = None
    drop_after: int | None = None
    split_writes: bool = False
    split_pause: float = 0.001  # pause between the pieces of a split frame
    model: str | None = None  # generated mode only: override the response model


@dataclass
class DropConnection:
    """Close the socket without sending any response. ``reset=True`` aborts (RST) instead of FIN."""

    reset: bool = False


Reply = JSONReply | SSEReply | DropConnection


# --------------------------------------------------------------------------------------------
# Request text helpers
# --------------------------------------------------------------------------------------------


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = [
            str(part.get("text", ""))
            for part in content
            if isinstance(part, dict) and part.get("type") == "text"
        ]
        return "\n".join(texts)
    return ""


def _count_images(content: Any) -> int:
    if not isinstance(content, list):
        return 0
    return sum(
        1 for part in content if isinstance(part, dict) and part.get("type") in ("image_url", "input_image")
    )


def echo_reply(body: dict[str, Any]) -> str:
    """Default reply text: ``"Echo: "`` + the text of the last user message."""
    messages = body.get("messages")
    if isinstance(messages, list):
        for message in reversed(messages):
            if isinstance(message, dict) and message.get("role") == "user":
                return "Echo: " + _content_text(message.get("content"))
    return "Echo: "


def _prompt_usage(body: dict[str, Any]) -> tuple[int, int]:
    """(prompt_tokens, image_count): ceil(total message characters / 4) + 85 per image part."""
    chars = 0
    images = 0
    messages = body.get("messages")
    if isinstance(messages, list):
        for message in messages:
            if isinstance(message, dict):
                content = message.get("content")
                chars += len(_content_text(content))
                images += _count_images(content)
    return math.ceil(chars / 4) + 85 * images, images


def _int_or_none(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    return None


# --------------------------------------------------------------------------------------------
# The server
# --------------------------------------------------------------------------------------------


@dataclass
class _Plan:
    """Everything a generated response needs, decided once per request."""

    gen_id: str
    created: int
    model: str
    provider: str
    pieces: list[str]
    text: str
    finish_reason: str
    native_finish_reason: str
    prompt_tokens: int
    completion_tokens: int
    cost: Decimal
    prompt_cost: Decimal
    completion_cost: Decimal
    images: int
    router: str | None
    bulk: bool = False


class FakeOpenRouter:
    """Fake OpenRouter API on 127.0.0.1 (aiohttp). See the module docstring and the tests."""

    def __init__(self, *, models_fixture: str = "models-sample.json") -> None:
        models_body = fixture_json(models_fixture)
        self.models: list[dict[str, Any]] = copy.deepcopy(models_body["data"])
        # other top-level keys of the recorded /models body ("total_count", "links")
        self._models_envelope: dict[str, Any] = {k: v for k, v in models_body.items() if k != "data"}
        self.key_info: dict[str, Any] = copy.deepcopy(fixture_json("key-sample-docs.json"))
        self.requests: list[Recorded] = []
        self.record_requests: bool = True
        self.base_url: str = ""
        self.port: int = 0

        # generated stream parameters
        self.reply_text: str | Callable[[dict[str, Any]], str] = echo_reply
        self.tokens_per_second: float | None = None
        self.chunk_chars: int = 4
        self.prompt_price: Decimal = Decimal("0.000001")
        self.completion_price: Decimal = Decimal("0.000002")
        self.keepalive_first: bool = True
        self.stream_chunks: int | None = None
        self.provider_name: str = "FakeProvider"
        self.use_fallback_model: bool = False
        self.separate_finish_chunk: bool = False
        self.nonstream_padding: bytes = NONSTREAM_PADDING
        self.require_auth: bool = False

        # /generation
        self.generations: dict[str, dict[str, Any]] = {}
        self.generation_404_first: int = 0
        self.max_generations: int = 10_000
        self._generation_lookups: dict[str, int] = {}

        self._scripts: dict[str, deque[Reply]] = {route: deque() for route in ROUTES}
        self._runner: web.AppRunner | None = None
        self._active: set[asyncio.Task[Any]] = set()
        self._bulk_templates: dict[tuple[int, int, bool], list[bytes]] = {}
        self._bulk_cache: dict[tuple[str, str, int, int, bool], list[bytes]] = {}

    # ---------------------------------------------------------------- lifecycle

    async def start(self, *, host: str = "127.0.0.1", port: int = 0) -> None:
        app = web.Application(middlewares=[self._middleware], client_max_size=64 * 1024 * 1024)
        app.router.add_post(f"{API_PREFIX}/chat/completions", self._handle_chat)
        app.router.add_get(f"{API_PREFIX}/models", self._handle_models)
        app.router.add_get(f"{API_PREFIX}/key", self._handle_key)
        app.router.add_get(f"{API_PREFIX}/generation", self._handle_generation)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        site = web.TCPSite(runner, host, port, reuse_address=True)
        await site.start()
        self._runner = runner
        sockname = runner.addresses[0]
        self.port = int(sockname[1])
        self.base_url = f"http://{host}:{self.port}{API_PREFIX}"

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

    # ---------------------------------------------------------------- scripting / inspection

    def script(self, route: str, *replies: Reply) -> None:
        """Queue replies for ``route`` ("chat", "models", "key", "generation"), used in order."""
        if route not in self._scripts:
            raise ValueError(f"unknown route {route!r}; expected one of {ROUTES}")
        for reply in replies:
            if not isinstance(reply, JSONReply | SSEReply | DropConnection):
                raise TypeError(f"not a reply: {reply!r}")
            if isinstance(reply, SSEReply) and reply.events is not None and reply.fixture is not None:
                raise ValueError("SSEReply takes events or fixture, not both")
        self._scripts[route].extend(replies)

    def pending(self, route: str) -> int:
        """How many scripted replies are still queued for ``route``."""
        return len(self._scripts[route])

    def models_body(self) -> dict[str, Any]:
        """The default /models body: ``{"data": self.models}`` plus the recording's other keys."""
        body: dict[str, Any] = {"data": self.models, **self._models_envelope}
        if "total_count" in body:
            body["total_count"] = len(self.models)
        return body

    def chat_requests(self) -> list[Recorded]:
        return [r for r in self.requests if r.method == "POST" and r.path == f"{API_PREFIX}/chat/completions"]

    def reset(self) -> None:
        """Forget recorded requests, scripts and generations (settings are kept)."""
        self.requests.clear()
        for queue in self._scripts.values():
            queue.clear()
        self.generations.clear()
        self._generation_lookups.clear()

    # ---------------------------------------------------------------- plumbing

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        body = await request.read()
        if self.record_requests:
            headers: dict[str, str] = {}
            for name, value in request.headers.items():
                key = name.lower()
                headers[key] = f"{headers[key]}, {value}" if key in headers else value
            self.requests.append(
                Recorded(
                    method=request.method,
                    path=request.path,
                    query={k: v for k, v in request.query.items()},
                    headers=headers,
                    body=body,
                )
            )
        task = asyncio.current_task()
        if task is not None:
            self._active.add(task)
        try:
            if self.require_auth and not request.headers.get("Authorization", "").startswith("Bearer "):
                return self._json(401, fixture_json("error-401.json"))
            return await handler(request)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            return self._json(exc.status, {"error": {"code": exc.status, "message": exc.reason}})
        finally:
            if task is not None:
                self._active.discard(task)

    @staticmethod
    def _json(status: int, payload: Any, headers: dict[str, str] | None = None) -> web.Response:
        return web.Response(
            status=status,
            body=_dumps(payload).encode(),
            headers={"Content-Type": "application/json", **(headers or {})},
        )

    @staticmethod
    def _parse_body(raw: bytes) -> dict[str, Any] | None:
        try:
            parsed = json.loads(raw) if raw else None
        except ValueError:
            return None
        return parsed if isinstance(parsed, dict) else None

    async def _route(self, route: str, request: web.Request) -> web.StreamResponse | None:
        """Play the next scripted reply for ``route``; None if the queue is empty."""
        queue = self._scripts[route]
        if not queue:
            return None
        reply = queue.popleft()
        if isinstance(reply, DropConnection):
            return self._drop(request, reset=reply.reset)
        if isinstance(reply, JSONReply):
            return await self._play_json(route, request, reply)
        return await self._play_sse(request, reply)

    @staticmethod
    def _drop(request: web.Request, *, reset: bool) -> web.StreamResponse:
        transport = request.transport
        if transport is not None:
            if reset:
                transport.abort()
            else:
                transport.close()
        # aiohttp will fail to write this to the closed transport and drop it silently.
        return web.Response(status=204)

    async def _play_json(self, route: str, request: web.Request, reply: JSONReply) -> web.StreamResponse:
        if reply.delay > 0:
            await asyncio.sleep(reply.delay)
        extra = dict(reply.headers)
        if reply.body is None:
            if reply.status >= 400:
                try:
                    reason = HTTPStatus(reply.status).phrase
                except ValueError:
                    reason = "Error"
                return self._json(reply.status, {"error": {"code": reply.status, "message": reason}}, extra)
            default = await self._default_json(route, request)
            for name, value in extra.items():
                default.headers[name] = value
            return default
        if isinstance(reply.body, bytes | str):
            raw = reply.body.encode() if isinstance(reply.body, str) else reply.body
            headers = {"Content-Type": "application/json", **extra}
            return web.Response(status=reply.status, body=raw, headers=headers)
        return self._json(reply.status, reply.body, extra)

    async def _default_json(self, route: str, request: web.Request) -> web.Response:
        if route == "chat":
            body = self._parse_body(await request.read())
            if body is None:
                return self._invalid_body()
            return self._nonstream_response(request, body)
        if route == "models":
            return self._json(200, self.models_body())
        if route == "key":
            return self._json(200, self.key_info)
        return self._generation_lookup(request)

    # ---------------------------------------------------------------- handlers

    async def _handle_chat(self, request: web.Request) -> web.StreamResponse:
        scripted = await self._route("chat", request)
        if scripted is not None:
            return scripted
        body = self._parse_body(await request.read())
        if body is None:
            return self._invalid_body()
        if not body.get("stream"):
            return self._nonstream_response(request, body)
        plan = self._plan(request, body)
        if plan.bulk and self.tokens_per_second is None:
            return await self._send_bulk(request, body, plan)
        frames = self._plan_frames(plan)
        delays = self._pacing_delays(plan, len(frames))
        return await self._stream(request, frames, delays=delays, gen_id=plan.gen_id, plan=plan)

    async def _handle_models(self, request: web.Request) -> web.StreamResponse:
        scripted = await self._route("models", request)
        return scripted if scripted is not None else self._json(200, self.models_body())

    async def _handle_key(self, request: web.Request) -> web.StreamResponse:
        scripted = await self._route("key", request)
        return scripted if scripted is not None else self._json(200, self.key_info)

    async def _handle_generation(self, request: web.Request) -> web.StreamResponse:
        scripted = await self._route("generation", request)
        return scripted if scripted is not None else self._generation_lookup(request)

    def _invalid_body(self) -> web.Response:
        return self._json(400, {"error": {"code": 400, "message": "Invalid JSON request body"}})

    def _generation_lookup(self, request: web.Request) -> web.Response:
        gen_id = request.query.get("id")
        if not gen_id:
            return self._json(400, {"error": {"code": 400, "message": "Missing required parameter: id"}})
        seen = self._generation_lookups.get(gen_id, 0) + 1
        self._generation_lookups[gen_id] = seen
        data = self.generations.get(gen_id)
        if data is None or seen <= self.generation_404_first:
            return self._json(404, {"error": {"code": 404, "message": "Generation not found"}})
        return self._json(200, {"data": data})

    # ---------------------------------------------------------------- generation planning

    def _pick_model(self, body: dict[str, Any], override: str | None) -> tuple[str, str | None]:
        """(response model, router) for a request."""
        if override:
            return override, None
        models = body.get("models")
        fallbacks = [m for m in models if isinstance(m, str)] if isinstance(models, list) else []
        requested = body.get("model")
        primary = requested if isinstance(requested, str) and requested else None
        if primary is None:
            primary = fallbacks[0] if fallbacks else "openai/gpt-4o"
        if self.use_fallback_model:
            for candidate in fallbacks:
                if candidate != primary:
                    primary = candidate
                    break
        if primary == "openrouter/auto":
            concrete = next((m.get("id") for m in self.models if isinstance(m.get("id"), str)), None)
            return str(concrete or "openai/gpt-4o"), "openrouter/auto"
        return primary, None

    def _pick_provider(self, body: dict[str, Any]) -> str:
        prefs = body.get("provider")
        if isinstance(prefs, dict):
            for key in ("order", "only"):
                names = prefs.get(key)
                if isinstance(names, list) and names and isinstance(names[0], str):
                    return names[0]
        return self.provider_name

    def _plan(self, request: web.Request, body: dict[str, Any], *, model: str | None = None) -> _Plan:
        created = int(time.time())
        gen_id = _new_gen_id(created)
        resp_model, router = self._pick_model(body, model)
        provider = self._pick_provider(body)
        prompt_tokens, images = _prompt_usage(body)
        size = max(1, self.chunk_chars)
        finish = native = "stop"
        bulk = self.stream_chunks is not None
        if self.stream_chunks is not None:
            total = self.stream_chunks * size
            text = (_BULK_TEXT * (total // len(_BULK_TEXT) + 1))[:total]
        else:
            reply = self.reply_text
            text = reply(body) if callable(reply) else reply
            limit = _int_or_none(body.get("max_completion_tokens"))
            if limit is None:
                limit = _int_or_none(body.get("max_tokens"))
            if limit is not None and math.ceil(len(text) / 4) > limit:
                text = text[: max(0, limit) * 4]
                finish = native = "length"
        pieces = [text[i : i + size] for i in range(0, len(text), size)] or [""]
        completion_tokens = math.ceil(len(text) / 4)
        prompt_cost = prompt_tokens * self.prompt_price
        completion_cost = completion_tokens * self.completion_price
        plan = _Plan(
            gen_id=gen_id,
            created=created,
            model=resp_model,
            provider=provider,
            pieces=pieces,
            text=text,
            finish_reason=finish,
            native_finish_reason=native,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            cost=prompt_cost + completion_cost,
            prompt_cost=prompt_cost,
            completion_cost=completion_cost,
            images=images,
            router=router,
            bulk=bulk,
        )
        return plan

    def _usage(self, plan: _Plan) -> dict[str, Any]:
        return {
            "prompt_tokens": plan.prompt_tokens,
            "completion_tokens": plan.completion_tokens,
            "total_tokens": plan.prompt_tokens + plan.completion_tokens,
            "cost": plan.cost,
            "is_byok": False,
            "prompt_tokens_details": {
                "cached_tokens": 0,
                "cache_write_tokens": 0,
                "audio_tokens": 0,
                "video_tokens": 0,
            },
            "cost_details": {
                "upstream_inference_cost": plan.cost,
                "upstream_inference_prompt_cost": plan.prompt_cost,
                "upstream_inference_completions_cost": plan.completion_cost,
            },
            "completion_tokens_details": {"reasoning_tokens": 0, "image_tokens": 0, "audio_tokens": 0},
        }

    @staticmethod
    def _chunk(
        gen_id: str,
        created: int,
        model: str,
        provider: str,
        content: str,
        finish: str | None,
        native: str | None,
    ) -> dict[str, Any]:
        return {
            "id": gen_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "provider": provider,
            "choices": [
                {
                    "index": 0,
                    "delta": {"content": content, "role": "assistant"},
                    "finish_reason": finish,
                    "native_finish_reason": native,
                }
            ],
        }

    def _content_frames(self, plan: _Plan, gen_id: str, created: int) -> list[bytes]:
        frames: list[bytes] = []
        last = len(plan.pieces) - 1
        inline_finish = not self.separate_finish_chunk
        for i, piece in enumerate(plan.pieces):
            done = inline_finish and i == last
            chunk = self._chunk(
                gen_id,
                created,
                plan.model,
                plan.provider,
                piece,
                plan.finish_reason if done else None,
                plan.native_finish_reason if done else None,
            )
            frames.append(data_frame(chunk))
        if not inline_finish:
            chunk = self._chunk(
                gen_id, created, plan.model, plan.provider, "", plan.finish_reason, plan.native_finish_reason
            )
            frames.append(data_frame(chunk))
        return frames

    def _tail_frames(self, plan: _Plan) -> list[bytes]:
        usage_chunk = {
            "id": plan.gen_id,
            "object": "chat.completion.chunk",
            "created": plan.created,
            "model": plan.model,
            "provider": plan.provider,
            "choices": [],
            "usage": self._usage(plan),
        }
        return [data_frame(usage_chunk), DONE_FRAME]

    def _plan_frames(self, plan: _Plan) -> list[bytes]:
        head = [KEEPALIVE_FRAME] if self.keepalive_first else []
        return head + self._content_frames(plan, plan.gen_id, plan.created) + self._tail_frames(plan)

    def _pacing_delays(self, plan: _Plan, n_frames: int) -> list[float] | None:
        """Per-frame waits implementing ``tokens_per_second`` (None: as fast as possible)."""
        tps = self.tokens_per_second
        if not tps or tps <= 0:
            return None
        delays = [0.0] * n_frames
        first = 1 if self.keepalive_first else 0
        for i, piece in enumerate(plan.pieces):
            if i > 0:
                delays[first + i] = (len(piece) / 4) / tps
        return delays

    def _register_generation(
        self,
        request: web.Request,
        *,
        gen_id: str,
        model: str | None,
        provider: str | None,
        prompt_tokens: int,
        completion_tokens: int,
        reasoning_tokens: int,
        cost: Any,
        finish_reason: str | None,
        native_finish_reason: str | None,
        streamed: bool,
        router: str | None,
        images: int,
        body: dict[str, Any] | None,
    ) -> dict[str, Any]:
        template = _generation_template()
        now = int(time.time())
        total = float(cost) if isinstance(cost, int | float | Decimal) else 0.0
        body = body or {}
        data = dict(template)
        data.update(
            {
                "app_id": None,
                "cache_discount": None,
                "cancelled": False,
                "created_at": datetime.now(UTC).isoformat(),
                "external_user": body.get("user"),
                "finish_reason": finish_reason,
                "generation_time": 0,
                "http_referer": request.headers.get("HTTP-Referer"),
                "id": gen_id,
                "is_byok": False,
                "latency": 0,
                "model": model,
                "moderation_latency": None,
                "native_finish_reason": native_finish_reason,
                "native_tokens_cached": 0,
                "native_tokens_completion": completion_tokens,
                "native_tokens_completion_images": 0,
                "native_tokens_prompt": prompt_tokens,
                "native_tokens_reasoning": reasoning_tokens,
                "num_fetches": 0,
                "num_input_audio_prompt": 0,
                "num_media_completion": 0,
                "num_media_prompt": images,
                "num_search_results": 0,
                "origin": request.headers.get("Origin", ""),
                "preset_id": None,
                "provider_name": provider,
                "provider_responses": None,
                "request_id": f"req-{now}-" + "".join(random.choices(_ID_ALPHABET, k=20)),
                "router": router,
                "service_tier": None,
                "session_id": body.get("session_id"),
                "streamed": streamed,
                "tokens_completion": completion_tokens,
                "tokens_prompt": prompt_tokens,
                "total_cost": total,
                "upstream_id": f"chatcmpl-{uuid.uuid4()}",
                "upstream_inference_cost": total,
                "usage": total,
                "user_agent": request.headers.get("User-Agent", ""),
                "web_search_engine": None,
            }
        )
        self.generations[gen_id] = data
        while len(self.generations) > max(1, self.max_generations):
            oldest = next(iter(self.generations))
            del self.generations[oldest]
            self._generation_lookups.pop(oldest, None)
        return data

    def _register_plan(
        self, request: web.Request, plan: _Plan, body: dict[str, Any], *, streamed: bool
    ) -> dict[str, Any]:
        return self._register_generation(
            request,
            gen_id=plan.gen_id,
            model=plan.model,
            provider=plan.provider,
            prompt_tokens=plan.prompt_tokens,
            completion_tokens=plan.completion_tokens,
            reasoning_tokens=0,
            cost=plan.cost,
            finish_reason=plan.finish_reason,
            native_finish_reason=plan.native_finish_reason,
            streamed=streamed,
            router=plan.router,
            images=plan.images,
            body=body,
        )

    def _register_frames(
        self, request: web.Request, frames: Sequence[bytes], body: dict[str, Any] | None
    ) -> str | None:
        """Register a /generation record from SSE frames (fixture replays); returns the stream id."""
        gen_id: str | None = None
        model = provider = finish = native = None
        usage: dict[str, Any] = {}
        for frame in frames:
            for line in frame.split(b"\n"):
                if not line.startswith(b"data:"):
                    continue
                payload = line[5:].strip()
                if payload == b"[DONE]":
                    continue
                try:
                    chunk = json.loads(payload)
                except ValueError:
                    continue
                if not isinstance(chunk, dict):
                    continue
                gen_id = gen_id or chunk.get("id")
                model = model or chunk.get("model")
                provider = provider or chunk.get("provider")
                for choice in chunk.get("choices") or []:
                    if isinstance(choice, dict) and choice.get("finish_reason"):
                        finish = choice.get("finish_reason")
                        native = choice.get("native_finish_reason")
                if isinstance(chunk.get("usage"), dict):
                    usage = chunk["usage"]
        if not isinstance(gen_id, str):
            return None
        details = usage.get("completion_tokens_details") or {}
        self._register_generation(
            request,
            gen_id=gen_id,
            model=model,
            provider=provider,
            prompt_tokens=int(usage.get("prompt_tokens") or 0),
            completion_tokens=int(usage.get("completion_tokens") or 0),
            reasoning_tokens=int(details.get("reasoning_tokens") or 0) if isinstance(details, dict) else 0,
            cost=usage.get("cost") or 0,
            finish_reason=finish,
            native_finish_reason=native,
            streamed=True,
            router=None,
            images=0,
            body=body,
        )
        return gen_id

    # ---------------------------------------------------------------- non-streaming

    def _nonstream_response(self, request: web.Request, body: dict[str, Any]) -> web.Response:
        plan = self._plan(request, body)
        payload = {
            "id": plan.gen_id,
            "object": "chat.completion",
            "created": plan.created,
            "model": plan.model,
            "provider": plan.provider,
            "system_fingerprint": None,
            "service_tier": None,
            "choices": [
                {
                    "index": 0,
                    "logprobs": None,
                    "finish_reason": plan.finish_reason,
                    "native_finish_reason": plan.native_finish_reason,
                    "message": {
                        "role": "assistant",
                        "content": plan.text,
                        "refusal": None,
                        "reasoning": None,
                    },
                }
            ],
            "usage": self._usage(plan),
        }
        self._register_plan(request, plan, body, streamed=False)
        return web.Response(
            status=200,
            body=self.nonstream_padding + _dumps(payload).encode(),
            headers={"Content-Type": "application/json", "X-Generation-Id": plan.gen_id},
        )

    # ---------------------------------------------------------------- streaming

    @staticmethod
    def _sse_headers(gen_id: str | None, extra: dict[str, str] | None = None) -> dict[str, str]:
        headers = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        if gen_id:
            headers["X-Generation-Id"] = gen_id
        headers.update(extra or {})
        return headers

    async def _play_sse(self, request: web.Request, reply: SSEReply) -> web.StreamResponse:
        if reply.delay_before > 0:
            await asyncio.sleep(reply.delay_before)
        plan: _Plan | None = None
        delays: list[float] | None = None
        if reply.fixture is not None:
            frames = sse_frames(reply.fixture)
        elif reply.events is not None:
            frames = [e.encode() if isinstance(e, str) else bytes(e) for e in reply.events]
        else:
            body = self._parse_body(await request.read())
            if body is None:
                return self._invalid_body()
            plan = self._plan(request, body, model=reply.model)
            frames = self._plan_frames(plan)
            if reply.interval <= 0:
                delays = self._pacing_delays(plan, len(frames))
        if plan is not None:
            gen_id: str | None = plan.gen_id
        else:
            body = self._parse_body(await request.read())
            gen_id = self._register_frames(request, frames, body) or _new_gen_id()
        return await self._stream(
            request,
            frames,
            delays=delays,
            gen_id=gen_id,
            status=reply.status,
            headers=reply.headers,
            first_event_delay=reply.first_event_delay,
            interval=reply.interval,
            keepalive_every=reply.keepalive_every,
            drop_after=reply.drop_after,
            split_writes=reply.split_writes,
            split_pause=reply.split_pause,
            plan=plan,
        )

    async def _stream(
        self,
        request: web.Request,
        frames: Sequence[bytes],
        *,
        delays: list[float] | None,
        gen_id: str | None,
        status: int = 200,
        headers: dict[str, str] | None = None,
        first_event_delay: float = 0,
        interval: float = 0,
        keepalive_every: float | None = None,
        drop_after: int | None = None,
        split_writes: bool = False,
        split_pause: float = 0.001,
        plan: _Plan | None = None,
    ) -> web.StreamResponse:
        started = time.monotonic()
        record: dict[str, Any] | None = None
        if plan is not None:
            body = self._parse_body(await request.read()) or {}
            record = self._register_plan(request, plan, body, streamed=True)
        elif gen_id is not None:
            record = self.generations.get(gen_id)
        resp = web.StreamResponse(status=status, headers=self._sse_headers(gen_id, headers))
        completed = False
        try:
            await resp.prepare(request)
            loop = asyncio.get_running_loop()
            target = loop.time()
            # Generated streams send frames that are due at the same moment in one write (fewer
            # syscalls); scripted frames always go out one write each.
            coalesce = plan is not None and not split_writes
            pending: list[bytes] = []
            for i, frame in enumerate(frames):
                if drop_after is not None and i >= drop_after:
                    break
                wait = first_event_delay if i == 0 else interval
                if delays is not None:
                    wait += delays[i]
                if wait > 0:
                    target = max(target, loop.time() - 0.05) + wait
                    if target > loop.time():
                        if pending:
                            await resp.write(b"".join(pending))
                            pending.clear()
                        await self._sleep_until(resp, target, keepalive_every)
                if coalesce:
                    pending.append(frame)
                elif split_writes:
                    await self._write_split(resp, frame, split_pause)
                else:
                    await resp.write(frame)
            else:
                completed = True
            if pending:
                await resp.write(b"".join(pending))
            if not completed:
                # Abrupt cut: flush what was written, then FIN without the chunked terminator.
                transport = request.transport
                if transport is not None:
                    transport.close()
        except ConnectionError:
            pass
        finally:
            if record is not None:
                elapsed = int((time.monotonic() - started) * 1000)
                record["generation_time"] = elapsed
                record["latency"] = elapsed
                record["cancelled"] = not completed
        return resp

    @staticmethod
    async def _sleep_until(resp: web.StreamResponse, target: float, keepalive_every: float | None) -> None:
        loop = asyncio.get_running_loop()
        if keepalive_every is not None and keepalive_every > 0:
            while target - loop.time() > keepalive_every:
                await asyncio.sleep(keepalive_every)
                await resp.write(KEEPALIVE_FRAME)
        remaining = target - loop.time()
        if remaining > 0:
            await asyncio.sleep(remaining)

    @staticmethod
    def _split_points(frame: bytes) -> list[int]:
        """Cut positions inside a frame: inside multi-byte UTF-8 chars, inside the line, inside \\n\\n."""
        n = len(frame)
        cuts = {3, n // 2, n - 1}
        continuation = [i for i in range(1, n) if frame[i] & 0xC0 == 0x80]
        cuts.update(continuation[:3])
        if continuation:
            cuts.add(continuation[-1])
        return sorted(c for c in cuts if 0 < c < n)

    async def _write_split(self, resp: web.StreamResponse, frame: bytes, pause: float) -> None:
        start = 0
        for cut in [*self._split_points(frame), len(frame)]:
            await resp.write(frame[start:cut])
            start = cut
            if cut < len(frame):
                await asyncio.sleep(pause)

    # ---------------------------------------------------------------- bulk (benchmark) streams

    def prepare_bulk(self) -> None:
        """Pre-build the ``stream_chunks`` frames now (otherwise done on the first bulk request)."""
        if self.stream_chunks is not None:
            self._bulk_template(self.stream_chunks, max(1, self.chunk_chars))

    def _bulk_template(self, n: int, size: int) -> list[bytes]:
        """``n`` content frames of ``size`` chars with placeholder id/created/model/provider, in ~64 KiB
        batches. Built once per (n, size, finish style)."""
        key = (n, size, self.separate_finish_chunk)
        template = self._bulk_templates.get(key)
        if template is not None:
            return template
        total = n * size
        text = (_BULK_TEXT * (total // len(_BULK_TEXT) + 1))[:total]
        plan = _Plan(
            gen_id=_BULK_ID,
            created=_BULK_CREATED,
            model=_BULK_MODEL,
            provider=_BULK_PROVIDER,
            pieces=[text[i : i + size] for i in range(0, total, size)] or [""],
            text=text,
            finish_reason="stop",
            native_finish_reason="stop",
            prompt_tokens=0,
            completion_tokens=0,
            cost=Decimal(0),
            prompt_cost=Decimal(0),
            completion_cost=Decimal(0),
            images=0,
            router=None,
        )
        template = []
        batch: list[bytes] = []
        batch_size = 0
        for frame in self._content_frames(plan, _BULK_ID, _BULK_CREATED):
            batch.append(frame)
            batch_size += len(frame)
            if batch_size >= _BATCH_BYTES:
                template.append(b"".join(batch))
                batch, batch_size = [], 0
        if batch:
            template.append(b"".join(batch))
        if len(self._bulk_templates) >= 4:
            self._bulk_templates.clear()
        self._bulk_templates[key] = template
        return template

    def _bulk_batches(self, plan: _Plan) -> list[bytes]:
        """The bulk template with this request's model and provider filled in (cached)."""
        size = max(1, self.chunk_chars)
        key = (plan.model, plan.provider, len(plan.pieces), size, self.separate_finish_chunk)
        cached = self._bulk_cache.get(key)
        if cached is None:
            model = _dumps(plan.model).encode()
            provider = _dumps(plan.provider).encode()
            old_model, old_provider = _dumps(_BULK_MODEL).encode(), _dumps(_BULK_PROVIDER).encode()
            cached = [
                b.replace(old_model, model).replace(old_provider, provider)
                for b in self._bulk_template(len(plan.pieces), size)
            ]
            if len(self._bulk_cache) >= 16:
                self._bulk_cache.clear()
            self._bulk_cache[key] = cached
        return cached

    async def _send_bulk(self, request: web.Request, body: dict[str, Any], plan: _Plan) -> web.StreamResponse:
        batches = self._bulk_batches(plan)
        old_id, new_id = _BULK_ID.encode(), plan.gen_id.encode()
        old_created = f'"created":{_BULK_CREATED},'.encode()
        new_created = f'"created":{plan.created},'.encode()
        record = self._register_plan(request, plan, body, streamed=True)
        started = time.monotonic()
        resp = web.StreamResponse(status=200, headers=self._sse_headers(plan.gen_id))
        completed = False
        try:
            await resp.prepare(request)
            if self.keepalive_first:
                await resp.write(KEEPALIVE_FRAME)
            for batch in batches:
                await resp.write(batch.replace(old_id, new_id).replace(old_created, new_created))
            await resp.write(b"".join(self._tail_frames(plan)))
            completed = True
        except ConnectionError:
            pass
        finally:
            record["generation_time"] = record["latency"] = int((time.monotonic() - started) * 1000)
            record["cancelled"] = not completed
        return resp


# --------------------------------------------------------------------------------------------
# Standalone mode
# --------------------------------------------------------------------------------------------


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Fake OpenRouter server (prints its base URL first).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--chunks", type=int, default=None, help="content chunks per generated stream")
    parser.add_argument("--chunk-chars", type=int, default=4)
    parser.add_argument("--tokens-per-second", type=float, default=None)
    parser.add_argument("--models-fixture", default="models-sample.json")
    parser.add_argument("--record", action="store_true", help="keep recorded requests (off by default)")
    return parser.parse_args(argv)


async def _serve(args: argparse.Namespace) -> None:
    fake = FakeOpenRouter(models_fixture=args.models_fixture)
    fake.stream_chunks = args.chunks
    fake.chunk_chars = args.chunk_chars
    fake.tokens_per_second = args.tokens_per_second
    fake.record_requests = bool(args.record)
    fake.prepare_bulk()
    await serve_until_signalled(fake, host=args.host, port=args.port)


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
    asyncio.run(_serve(_parse_args(argv)))


if __name__ == "__main__":
    main()
