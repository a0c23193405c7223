"""Self-tests for the fake OpenRouter server, using plain httpx against the real socket."""

from __future__ import annotations

import asyncio
import json
import math
import re
import sys
import time
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fakes.openrouter_server import (
    DONE_FRAME,
    FIXTURES_DIR,
    KEEPALIVE_FRAME,
    DropConnection,
    FakeOpenRouter,
    JSONReply,
    SSEReply,
    data_frame,
    fixture_bytes,
    fixture_json,
    split_sse,
    sse_frames,
)

SSE_FIXTURES = sorted(p.name for p in FIXTURES_DIR.glob("*.sse"))
GEN_ID_RE = re.compile(r"^gen-\d{10}-[A-Za-z0-9]{20}$")
REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
async def fake() -> AsyncIterator[FakeOpenRouter]:
    server = FakeOpenRouter()
    await server.start()
    try:
        yield server
    finally:
        await server.close()


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
    async with httpx.AsyncClient(timeout=10, limits=limits) as c:
        yield c


def chat_body(text: str = "hello there", *, stream: bool = True, **extra: Any) -> dict[str, Any]:
    return {
        "model": "openai/gpt-4o",
        "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": text}],
        "stream": stream,
        **extra,
    }


async def stream_raw(
    client: httpx.AsyncClient, url: str, body: dict[str, Any]
) -> tuple[httpx.Response, list[bytes]]:
    """POST and collect the raw body pieces as they arrive."""
    pieces: list[bytes] = []
    async with client.stream("POST", url, json=body) as resp:
        async for piece in resp.aiter_raw():
            pieces.append(piece)
    return resp, pieces


def data_payloads(raw: bytes) -> list[str]:
    """The ``data:`` payloads of an SSE body, in order."""
    return [f[len(b"data: ") : -2].decode() for f in split_sse(raw) if f.startswith(b"data: ")]


def parse_chunks(raw: bytes) -> list[dict[str, Any]]:
    payloads = data_payloads(raw)
    assert payloads[-1] == "[DONE]"
    return [json.loads(p) for p in payloads[:-1]]


# ------------------------------------------------------------------------------------ fixtures


@pytest.mark.parametrize("name", SSE_FIXTURES)
def test_sse_frames_split_on_blank_lines(name: str) -> None:
    frames = sse_frames(name)
    assert b"".join(frames) == fixture_bytes(name)
    assert all(f.endswith(b"\n\n") for f in frames)
    assert all(b"\n\n" not in f[:-2] for f in frames)


def test_fixture_helpers() -> None:
    assert fixture_json("error-401.json") == {
        "error": {"message": "Missing Authentication header", "code": 401}
    }
    assert fixture_json("chat-completion-nonstream.json")["object"] == "chat.completion"
    assert fixture_bytes("chat-completion-nonstream.json").startswith(b"\n")
    assert data_frame({"a": "°"}) == 'data: {"a":"°"}\n\n'.encode()


@pytest.mark.parametrize("name", SSE_FIXTURES)
async def test_fixture_replay_is_byte_exact(
    fake: FakeOpenRouter, client: httpx.AsyncClient, name: str
) -> None:
    fake.script("chat", SSEReply(fixture=name))
    resp, pieces = await stream_raw(client, f"{fake.base_url}/chat/completions", chat_body())
    assert resp.status_code == 200
    assert b"".join(pieces) == fixture_bytes(name)
    assert resp.headers["content-type"] == "text/event-stream"
    assert resp.headers["cache-control"] == "no-cache"
    first = json.loads(data_payloads(fixture_bytes(name))[0])
    assert resp.headers["x-generation-id"] == first["id"]


# ------------------------------------------------------------------------------- generated stream


async def test_generated_stream_shape(fake: FakeOpenRouter, client: httpx.AsyncClient) -> None:
    resp, pieces = await stream_raw(client, f"{fake.base_url}/chat/completions", chat_body("héllo wörld°"))
    raw = b"".join(pieces)
    assert resp.status_code == 200
    assert resp.headers["content-type"] == "text/event-stream"
    assert resp.headers["cache-control"] == "no-cache"
    assert raw.startswith(KEEPALIVE_FRAME)
    assert raw.endswith(DONE_FRAME)

    chunks = parse_chunks(raw)
    gen_id = resp.headers["x-generation-id"]
    assert GEN_ID_RE.match(gen_id)
    for chunk in chunks:
        assert chunk["id"] == gen_id
        assert chunk["object"] == "chat.completion.chunk"
        assert chunk["model"] == "openai/gpt-4o"
        assert chunk["provider"] == "FakeProvider"
        assert isinstance(chunk["created"], int)

    *content, usage_chunk = chunks
    reply = "Echo: héllo wörld°"
    assert "".join(c["choices"][0]["delta"]["content"] for c in content) == reply
    assert all(c["choices"][0]["delta"]["role"] == "assistant" for c in content)
    assert all(len(c["choices"][0]["delta"]["content"]) <= 4 for c in content)
    assert len(content) == math.ceil(len(reply) / 4)
    assert [c["choices"][0]["finish_reason"] for c in content] == [None] * (len(content) - 1) + ["stop"]
    assert content[-1]["choices"][0]["native_finish_reason"] == "stop"
    # the raw body carries UTF-8, not \u escapes, like the real service
    assert "wörld".encode() in raw or "ö".encode() in raw

    assert usage_chunk["choices"] == []
    usage = usage_chunk["usage"]
    prompt_tokens = math.ceil((len("Be brief.") + len("héllo wörld°")) / 4)
    completion_tokens = math.ceil(len(reply) / 4)
    assert usage["prompt_tokens"] == prompt_tokens
    assert usage["completion_tokens"] == completion_tokens
    assert usage["total_tokens"] == prompt_tokens + completion_tokens
    expected_cost = prompt_tokens * Decimal("0.000001") + completion_tokens * Decimal("0.000002")
    assert usage["cost"] == float(expected_cost)
    assert usage["is_byok"] is False
    assert usage["prompt_tokens_details"]["cached_tokens"] == 0
    assert usage["completion_tokens_details"]["reasoning_tokens"] == 0


async def test_generated_stream_options(fake: FakeOpenRouter, client: httpx.AsyncClient) -> None:
    url = f"{fake.base_url}/chat/completions"
    fake.chunk_chars = 3
    fake.keepalive_first = False
    fake.reply_text = "abcdefgh"
    fake.prompt_price = Decimal("0.00001")
    fake.completion_price = Decimal("0")
    content = [
        {"type": "text", "text": "what is this?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
    ]
    body = {
        "model": "anthropic/claude-sonnet-4",
        "messages": [{"role": "user", "content": content}],
        "stream": True,
        "provider": {"order": ["Anthropic", "Google"]},
        "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
    }
    _, pieces = await stream_raw(client, url, body)
    raw = b"".join(pieces)
    assert not raw.startswith(b":")
    chunks = parse_chunks(raw)
    assert [c["choices"][0]["delta"]["content"] for c in chunks[:-1]] == ["abc", "def", "gh"]
    assert {c["provider"] for c in chunks} == {"Anthropic"}
    usage = chunks[-1]["usage"]
    assert usage["prompt_tokens"] == math.ceil(len("what is this?") / 4) + 85
    assert usage["cost"] == float(usage["prompt_tokens"] * Decimal("0.00001"))

    # callable reply_text gets the request body
    fake.reply_text = lambda req: f"{len(req['messages'])} messages"
    _, pieces = await stream_raw(client, url, chat_body())
    assert "".join(c["choices"][0]["delta"]["content"] for c in parse_chunks(b"".join(pieces))[:-1]) == (
        "2 messages"
    )

    # a separate empty finish chunk, like stream-basic.sse
    fake.separate_finish_chunk = True
    _, pieces = await stream_raw(client, url, chat_body())
    chunks = parse_chunks(b"".join(pieces))
    assert chunks[-2]["choices"][0] == {
        "index": 0,
        "delta": {"content": "", "role": "assistant"},
        "finish_reason": "stop",
        "native_finish_reason": "stop",
    }
    assert all(c["choices"][0]["finish_reason"] is None for c in chunks[:-2])


async def test_model_routing(fake: FakeOpenRouter, client: httpx.AsyncClient) -> None:
    url = f"{fake.base_url}/chat/completions"
    _, pieces = await stream_raw(client, url, chat_body(model="openrouter/auto"))
    assert parse_chunks(b"".join(pieces))[0]["model"] == fake.models[0]["id"]
    gen_id = parse_chunks(b"".join(pieces))[0]["id"]
    assert fake.generations[gen_id]["router"] == "openrouter/auto"

    body = chat_body(models=["openai/gpt-4o", "x-ai/grok-4"])
    _, pieces = await stream_raw(client, url, body)
    assert parse_chunks(b"".join(pieces))[0]["model"] == "openai/gpt-4o"
    fake.use_fallback_model = True
    _, pieces = await stream_raw(client, url, body)
    assert parse_chunks(b"".join(pieces))[0]["model"] == "x-ai/grok-4"
    fake.script("chat", SSEReply(model="meta/llama"))
    _, pieces = await stream_raw(client, url, body)
    assert {c["model"] for c in parse_chunks(b"".join(pieces))} == {"meta/llama"}


@pytest.mark.parametrize("limit_key", ["max_tokens", "max_completion_tokens"])
async def test_max_tokens_truncates_with_length(
    fake: FakeOpenRouter, client: httpx.AsyncClient, limit_key: str
) -> None:
    fake.reply_text = "x" * 100
    limit: dict[str, Any] = {limit_key: 5}
    _, pieces = await stream_raw(client, f"{fake.base_url}/chat/completions", chat_body(**limit))
    chunks = parse_chunks(b"".join(pieces))
    text = "".join(c["choices"][0]["delta"]["content"] for c in chunks[:-1])
    assert text == "x" * 20
    assert chunks[-2]["choices"][0]["finish_reason"] == "length"
    assert chunks[-2]["choices"][0]["native_finish_reason"] == "length"
    assert chunks[-1]["usage"]["completion_tokens"] == 5


async def test_tokens_per_second_paces_the_stream(fake: FakeOpenRouter, client: httpx.AsyncClient) -> None:
    fake.reply_text = "y" * 40  # 10 chunks of 1 token each
    fake.tokens_per_second = 50  # 9 gaps of 20 ms
    started = time.monotonic()
    _, pieces = await stream_raw(client, f"{fake.base_url}/chat/completions", chat_body())
    elapsed = time.monotonic() - started
    assert len(parse_chunks(b"".join(pieces))) == 11
    assert 0.17 <= elapsed < 2


async def test_nonstream_default(fake: FakeOpenRouter, client: httpx.AsyncClient) -> None:
    resp = await client.post(f"{fake.base_url}/chat/completions", json=chat_body("2+2?", stream=False))
    assert resp.status_code == 200
    assert resp.headers["content-type"] == "application/json"
    assert resp.content.startswith(b"\n         \n")  # real keep-alive padding before the JSON
    body = resp.json()
    real = fixture_json("chat-completion-nonstream.json")
    assert list(body) == list(real)
    assert body["id"] == resp.headers["x-generation-id"]
    assert body["choices"][0]["message"]["content"] == "Echo: 2+2?"
    assert body["choices"][0]["finish_reason"] == "stop"
    assert set(body["usage"]) == set(real["usage"])
    assert fake.generations[body["id"]]["streamed"] is False

    fake.nonstream_padding = b""
    resp = await client.post(f"{fake.base_url}/chat/completions", json=chat_body(stream=False))
    assert resp.content.startswith(b"{")


# ----------------------------------------------------------------------------------- scripting


async def test_scripted_429_then_default_200(fake: FakeOpenRouter, client: httpx.AsyncClient) -> None:
    error = fixture_json("error-429-free-models-per-min.json")
    fake.script("chat", JSONReply(status=429, body=error, headers={"Retry-After": "1"}))
    url = f"{fake.base_url}/chat/completions"
    first = await client.post(url, json=chat_body())
    assert first.status_code == 429
    assert first.headers["retry-after"] == "1"
    assert first.headers["content-type"] == "application/json"
    assert first.json() == error
    assert fake.pending("chat") == 0

    second = await client.post(url, json=chat_body())
    assert second.status_code == 200
    assert second.headers["content-type"] == "text/event-stream"
    assert parse_chunks(second.content)[-1]["usage"]["completion_tokens"] > 0


async def test_json_reply_variants(fake: FakeOpenRouter, client: httpx.AsyncClient) -> None:
    url = f"{fake.base_url}/chat/completions"
    padded = fixture_bytes("chat-completion-nonstream.json")
    fake.script(
        "chat",
        JSONReply(body=padded),
        JSONReply(status=502, body="<html>Bad gateway</html>", headers={"Content-Type": "text/html"}),
        JSONReply(status=503),
        JSONReply(delay=0.05),
    )
    r1 = await client.post(url, json=chat_body())
    assert r1.content == padded
    r2 = await client.post(url, json=chat_body())
    assert (r2.status_code, r2.headers["content-type"], r2.text) == (
        502,
        "text/html",
        "<html>Bad gateway</html>",
    )
    r3 = await client.post(url, json=chat_body())
    assert r3.json() == {"error": {"code": 503, "message": "Service Unavailable"}}
    r4 = await client.post(url, json=chat_body("slow"))
    assert r4.json()["choices"][0]["message"]["content"] == "Echo: slow"  # body=None -> default JSON

    with pytest.raises(ValueError):
        fake.script("nope", JSONReply())


async def test_drop_connection(fake: FakeOpenRouter, client: httpx.AsyncClient) -> None:
    url = f"{fake.base_url}/chat/completions"
    fake.script("chat", DropConnection(), DropConnection(reset=True))
    with pytest.raises(httpx.RemoteProtocolError):
        await client.post(url, json=chat_body())
    with pytest.raises(httpx.TransportError):
        await client.post(url, json=chat_body())
    assert len(fake.chat_requests()) == 2  # recorded even though never answered
    assert (await client.post(url, json=chat_body(stream=False))).status_code == 200


async def test_drop_after_cuts_mid_stream(fake: FakeOpenRouter, client: httpx.AsyncClient) -> None:
    frames = sse_frames("stream-basic.sse")
    fake.script("chat", SSEReply(fixture="stream-basic.sse", drop_after=4))
    pieces: list[bytes] = []
    with pytest.raises(httpx.RemoteProtocolError, match="incomplete chunked read"):
        async with client.stream("POST", f"{fake.base_url}/chat/completions", json=chat_body()) as resp:
            assert resp.status_code == 200
            async for piece in resp.aiter_raw():
                pieces.append(piece)
    assert b"".join(pieces) == b"".join(frames[:4])
    gen_id = json.loads(data_payloads(frames[1])[0])["id"]
    assert fake.generations[gen_id]["cancelled"] is True

    # generated stream (no events/fixture) with the same fault
    fake.script("chat", SSEReply(drop_after=2))
    with pytest.raises(httpx.RemoteProtocolError):
        await client.post(f"{fake.base_url}/chat/completions", json=chat_body())


async def test_split_writes_deliver_same_bytes(fake: FakeOpenRouter, client: httpx.AsyncClient) -> None:
    name = "stream-utf8-final-usage-repeats-finish.sse"
    fake.script("chat", SSEReply(fixture=name, split_writes=True))
    _, pieces = await stream_raw(client, f"{fake.base_url}/chat/completions", chat_body())
    assert b"".join(pieces) == fixture_bytes(name)
    assert len(pieces) > len(sse_frames(name))

    def decodes(piece: bytes) -> bool:
        try:
            piece.decode("utf-8")
        except UnicodeDecodeError:
            return False
        return True

    assert not all(decodes(p) for p in pieces), "expected a piece boundary inside a multi-byte char"
    assert any(p.endswith(b"\n") and not p.endswith(b"\n\n") for p in pieces)


async def test_keepalives_during_intervals(fake: FakeOpenRouter, client: httpx.AsyncClient) -> None:
    events = [data_frame({"n": 1}), data_frame({"n": 2}), DONE_FRAME]
    fake.script("chat", SSEReply(events=events, first_event_delay=0.15, interval=0.25, keepalive_every=0.1))
    started = time.monotonic()
    _, pieces = await stream_raw(client, f"{fake.base_url}/chat/completions", chat_body())
    assert time.monotonic() - started >= 0.6
    frames = split_sse(b"".join(pieces))
    assert [f for f in frames if f != KEEPALIVE_FRAME] == events
    first, second = frames.index(events[0]), frames.index(events[1])
    assert first >= 1  # keep-alive before the first event too
    assert 1 <= second - first - 1 <= 2
    assert all(f == KEEPALIVE_FRAME for f in frames[:first])


async def test_delay_before_headers_times_out(fake: FakeOpenRouter, client: httpx.AsyncClient) -> None:
    fake.script("chat", SSEReply(fixture="stream-basic.sse", delay_before=0.5))
    with pytest.raises(httpx.ReadTimeout):
        await client.post(f"{fake.base_url}/chat/completions", json=chat_body(), timeout=0.1)


async def test_custom_events_and_headers(fake: FakeOpenRouter, client: httpx.AsyncClient) -> None:
    fake.script(
        "chat",
        SSEReply(events=['data: {"id":"gen-x"}\n\n', DONE_FRAME], headers={"X-Test": "1"}),
    )
    resp, pieces = await stream_raw(client, f"{fake.base_url}/chat/completions", chat_body())
    assert b"".join(pieces) == b'data: {"id":"gen-x"}\n\n' + DONE_FRAME
    assert resp.headers["x-test"] == "1"
    assert resp.headers["x-generation-id"] == "gen-x"


# ------------------------------------------------------------------------------- other routes


async def test_models_and_key_defaults(fake: FakeOpenRouter, client: httpx.AsyncClient) -> None:
    models = await client.get(f"{fake.base_url}/models")
    assert models.status_code == 200
    assert models.json()["data"] == fixture_json("models-sample.json")["data"]
    assert models.json()["total_count"] == len(fake.models)

    fake.models.append({"id": "test/new-model", "name": "New"})
    del fake.models[0]
    ids = [m["id"] for m in (await client.get(f"{fake.base_url}/models")).json()["data"]]
    assert ids[-1] == "test/new-model"
    assert "anthropic/claude-sonnet-4" not in ids

    key = await client.get(f"{fake.base_url}/key")
    assert key.json() == fixture_json("key-sample-docs.json")

    fake.script("models", JSONReply(status=500))
    assert (await client.get(f"{fake.base_url}/models")).status_code == 500

    unknown = await client.get(f"{fake.base_url}/nope")
    assert unknown.status_code == 404
    assert unknown.json()["error"]["code"] == 404


async def test_generation_from_generated_stream(fake: FakeOpenRouter, client: httpx.AsyncClient) -> None:
    resp, pieces = await stream_raw(client, f"{fake.base_url}/chat/completions", chat_body())
    chunks = parse_chunks(b"".join(pieces))
    gen_id = resp.headers["x-generation-id"]
    usage = chunks[-1]["usage"]

    gen = await client.get(f"{fake.base_url}/generation", params={"id": gen_id})
    assert gen.status_code == 200
    data = gen.json()["data"]
    assert list(data) == list(fixture_json("generation-sample-docs.json")["data"])
    assert data["id"] == gen_id
    assert data["model"] == "openai/gpt-4o"
    assert data["provider_name"] == "FakeProvider"
    assert data["total_cost"] == usage["cost"]
    assert data["tokens_prompt"] == usage["prompt_tokens"]
    assert data["tokens_completion"] == usage["completion_tokens"]
    assert data["finish_reason"] == data["native_finish_reason"] == "stop"
    assert data["streamed"] is True
    assert data["cancelled"] is False
    assert data["created_at"].endswith("+00:00")

    missing = await client.get(f"{fake.base_url}/generation", params={"id": "gen-unknown"})
    assert missing.status_code == 404
    assert missing.json() == {"error": {"code": 404, "message": "Generation not found"}}


async def test_generation_404_first(fake: FakeOpenRouter, client: httpx.AsyncClient) -> None:
    fake.generation_404_first = 2
    resp, _ = await stream_raw(client, f"{fake.base_url}/chat/completions", chat_body())
    gen_id = resp.headers["x-generation-id"]
    url = f"{fake.base_url}/generation"
    statuses = [(await client.get(url, params={"id": gen_id})).status_code for _ in range(3)]
    assert statuses == [404, 404, 200]


async def test_generation_for_replayed_fixture(fake: FakeOpenRouter, client: httpx.AsyncClient) -> None:
    name = "stream-usage-empty-choices.sse"
    fake.script("chat", SSEReply(fixture=name))
    resp, _ = await stream_raw(client, f"{fake.base_url}/chat/completions", chat_body())
    gen = await client.get(f"{fake.base_url}/generation", params={"id": resp.headers["x-generation-id"]})
    data = gen.json()["data"]
    assert data["total_cost"] == 0.000837
    assert data["tokens_prompt"] == 254
    assert data["model"] == "anthropic/claude-4.6-sonnet-20260217"
    assert data["provider_name"] == "Amazon Bedrock"


async def test_recorded_requests(fake: FakeOpenRouter, client: httpx.AsyncClient) -> None:
    headers = {"Authorization": "Bearer sk-or-test", "HTTP-Referer": "https://example.org", "X-Title": "Bot"}
    await client.post(f"{fake.base_url}/chat/completions", json=chat_body(stream=False), headers=headers)
    await client.get(f"{fake.base_url}/generation", params={"id": "gen-1"}, headers=headers)

    assert [(r.method, r.path) for r in fake.requests] == [
        ("POST", "/api/v1/chat/completions"),
        ("GET", "/api/v1/generation"),
    ]
    chat = fake.chat_requests()
    assert len(chat) == 1
    assert chat[0].json() == chat_body(stream=False)
    assert chat[0].headers["authorization"] == "Bearer sk-or-test"
    assert chat[0].headers["http-referer"] == "https://example.org"
    assert chat[0].headers["x-title"] == "Bot"
    assert chat[0].headers["content-type"] == "application/json"
    assert fake.requests[1].query == {"id": "gen-1"}

    fake.require_auth = True
    resp = await client.get(f"{fake.base_url}/key")
    assert resp.status_code == 401
    assert resp.json() == fixture_json("error-401.json")


# --------------------------------------------------------------------------------- performance


async def test_100_concurrent_paced_streams(fake: FakeOpenRouter, client: httpx.AsyncClient) -> None:
    fake.tokens_per_second = 100
    fake.reply_text = "z" * 40  # 10 chunks, 9 gaps of 10 ms

    async def one(i: int) -> str:
        _, pieces = await stream_raw(client, f"{fake.base_url}/chat/completions", chat_body(f"{i}"))
        chunks = parse_chunks(b"".join(pieces))
        assert len(chunks) == 11
        return str(chunks[0]["id"])

    started = time.monotonic()
    ids = await asyncio.gather(*(one(i) for i in range(100)))
    assert len(set(ids)) == 100
    assert time.monotonic() - started < 5
    assert len(fake.chat_requests()) == 100


async def test_stream_chunks_bulk_mode(fake: FakeOpenRouter, client: httpx.AsyncClient) -> None:
    fake.stream_chunks = 5000
    for _ in range(2):  # the second response reuses the pre-built frames with a new id
        resp, pieces = await stream_raw(client, f"{fake.base_url}/chat/completions", chat_body())
        chunks = parse_chunks(b"".join(pieces))
        gen_id = resp.headers["x-generation-id"]
        assert {c["id"] for c in chunks} == {gen_id}
        assert len(chunks) == 5001
        assert all(len(c["choices"][0]["delta"]["content"]) == 4 for c in chunks[:-1])
        assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
        assert chunks[-1]["usage"]["completion_tokens"] == 5000
        assert abs(chunks[0]["created"] - time.time()) < 60


async def test_standalone_process() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.fakes.openrouter_server",
        "--port",
        "0",
        "--chunks",
        "2000",
        cwd=REPO_ROOT,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), timeout=20)
        base_url = line.decode().strip()
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/api/v1", base_url)
        async with httpx.AsyncClient(timeout=10) as c:
            _, pieces = await stream_raw(c, f"{base_url}/chat/completions", chat_body())
            assert len(parse_chunks(b"".join(pieces))) == 2001
    finally:
        proc.terminate()
        assert await asyncio.wait_for(proc.wait(), timeout=10) is not None
