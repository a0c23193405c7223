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
    Recorded,
    SSEReply,
    StreamStart,
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
    async with FakeOpenRouter() as server:
        yield server


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
    async with httpx.AsyncClient(timeout=10, limits=limits) as c:
        yield c


def chat_body(text: str = "hello there", **extra: Any) -> dict[str, Any]:
    return {"model": "openai/gpt-4o", "messages": [{"role": "system", "content": "Be brief."},
                                                   {"role": "user", "content": text}], "stream": True, **extra}


async def stream_raw(client: httpx.AsyncClient, url: str, body: dict[str, Any]) -> tuple[httpx.Response, bytes]:
    """POST and collect the raw body as it arrives."""
    pieces: list[bytes] = []
    async with client.stream("POST", url + "/chat/completions", json=body) as resp:
        async for piece in resp.aiter_raw():
            pieces.append(piece)
    return resp, b"".join(pieces)


def parse_chunks(raw: bytes) -> list[dict[str, Any]]:
    payloads = [f[len(b"data: "):-2].decode() for f in split_sse(raw) if f.startswith(b"data: ")]
    assert payloads[-1] == "[DONE]"
    return [json.loads(p) for p in payloads[:-1]]


def content_of(chunks: list[dict[str, Any]]) -> str:
    return "".join(c["choices"][0]["delta"]["content"] for c in chunks if c["choices"])


@pytest.mark.parametrize("name", SSE_FIXTURES)
async def test_fixture_replay_is_byte_exact(fake: FakeOpenRouter, client: httpx.AsyncClient, name: str) -> None:
    frames = sse_frames(name)
    assert b"".join(frames) == fixture_bytes(name)
    assert all(f.endswith(b"\n\n") and b"\n\n" not in f[:-2] for f in frames)
    fake.script("chat", SSEReply(fixture=name))
    resp, raw = await stream_raw(client, fake.base_url, chat_body())
    assert resp.status_code == 200 and resp.headers["content-type"] == "text/event-stream"
    assert raw == fixture_bytes(name)


def test_helpers() -> None:
    assert split_sse(b"data: 1\n\ndata: 2") == [b"data: 1\n\n", b"data: 2"]
    assert data_frame({"a": "°", "cost": Decimal("0.5")}) == 'data: {"a":"°","cost":0.5}\n\n'.encode()
    assert fixture_json("error-401.json") == {"error": {"message": "Missing Authentication header", "code": 401}}


async def test_generated_stream_shape(fake: FakeOpenRouter, client: httpx.AsyncClient) -> None:
    resp, raw = await stream_raw(client, fake.base_url, chat_body("héllo wörld°"))
    assert resp.headers["content-type"] == "text/event-stream" and resp.headers["cache-control"] == "no-cache"
    assert raw.startswith(KEEPALIVE_FRAME) and raw.endswith(DONE_FRAME)
    assert "wörld".encode() in raw or "ö".encode() in raw  # raw UTF-8, not \u escapes, like the real service
    chunks = parse_chunks(raw)
    gen_id = resp.headers["x-generation-id"]
    assert GEN_ID_RE.match(gen_id)
    assert {(c["id"], c["object"], c["model"], c["provider"]) for c in chunks} == {
        (gen_id, "chat.completion.chunk", "openai/gpt-4o", "FakeProvider")}

    *content, usage_chunk = chunks
    reply = "Echo: héllo wörld°"
    assert content_of(content) == reply and len(content) == math.ceil(len(reply) / 4)
    assert all(c["choices"][0]["delta"]["role"] == "assistant" for c in content)
    assert [c["choices"][0]["finish_reason"] for c in content] == [None] * (len(content) - 1) + ["stop"]
    assert content[-1]["choices"][0]["native_finish_reason"] == "stop"

    assert usage_chunk["choices"] == []
    usage = usage_chunk["usage"]
    prompt_tokens = math.ceil((len("Be brief.") + len("héllo wörld°")) / 4)
    completion_tokens = math.ceil(len(reply) / 4)
    assert (usage["prompt_tokens"], usage["completion_tokens"], usage["total_tokens"]) == (
        prompt_tokens, completion_tokens, prompt_tokens + completion_tokens)
    assert usage["cost"] == float(prompt_tokens * Decimal("0.000001") + completion_tokens * Decimal("0.000002"))
    assert usage["is_byok"] is False


async def test_generated_stream_options(fake: FakeOpenRouter, client: httpx.AsyncClient) -> None:
    fake.chunk_chars = 3
    fake.reply_text = "abcdefgh"
    content = [{"type": "text", "text": "what is this?"},
               {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]
    _, raw = await stream_raw(client, fake.base_url, chat_body(messages=[{"role": "user", "content": content}]))
    chunks = parse_chunks(raw)
    assert [c["choices"][0]["delta"]["content"] for c in chunks[:-1]] == ["abc", "def", "gh"]
    assert chunks[-1]["usage"]["prompt_tokens"] == math.ceil(len("what is this?") / 4) + 85

    fake.reply_text = lambda req: f"{len(req['messages'])} messages"  # a callable gets the request body
    _, raw = await stream_raw(client, fake.base_url, chat_body())
    assert content_of(parse_chunks(raw)) == "2 messages"

    fake.reply_text = "x" * 100  # max_tokens cuts the answer, finishing with "length"
    _, raw = await stream_raw(client, fake.base_url, chat_body(max_tokens=5))
    chunks = parse_chunks(raw)
    assert content_of(chunks) == "x" * 20 and chunks[-2]["choices"][0]["finish_reason"] == "length"
    assert chunks[-1]["usage"]["completion_tokens"] == 5


async def test_model_routing(fake: FakeOpenRouter, client: httpx.AsyncClient) -> None:
    _, raw = await stream_raw(client, fake.base_url, chat_body(model="openrouter/auto"))
    assert parse_chunks(raw)[0]["model"] == fake.models[0]["id"]
    body = chat_body(models=["openai/gpt-4o", "x-ai/grok-4"])
    _, raw = await stream_raw(client, fake.base_url, body)
    assert parse_chunks(raw)[0]["model"] == "openai/gpt-4o"
    fake.use_fallback_model = True
    _, raw = await stream_raw(client, fake.base_url, body)
    assert {c["model"] for c in parse_chunks(raw)} == {"x-ai/grok-4"}


async def test_tokens_per_second_paces_the_stream(fake: FakeOpenRouter, client: httpx.AsyncClient) -> None:
    fake.reply_text = "y" * 40  # 10 chunks of 1 token each
    fake.tokens_per_second = 50  # 9 gaps of 20 ms
    started = time.monotonic()
    _, raw = await stream_raw(client, fake.base_url, chat_body())
    assert len(parse_chunks(raw)) == 11
    assert 0.17 <= time.monotonic() - started < 2


async def test_only_streamed_requests_are_answered(fake: FakeOpenRouter, client: httpx.AsyncClient) -> None:
    resp = await client.post(fake.base_url + "/chat/completions", json=chat_body(stream=False))
    assert resp.status_code == 400 and resp.json()["error"]["code"] == 400


async def test_scripted_json_replies_then_the_default(fake: FakeOpenRouter, client: httpx.AsyncClient) -> None:
    error = fixture_json("error-429-free-models-per-min.json")
    fake.script("chat", JSONReply(429, error, {"Retry-After": "1"}),
                JSONReply(502, "<html>Bad gateway</html>", {"Content-Type": "text/html"}))
    first = await client.post(fake.base_url + "/chat/completions", json=chat_body())
    assert (first.status_code, first.headers["retry-after"], first.json()) == (429, "1", error)
    assert first.headers["content-type"] == "application/json"
    second = await client.post(fake.base_url + "/chat/completions", json=chat_body())
    assert (second.status_code, second.headers["content-type"], second.text) == (
        502, "text/html", "<html>Bad gateway</html>")
    third = await client.post(fake.base_url + "/chat/completions", json=chat_body())
    assert third.status_code == 200 and parse_chunks(third.content)[-1]["usage"]["completion_tokens"] > 0
    with pytest.raises(ValueError):
        fake.script("nope", JSONReply(200, {}))


async def test_drop_connection(fake: FakeOpenRouter, client: httpx.AsyncClient) -> None:
    fake.script("chat", DropConnection())
    with pytest.raises(httpx.RemoteProtocolError):
        await client.post(fake.base_url + "/chat/completions", json=chat_body())
    assert len(fake.chat_requests()) == 1  # recorded even though never answered
    assert (await client.post(fake.base_url + "/chat/completions", json=chat_body())).status_code == 200


async def test_drop_after_cuts_mid_stream(fake: FakeOpenRouter, client: httpx.AsyncClient) -> None:
    frames = sse_frames("stream-basic.sse")
    fake.script("chat", SSEReply(fixture="stream-basic.sse", drop_after=4))
    pieces: list[bytes] = []
    with pytest.raises(httpx.RemoteProtocolError, match="incomplete chunked read"):
        async with client.stream("POST", fake.base_url + "/chat/completions", json=chat_body()) as resp:
            async for piece in resp.aiter_raw():
                pieces.append(piece)
    assert b"".join(pieces) == b"".join(frames[:4])


async def test_a_generated_stream_cut_by_the_client_is_recorded_cancelled(fake: FakeOpenRouter,
                                                                          client: httpx.AsyncClient) -> None:
    fake.tokens_per_second = 20
    fake.reply_text = "word " * 100
    async with client.stream("POST", fake.base_url + "/chat/completions", json=chat_body()) as resp:
        gen_id = resp.headers["x-generation-id"]
        async for _ in resp.aiter_raw():
            break
    await asyncio.sleep(0.3)
    assert fake.generations[gen_id]["cancelled"] is True


async def test_split_writes_deliver_the_same_bytes(fake: FakeOpenRouter, client: httpx.AsyncClient) -> None:
    name = "stream-utf8-final-usage-repeats-finish.sse"
    fake.script("chat", SSEReply(fixture=name, split_writes=True))
    pieces: list[bytes] = []
    async with client.stream("POST", fake.base_url + "/chat/completions", json=chat_body()) as resp:
        async for piece in resp.aiter_raw():
            pieces.append(piece)
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
    fake.script("chat", SSEReply(events=events, interval=0.25, keepalive_every=0.1))
    started = time.monotonic()
    _, raw = await stream_raw(client, fake.base_url, chat_body())
    assert time.monotonic() - started >= 0.5
    frames = split_sse(raw)
    assert [f for f in frames if f != KEEPALIVE_FRAME] == events
    first, second = frames.index(events[0]), frames.index(events[1])
    assert 1 <= second - first - 1 <= 2


async def test_delay_before_headers(fake: FakeOpenRouter, client: httpx.AsyncClient) -> None:
    fake.script("chat", SSEReply(events=['data: {"id":"gen-x"}\n\n', DONE_FRAME], delay_before=0.5))
    with pytest.raises(httpx.ReadTimeout):
        await client.post(fake.base_url + "/chat/completions", json=chat_body(), timeout=0.1)


async def test_models_and_key(fake: FakeOpenRouter, client: httpx.AsyncClient) -> None:
    models = await client.get(fake.base_url + "/models")
    assert models.json()["data"] == fixture_json("models-sample.json")["data"]
    fake.models.append({"id": "test/new-model", "name": "New"})
    assert (await client.get(fake.base_url + "/models")).json()["data"][-1]["id"] == "test/new-model"
    assert (await client.get(fake.base_url + "/key")).json() == fixture_json("key-sample-docs.json")
    fake.script("key", JSONReply(401, fixture_bytes("error-401.json")))
    assert (await client.get(fake.base_url + "/key")).status_code == 401
    unknown = await client.get(fake.base_url + "/nope")
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == 404


async def test_generation_of_a_generated_stream(fake: FakeOpenRouter, client: httpx.AsyncClient) -> None:
    fake.generation_404_first = 1
    resp, raw = await stream_raw(client, fake.base_url, chat_body())
    usage = parse_chunks(raw)[-1]["usage"]
    gen_id = resp.headers["x-generation-id"]
    url = fake.base_url + "/generation"
    first, second = [await client.get(url, params={"id": gen_id}) for _ in range(2)]
    assert first.status_code == 404 and first.json() == {"error": {"code": 404, "message": "Generation not found"}}
    data = second.json()["data"]
    assert (data["id"], data["model"], data["provider_name"]) == (gen_id, "openai/gpt-4o", "FakeProvider")
    assert (data["total_cost"], data["tokens_prompt"], data["tokens_completion"]) == (
        usage["cost"], usage["prompt_tokens"], usage["completion_tokens"])
    assert data["finish_reason"] == "stop" and data["cancelled"] is False
    assert (await client.get(url, params={"id": "gen-unknown"})).status_code == 404


async def test_recorded_requests_and_hooks(fake: FakeOpenRouter, client: httpx.AsyncClient) -> None:
    seen: list[Recorded] = []
    starts: list[StreamStart] = []
    fake.on_request = seen.append
    fake.on_stream_start = starts.append
    headers = {"Authorization": "Bearer sk-or-test", "HTTP-Referer": "https://example.org"}
    before = time.monotonic()
    await client.post(fake.base_url + "/chat/completions", json=chat_body("hi"), headers=headers)
    await client.get(fake.base_url + "/generation", params={"id": "gen-1"}, headers=headers)
    assert [(r.method, r.path) for r in fake.requests] == [("POST", "/api/v1/chat/completions"),
                                                           ("GET", "/api/v1/generation")]
    assert seen == fake.requests
    [chat] = fake.chat_requests()
    assert chat.json() == chat_body("hi")
    assert chat.headers["authorization"] == "Bearer sk-or-test" and chat.headers["http-referer"] == "https://example.org"
    assert fake.requests[1].query == {"id": "gen-1"}
    [start] = starts
    assert start.at >= before and start.body == chat_body("hi")
    assert (start.text, start.first_piece, start.completion_tokens) == ("Echo: hi", "Echo", 2)

    fake.record_requests = False
    await client.get(fake.base_url + "/key")
    assert len(fake.requests) == 2 and seen[-1].path == "/api/v1/key"


async def test_100_concurrent_paced_streams(fake: FakeOpenRouter, client: httpx.AsyncClient) -> None:
    fake.tokens_per_second = 100
    fake.reply_text = "z" * 40  # 10 chunks, 9 gaps of 10 ms

    async def one(i: int) -> str:
        _, raw = await stream_raw(client, fake.base_url, chat_body(f"{i}"))
        chunks = parse_chunks(raw)
        assert len(chunks) == 11
        return str(chunks[0]["id"])

    started = time.monotonic()
    ids = await asyncio.gather(*(one(i) for i in range(100)))
    assert len(set(ids)) == 100
    assert time.monotonic() - started < 5


async def test_stream_chunks_bulk_mode(fake: FakeOpenRouter, client: httpx.AsyncClient) -> None:
    fake.stream_chunks = 5000
    for _ in range(2):  # the second response reuses the pre-built frames with a new id
        resp, raw = await stream_raw(client, fake.base_url, chat_body())
        chunks = parse_chunks(raw)
        assert {c["id"] for c in chunks} == {resp.headers["x-generation-id"]}
        assert len(chunks) == 5001
        assert all(len(c["choices"][0]["delta"]["content"]) == 4 for c in chunks[:-1])
        assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
        assert chunks[-1]["usage"]["completion_tokens"] == 5000


async def test_standalone_process() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.fakes.openrouter_server", "--port", "0", "--chunks", "2000",
        cwd=REPO_ROOT, stdout=asyncio.subprocess.PIPE)
    try:
        assert proc.stdout is not None
        base_url = (await asyncio.wait_for(proc.stdout.readline(), timeout=20)).decode().strip()
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/api/v1", base_url)
        async with httpx.AsyncClient(timeout=10) as c:
            _, raw = await stream_raw(c, base_url, chat_body())
            assert len(parse_chunks(raw)) == 2001
    finally:
        proc.terminate()
        assert await asyncio.wait_for(proc.wait(), timeout=10) is not None
