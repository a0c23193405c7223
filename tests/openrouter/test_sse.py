from __future__ import annotations

import json

import pytest

from bot.openrouter.sse import SSEDecoder
from tests.conftest import FIXTURES, fixture_bytes

SSE_FIXTURES = sorted(p.name for p in FIXTURES.glob("*.sse"))


def decode_all(data: bytes, step: int | None = None) -> list[bytes]:
    decoder = SSEDecoder()
    events: list[bytes] = []
    if step is None:
        events += decoder.feed(data)
    else:
        for start in range(0, len(data), step):
            events += decoder.feed(data[start:start + step])
    events += decoder.flush()
    return events


@pytest.mark.parametrize("name", SSE_FIXTURES)
def test_every_recording_decodes_the_same_whatever_the_read_sizes(name: str) -> None:
    data = fixture_bytes(name)
    whole = decode_all(data)
    assert whole, "every recording has data events"
    assert len(whole) == data.count(b"data:")  # keep-alive comments are skipped
    for step in (1, 3, 7, 64):
        assert decode_all(data, step) == whole
    for payload in whole:
        if payload != b"[DONE]":
            assert isinstance(json.loads(payload), dict)


def test_utf8_character_split_across_reads_is_joined() -> None:
    data = fixture_bytes("stream-utf8-final-usage-repeats-finish.sse")
    cut = data.index("°".encode()) + 1  # inside the two-byte character
    decoder = SSEDecoder()
    events = decoder.feed(data[:cut]) + decoder.feed(data[cut:])
    text = "".join(
        (json.loads(e)["choices"] or [{}])[0].get("delta", {}).get("content") or "" for e in events if e != b"[DONE]"
    )
    assert "15°C (59°F)" in text


def test_crlf_multiline_data_and_other_fields() -> None:
    decoder = SSEDecoder()
    events = decoder.feed(b"event: message\r\nid: 7\r\ndata: {\"a\":\r\ndata: 1}\r\n\r\n: ping\r\n\r\nretry: 5\n\n")
    assert events == [b'{"a":\n1}']


def test_event_without_final_blank_line_is_flushed() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: [DONE]") == []
    assert decoder.flush() == [b"[DONE]"]
    assert decoder.flush() == []
