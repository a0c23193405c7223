"""The client against a local server that speaks OpenRouter's wire format over real sockets."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from decimal import Decimal
from typing import Literal

import pytest

from bot.openrouter import errors as e
from bot.openrouter.client import OpenRouterClient, RetryNotice
from bot.openrouter.retry import RetryPolicy
from bot.openrouter.sse import MAX_LINE_BYTES
from bot.openrouter.types import ChatRequest, ProviderPreferences, image_part, text_part
from tests.conftest import FIXTURES, fixture_bytes
from tests.fakes.openrouter_server import (
    DONE_FRAME,
    KEEPALIVE_FRAME,
    DropConnection,
    FakeOpenRouter,
    JSONReply,
    SSEReply,
)
from tests.openrouter.conftest import API_KEY, assert_valid_chat_request, collect, make_client
from tests.openrouter.test_stream import replay

SSE_FIXTURES = sorted(p.name for p in FIXTURES.glob("*.sse"))


def simple(model: str = "openai/gpt-4o", **kw: object) -> ChatRequest:
    return ChatRequest(model=model, messages=[{"role": "user", "content": "Hi"}], **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", SSE_FIXTURES)
@pytest.mark.parametrize("split", [False, True])
async def test_every_recording_streams_to_the_same_result(fake: FakeOpenRouter, client: OpenRouterClient,
                                                          name: str, split: bool) -> None:
    fake.script("chat", SSEReply(fixture=name, split_writes=split))
    stream = client.stream_chat(simple())
    try:
        expected = replay(name)[0].snapshot()
        expected_error = None
    except e.OpenRouterError as exc:
        expected, expected_error = exc.partial, exc
    if expected_error is None:
        got = await collect(stream)
        assert got == expected
    elif expected_error.retryable:
        # an error chunk before any token: retried (here the server's default stream answers)
        got = await collect(stream)
        assert got.content == "Echo: Hi" and len(fake.chat_requests()) == 2
        return
    else:
        with pytest.raises(type(expected_error)) as caught:
            await collect(stream)
        assert caught.value.partial == expected


async def test_request_headers_and_body_match_openrouter_spec(fake: FakeOpenRouter, client: OpenRouterClient) -> None:
    request = ChatRequest(
        model="openrouter/auto",
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": [text_part("What is this?"), image_part("data:image/png;base64,iVBORw0KGgo=")]},
        ],
        models=["anthropic/claude-haiku-4.5", "openai/gpt-4o-mini"],
        provider=ProviderPreferences(allow_fallbacks=True, data_collection="deny", sort="price"),
        plugins=[{"id": "web", "max_results": 3}],
        tools=[{"type": "function", "function": {"name": "weather", "description": "Weather",
                                                 "parameters": {"type": "object", "properties": {}}}}],
        tool_choice="auto",
        response_format={"type": "json_object"},
        max_tokens=300,
        user="discord-user-hash",
        session_id="conversation-1",
    )
    await collect(client.stream_chat(request))
    [recorded] = fake.chat_requests()
    headers = recorded.headers
    assert headers["authorization"] == f"Bearer {API_KEY}"
    assert headers["http-referer"] == "https://example.test/bot"
    assert headers["x-openrouter-title"] == headers["x-title"] == "Test Bot"
    assert headers["content-type"] == "application/json"
    body = recorded.json()
    assert_valid_chat_request(body)
    assert body["provider"] == {"allow_fallbacks": True, "data_collection": "deny", "sort": "price"}
    assert body["models"] == ["anthropic/claude-haiku-4.5", "openai/gpt-4o-mini"]
    assert body["stream"] is True
    json_schema = ChatRequest(model="m/x", messages=[{"role": "user", "content": "x"}], response_format={
        "type": "json_schema", "json_schema": {"name": "answer", "strict": True,
                                               "schema": {"type": "object", "properties": {"a": {"type": "string"}}}}})
    assert_valid_chat_request(json_schema.to_body())


async def test_429_then_200_is_retried_honouring_retry_after(fake: FakeOpenRouter, client: OpenRouterClient) -> None:
    fake.script("chat", JSONReply(429, fixture_bytes("error-429-upstream-provider.json"), {"Retry-After": "0.3"}))
    notices: list[RetryNotice] = []

    async def on_retry(notice: RetryNotice) -> None:
        notices.append(notice)

    started = time.monotonic()
    completion = await collect(client.stream_chat(simple(), on_retry=on_retry))
    assert time.monotonic() - started >= 0.3
    assert completion.content == "Echo: Hi"
    assert len(fake.chat_requests()) == 2
    [notice] = notices
    assert isinstance(notice.error, e.RateLimited) and notice.error.retry_after == 0.3 and notice.delay >= 0.3
    assert "Google" in notice.error.user_message


async def test_503_on_a_plain_request_is_retried(fake: FakeOpenRouter, client: OpenRouterClient) -> None:
    fake.script("key", JSONReply(503, {"error": {"code": 503, "message": "No provider"}}, {"Retry-After": "0"}))
    key = await client.get_key()
    assert key.usage == Decimal("25.5")
    assert len([r for r in fake.requests if r.path.endswith("/key")]) == 2


@pytest.mark.parametrize(("status", "fixture", "kind"), [
    (400, "error-400-context-length.json", e.ContextTooLong),
    (401, "error-401.json", e.AuthenticationFailed),
    (402, "error-402-with-metadata.json", e.InsufficientCredits),
    (403, "error-403-guardrail-docs-example.json", e.ModerationRefused),
])
async def test_client_errors_are_never_retried(fake: FakeOpenRouter, client: OpenRouterClient, status: int,
                                               fixture: str, kind: type[e.OpenRouterError]) -> None:
    fake.script("chat", JSONReply(status, fixture_bytes(fixture)))
    with pytest.raises(kind):
        await collect(client.stream_chat(simple()))
    assert len(fake.chat_requests()) == 1


async def test_attempt_cap(fake: FakeOpenRouter, client: OpenRouterClient) -> None:
    fake.script("chat", *[JSONReply(502, b"<html>Bad gateway</html>")] * 5)
    with pytest.raises(e.ProviderUnavailable):
        await collect(client.stream_chat(simple()))
    assert len(fake.chat_requests()) == 4  # the first try and three retries


async def test_retry_after_beyond_the_budget_gives_up_at_once(fake: FakeOpenRouter, client: OpenRouterClient) -> None:
    fake.script("chat", JSONReply(429, {"error": {"code": 429, "message": "slow down"}}, {"Retry-After": "120"}))
    started = time.monotonic()
    with pytest.raises(e.RateLimited) as caught:
        await collect(client.stream_chat(simple()))
    assert time.monotonic() - started < 1
    assert caught.value.retry_after == 120
    assert "Try again in 120 s" in caught.value.user_message


async def test_connection_dropped_before_any_token_is_retried(fake: FakeOpenRouter, client: OpenRouterClient) -> None:
    fake.script("chat", DropConnection(), SSEReply(fixture="stream-basic.sse", drop_after=2))
    completion = await collect(client.stream_chat(simple()))
    assert completion.content == "Echo: Hi"  # third request: the generated default stream
    assert len(fake.chat_requests()) == 3


async def test_connection_dropped_after_a_token_is_not_retried(fake: FakeOpenRouter, client: OpenRouterClient) -> None:
    fake.script("chat", SSEReply(fixture="stream-basic.sse", drop_after=5))
    received = []
    with pytest.raises(e.StreamInterrupted) as caught:
        async with client.stream_chat(simple()) as stream:
            async for delta in stream:
                received.append(delta.content)
    assert "".join(received) == caught.value.partial.content == "Pebbles and"  # type: ignore[union-attr]
    assert caught.value.partial.generation_id == "gen-1754441342-hIkMo7SMi0ZecQw3oR4d"  # type: ignore[union-attr]
    assert len(fake.chat_requests()) == 1


async def test_slow_stream_kept_alive_by_comments(fake: FakeOpenRouter) -> None:
    fake.script("chat", SSEReply(fixture="stream-basic.sse", interval=0.25, keepalive_every=0.05))
    async with make_client(fake, idle=0.15) as client:
        completion = await collect(client.stream_chat(simple()))
    assert completion.content == "Pebbles and Skipper."


async def test_idle_timeout_keeps_the_partial_answer(fake: FakeOpenRouter) -> None:
    fake.script("chat", SSEReply(fixture="stream-basic.sse", interval=0.6))
    async with make_client(fake, idle=0.3) as client:
        with pytest.raises(e.RequestTimeout, match="no data from OpenRouter") as caught:
            await collect(client.stream_chat(simple()))
    assert caught.value.partial is not None
    assert len(fake.chat_requests()) == 1


async def test_first_byte_timeout(fake: FakeOpenRouter) -> None:
    fake.script("chat", SSEReply(fixture="stream-basic.sse", delay_before=1.0))
    async with make_client(fake, first_byte=0.2) as client:
        started = time.monotonic()
        with pytest.raises(e.RequestTimeout, match=r"within 0\.2 s"):
            await collect(client.stream_chat(simple()))
        assert time.monotonic() - started < 0.8


async def test_malformed_line_is_a_typed_error_with_partial(fake: FakeOpenRouter, client: OpenRouterClient) -> None:
    good = b'data: {"id":"gen-x","model":"m/x","choices":[{"index":0,"delta":{"content":"Hel"}}]}\n\n'
    fake.script("chat", SSEReply(events=[good, b"data: {not json\n\n", b"data: [DONE]\n\n"]))
    with pytest.raises(e.InvalidResponse) as caught:
        await collect(client.stream_chat(simple()))
    assert caught.value.partial is not None and caught.value.partial.content == "Hel"


async def test_error_chunk_mid_stream(fake: FakeOpenRouter, client: OpenRouterClient) -> None:
    fake.script("chat", SSEReply(fixture="stream-midstream-error.sse"))
    with pytest.raises(e.BadRequest, match="Token limit reached") as caught:
        await collect(client.stream_chat(simple()))
    assert caught.value.partial is not None and caught.value.partial.reasoning
    assert len(fake.chat_requests()) == 1


async def test_body_that_ends_without_finishing_is_interrupted(fake: FakeOpenRouter, client: OpenRouterClient) -> None:
    first = b'data: {"id":"gen-y","choices":[{"index":0,"delta":{"content":"partial"}}]}\n\n'
    fake.script("chat", SSEReply(events=[first]))
    with pytest.raises(e.StreamInterrupted) as caught:
        await collect(client.stream_chat(simple()))
    assert caught.value.partial is not None and caught.value.partial.content == "partial"


async def test_cancelling_the_consumer_releases_the_stream(fake: FakeOpenRouter, client: OpenRouterClient) -> None:
    fake.tokens_per_second = 20
    fake.reply_text = "word " * 200
    got: list[str] = []
    stream = client.stream_chat(simple())

    async def consume() -> None:
        async with stream:
            async for delta in stream:
                got.append(delta.content)

    task = asyncio.create_task(consume())
    await asyncio.sleep(0.4)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert got and stream.completion.content == "".join(got)
    # the pool is usable afterwards
    fake.tokens_per_second = None
    fake.reply_text = "ok"
    assert (await collect(client.stream_chat(simple()))).content == "ok"


async def test_padded_json_body_and_non_json_error(fake: FakeOpenRouter, client: OpenRouterClient) -> None:
    recorded = fixture_bytes("chat-completion-nonstream.json")
    padding = recorded[: len(recorded) - len(recorded.lstrip())]  # what OpenRouter sends while it waits
    assert padding
    padded = padding + fixture_bytes("key-sample-docs.json")
    fake.script("key", JSONReply(200, padded))
    assert (await client.get_key()).limit == Decimal("100")
    fake.script("chat", JSONReply(400, b"   \n<html>oops</html>"))
    with pytest.raises(e.BadRequest, match="oops"):
        await collect(client.stream_chat(simple()))


async def test_models_key_and_generation(fake: FakeOpenRouter, client: OpenRouterClient) -> None:
    models = {m.id: m for m in await client.list_models()}
    sonnet = models["anthropic/claude-sonnet-4"]
    assert sonnet.prompt_price == Decimal("0.000003") and sonnet.completion_price == Decimal("0.000015")
    assert sonnet.context_length == 1000000 and sonnet.max_completion_tokens == 64000
    assert sonnet.vision and "tools" in sonnet.supported_parameters
    assert not models["openai/gpt-3.5-turbo"].vision

    key = await client.get_key()
    assert key.limit == Decimal("100") and key.limit_remaining == Decimal("74.5") and key.usage == Decimal("25.5")

    fake.generation_404_first = 2
    completion = await collect(client.stream_chat(simple()))
    assert completion.generation_id
    stats = await client.get_generation(completion.generation_id, delay=0.01)
    assert stats.id == completion.generation_id
    assert completion.usage is not None and stats.total_cost == completion.usage.cost
    lookups = [r for r in fake.requests if r.path.endswith("/generation")]
    assert len(lookups) == 3

    with pytest.raises(e.ModelNotFound):
        await client.get_generation("gen-unknown", attempts=2, delay=0.01)


async def test_connection_refused_is_typed(fake: FakeOpenRouter) -> None:
    url = fake.base_url
    await fake.close()
    async with OpenRouterClient(api_key="k", base_url=url,
                                retry=RetryPolicy(max_retries=1, base_delay=0.01, budget=1)) as client:
        with pytest.raises(e.ConnectionFailed) as caught:
            await collect(client.stream_chat(simple()))
    assert "Could not reach OpenRouter" in caught.value.user_message


async def test_the_generation_id_is_known_from_the_headers_before_any_token(fake: FakeOpenRouter,
                                                                            client: OpenRouterClient) -> None:
    """OpenRouter names the generation in `X-Generation-Id`: an answer cut before its first token has
    an id to look its cost up by."""
    content = b'data: {"choices":[{"index":0,"delta":{"content":"late"}}]}\n\n'  # chunks without an id
    fake.script("chat", SSEReply(events=[b": OPENROUTER PROCESSING\n\n", content], interval=10,
                                 generation_id="gen-from-headers"))
    told: list[tuple[str, str | None]] = []
    heard = asyncio.Event()

    async def on_generation(generation_id: str) -> None:
        told.append((generation_id, stream.completion.generation_id))  # already on the completion
        heard.set()

    stream = client.stream_chat(simple(), on_generation=on_generation)
    async with stream:
        reading = asyncio.create_task(anext(aiter(stream)))
        await asyncio.wait_for(heard.wait(), 5)
        reading.cancel()  # a Stop before the first token
        with pytest.raises(asyncio.CancelledError):
            await reading
    assert told == [("gen-from-headers", "gen-from-headers")]
    assert stream.completion.generation_id == "gen-from-headers" and stream.completion.content == ""


async def test_an_endless_line_ends_the_stream_with_a_clear_error(fake: FakeOpenRouter,
                                                                  client: OpenRouterClient) -> None:
    good = b'data: {"id":"gen-x","model":"m/x","choices":[{"index":0,"delta":{"content":"Hel"}}]}\n\n'
    fake.script("chat", SSEReply(events=[good, b"data: " + b"x" * (MAX_LINE_BYTES + 10)]))
    with pytest.raises(e.InvalidResponse, match="a line longer than 1,048,576 bytes") as caught:
        await collect(client.stream_chat(simple()))
    assert caught.value.partial is not None and caught.value.partial.content == "Hel"
    assert len(fake.chat_requests()) == 1


def _content(text: str) -> bytes:
    chunk = {"id": "gen-k", "model": "m/x", "choices": [{"index": 0, "delta": {"content": text}}]}
    return b"data: " + json.dumps(chunk).encode() + b"\n\n"


async def test_a_stream_of_keep_alives_only_ends_at_the_content_deadline(fake: FakeOpenRouter) -> None:
    """Keep-alives reset the idle timeout, but not the idle-content deadline."""
    fake.script("chat", SSEReply(events=[KEEPALIVE_FRAME, DONE_FRAME], interval=30, keepalive_every=0.05))
    async with make_client(fake, idle=0.3, idle_content=0.6) as client:
        with pytest.raises(e.RequestTimeout, match=r"nothing but keep-alives for 0\.6 s") as caught:
            await collect(client.stream_chat(simple()))
    assert caught.value.partial is not None and caught.value.partial.content == ""
    assert len(fake.chat_requests()) == 1  # not retried


async def test_keep_alives_after_some_content_end_it_with_the_content_kept(fake: FakeOpenRouter) -> None:
    fake.script("chat", SSEReply(events=[_content("Hel"), _content("lo"), DONE_FRAME], interval=30,
                                 keepalive_every=0.05))
    received: list[str] = []
    async with make_client(fake, idle=0.3, idle_content=0.6) as client:
        with pytest.raises(e.RequestTimeout, match="keep-alives") as caught:
            async with client.stream_chat(simple()) as stream:
                async for delta in stream:
                    received.append(delta.content)
    assert received == ["Hel"] and caught.value.partial is not None and caught.value.partial.content == "Hel"
    assert "too long" in caught.value.user_message


async def test_a_stream_that_goes_on_too_long_ends_at_the_overall_deadline(fake: FakeOpenRouter) -> None:
    fake.script("chat", SSEReply(events=[_content("x")] * 400 + [DONE_FRAME], interval=0.02))
    async with make_client(fake, idle=0.3, idle_content=0.3, total=0.8) as client:
        with pytest.raises(e.RequestTimeout, match=r"took longer than the 0\.8 s allowed") as caught:
            await collect(client.stream_chat(simple()))
    assert caught.value.partial is not None and 5 < len(caught.value.partial.content) < 400


async def test_a_request_body_is_sent_as_it_is_encoded_with_its_length(fake: FakeOpenRouter,
                                                                      client: OpenRouterClient) -> None:
    """The body goes out in pieces (never one string and its bytes), with a Content-Length, not chunked;
    a retry sends it again in full."""
    from bot.openrouter.client import JSONBody

    big = "x" * 300_000
    body = JSONBody({"model": "openai/gpt-4o", "messages": [{"role": "user", "content": big}]})
    pieces = [piece async for piece in body]
    assert len(pieces) > 1 and sum(map(len, pieces)) == body.length
    assert [piece async for piece in body] == pieces  # sent again (a retry) in full
    fake.script("chat", JSONReply(503, {"error": {"code": 503, "message": "busy"}}))
    request = ChatRequest(model="openai/gpt-4o", messages=[{"role": "user", "content": big}], max_tokens=10)
    await collect(client.stream_chat(request))
    sent = fake.chat_requests()
    assert len(sent) == 2 and all(r.json()["messages"][0]["content"] == big for r in sent)
    assert all(r.headers.get("content-length") == str(len(r.body)) for r in sent)
    assert all("transfer-encoding" not in r.headers for r in sent)


@pytest.mark.parametrize("transport", ["aiohttp", "httpx"])
@pytest.mark.parametrize("gather", [0.0, 0.2])
async def test_a_trickling_stream_is_read_in_batches_once_tokens_flow(fake: FakeOpenRouter, gather: float,
                                                                      transport: Literal["aiohttp", "httpx"]) -> None:
    """With `gather`, a stream that brings a token per read is read at most that often after its first
    token: one read then handles the tokens that came meanwhile (each still reaches the caller). With
    httpx's own transport a read takes one HTTP chunk: it goes on reading what came before it gathers again."""
    fake.script("chat", SSEReply(events=[_content(f"w{i} ") for i in range(16)] + [DONE_FRAME], interval=0.02))
    loop = asyncio.get_running_loop()
    times: list[float] = []
    async with make_client(fake, transport, gather=gather) as client:
        async with client.stream_chat(simple()) as stream:
            async for delta in stream:
                times.append(loop.time())
                assert delta.content == f"w{len(times) - 1} "
        # the connection went back to the pool reading (aiohttp's is paused while a stream gathers)
        assert (await collect(client.stream_chat(simple()))).content == "Echo: Hi"
        assert len(fake.chat_requests()) == 2
    gaps = [b - a for a, b in itertools.pairwise(times)]
    together = sum(g < 0.005 for g in gaps)  # handled in the same read as the one before
    assert len(times) == 16
    if gather:
        assert together >= 8 and max(gaps) >= 0.1
    else:
        assert together <= 3 and max(gaps) < 0.1


@pytest.mark.parametrize("transport", ["aiohttp", "httpx"])
async def test_pooled_connections_are_kept_and_one_the_server_closed_is_replaced(
        transport: Literal["aiohttp", "httpx"]) -> None:
    """A follow-up reuses the connection (in production: no new TCP and TLS handshake); one the server closed
    while it was idle is replaced, and the request goes through."""
    server = FakeOpenRouter()
    server.keepalive_timeout = 0.2
    await server.start()
    try:
        async with make_client(server, transport) as client:
            for _ in range(2):
                assert (await collect(client.stream_chat(simple()))).content == "Echo: Hi"
            await client.list_models()
            await asyncio.sleep(0.5)  # the server has closed the idle connection
            assert (await collect(client.stream_chat(simple()))).content == "Echo: Hi"
    finally:
        await server.close()
    peers = [r.peer for r in server.requests]
    assert len(peers) == 4 and peers[0] == peers[1] == peers[2] != peers[3]


async def test_a_body_left_open_after_done_does_not_hold_the_answer(fake: FakeOpenRouter,
                                                                    client: OpenRouterClient) -> None:
    """After [DONE] the body's end is waited for a moment only (its connection is then not reused)."""
    fake.script("chat", SSEReply(events=[_content("Hi") + DONE_FRAME, KEEPALIVE_FRAME], interval=3))
    fake.script("chat", SSEReply(events=[_content("Hi"), DONE_FRAME + KEEPALIVE_FRAME]))
    started = time.monotonic()
    assert (await collect(client.stream_chat(simple()))).content == "Hi"  # a keep-alive comes 3 s later
    assert (await collect(client.stream_chat(simple()))).content == "Hi"  # one came with the [DONE]
    assert time.monotonic() - started < 2.5
