"""The stream accumulator against every real recording."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from bot.openrouter.errors import BadRequest, InvalidResponse, RateLimited
from bot.openrouter.sse import SSEDecoder
from bot.openrouter.stream import StreamAccumulator
from bot.openrouter.types import ChatDelta
from tests.conftest import fixture_bytes


def replay(name: str) -> tuple[StreamAccumulator, list[ChatDelta]]:
    decoder = SSEDecoder()
    acc = StreamAccumulator()
    deltas = []
    for payload in decoder.feed(fixture_bytes(name)) + decoder.flush():
        delta = acc.feed(payload)
        if delta is not None:
            deltas.append(delta)
    return acc, deltas


def test_basic_stream_usage_chunk_with_empty_delta() -> None:
    acc, deltas = replay("stream-basic.sse")
    c = acc.snapshot()
    assert acc.done
    assert c.content == "Pebbles and Skipper."
    assert "".join(d.content for d in deltas) == c.content
    assert (c.generation_id, c.model, c.provider) == ("gen-1754441342-hIkMo7SMi0ZecQw3oR4d", "openai/gpt-4o", "OpenAI")
    # the usage chunk after the finish chunk has finish_reason null: the finish must survive it
    assert (c.finish_reason, c.native_finish_reason) == ("stop", "stop")
    assert c.usage is not None
    assert (c.usage.prompt_tokens, c.usage.completion_tokens, c.usage.cost) == (17, 6, Decimal("0.0001025"))


def test_usage_chunk_with_empty_choices_and_dated_model_slug() -> None:
    acc, _ = replay("stream-usage-empty-choices.sse")
    c = acc.snapshot()
    assert c.content == "Hello!"
    assert c.model == "anthropic/claude-4.6-sonnet-20260217"
    assert c.provider == "Amazon Bedrock"
    assert c.finish_reason == "stop"
    assert c.usage is not None and c.usage.cost == Decimal("0.000837") and c.usage.prompt_tokens == 254


def test_usage_chunk_repeating_the_finish_reason_and_utf8() -> None:
    acc, _ = replay("stream-utf8-final-usage-repeats-finish.sse")
    c = acc.snapshot()
    assert "15°C (59°F)" in c.content
    assert (c.finish_reason, c.native_finish_reason) == ("stop", "end_turn")
    assert c.usage is not None and c.usage.cost is not None and c.usage.cost > 0


def test_tool_call_fragments_are_assembled_by_index() -> None:
    acc, deltas = replay("stream-tool-calls.sse")
    c = acc.snapshot()
    assert deltas == []  # content is null throughout
    assert (c.finish_reason, c.native_finish_reason) == ("tool_calls", "tool_use")
    assert len(c.tool_calls) == 1
    call = c.tool_calls[0]
    assert call.id == "toolu_bdrk_01FnJwNhnbF7UbXLQGHJ5dda"
    assert call.name == "weather"
    assert call.parsed_arguments() == {"latitude": "52.5200", "longitude": "13.4050"}
    assert call.to_wire()["function"]["arguments"] == call.arguments


def test_reasoning_is_kept_apart_from_content() -> None:
    acc, deltas = replay("stream-reasoning.sse")
    c = acc.snapshot()
    assert "2+2 equals 4." in c.reasoning
    assert "This is a simple arithmetic question" in c.reasoning
    assert c.content and "This is a simple" not in c.content
    assert any(d.reasoning and not d.content for d in deltas)
    assert c.reasoning_details  # signatures etc. are kept for a round trip
    assert c.usage is not None and c.model == "anthropic/claude-sonnet-4.5" and c.provider == "Google"


def test_reasoning_with_tool_calls() -> None:
    acc, _ = replay("stream-reasoning-tool-calls.sse")
    c = acc.snapshot()
    assert c.reasoning.startswith("The user is asking for the weather in Berlin")
    assert c.tool_calls and c.tool_calls[0].parsed_arguments()
    assert c.usage is not None and c.usage.reasoning_tokens > 0


def test_processing_comments_between_events_and_encrypted_reasoning() -> None:
    acc, _ = replay("stream-processing-comments-fallback-model.sse")
    c = acc.snapshot()
    assert c.content.startswith("I'm Grok")
    assert c.model == "x-ai/grok-4" and c.provider == "xAI"
    assert c.native_finish_reason == "completed"
    assert any(d.get("type") == "reasoning.encrypted" for d in c.reasoning_details)


def test_midstream_error_chunk_without_finish_reason_error_raises_with_partial() -> None:
    with pytest.raises(BadRequest) as caught:
        replay("stream-midstream-error.sse")
    err = caught.value
    assert err.detail == "Token limit reached"
    assert err.partial is not None
    assert err.partial.reasoning == "We need to respond to a greeting. The user"
    assert err.partial.finish_reason == "error"
    assert err.partial.usage is not None and err.partial.usage.completion_tokens == 10  # usage on the error chunk


def test_documented_midstream_error_shape() -> None:
    with pytest.raises(RateLimited) as caught:
        replay("stream-midstream-error-docs-example.sse")
    assert caught.value.metadata == {"error_type": "rate_limit_exceeded"}
    assert caught.value.partial is not None and caught.value.partial.generation_id == "gen-abc123"


def test_unknown_fields_are_ignored_and_malformed_chunks_are_typed() -> None:
    acc = StreamAccumulator()
    delta = acc.feed(b'{"id":"gen-1","new_field":{"x":1},"choices":[{"index":0,"delta":{"content":"hi","what":1}}]}')
    assert delta == ChatDelta("hi", "")
    with pytest.raises(InvalidResponse) as caught:
        acc.feed(b'{"id": "gen-1", "choices": [')
    assert caught.value.partial is not None and caught.value.partial.content == "hi"
    with pytest.raises(InvalidResponse):
        acc.feed(b"[1, 2]")


def test_url_citations_are_kept_once_each_in_order() -> None:
    acc = StreamAccumulator()
    cite = [{"type": "url_citation", "url_citation": {"url": "https://a.example/x", "title": "A", "start_index": 0,
                                                       "end_index": 3}},
            {"type": "file_citation", "file_citation": {"file_id": "f"}},  # not a web source: not shown
            {"type": "url_citation", "url_citation": {"url": "https://b.example/", "title": None}},
            {"type": "url_citation", "url_citation": {"url": "https://a.example/x", "title": "A again"}},
            "not even an object"]
    acc.feed(b'{"id": "gen-1", "choices": [{"delta": {"content": "See [a.example]"}}]}')
    acc.feed(json.dumps({"id": "gen-1", "choices": [{"delta": {"content": ".", "annotations": cite},
                                                      "finish_reason": "stop"}]}).encode())
    assert [(c.url, c.title) for c in acc.snapshot().citations] == [("https://a.example/x", "A"),
                                                                    ("https://b.example/", "")]
