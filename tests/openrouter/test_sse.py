from __future__ import annotations

import json

import pytest

from bot.openrouter.errors import InvalidResponse
from bot.openrouter.sse import MAX_LINE_BYTES, SSEDecoder
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


def test_a_line_past_the_bound_is_a_clear_error_even_fed_in_small_reads() -> None:
    decoder = SSEDecoder(max_line=64 * 1024)
    huge = b"data: " + b"x" * (64 * 1024)
    with pytest.raises(InvalidResponse, match=r"a line longer than 65,536 bytes"):
        for start in range(0, len(huge), 1000):
            decoder.feed(huge[start:start + 1000])
    # the default bound is 1 MiB, and a whole line at once is held to it too
    with pytest.raises(InvalidResponse, match=r"longer than 1,048,576 bytes"):
        SSEDecoder().feed(b"data: " + b"y" * MAX_LINE_BYTES + b"\n\n")


def test_an_event_of_many_data_lines_is_bounded_too() -> None:
    decoder = SSEDecoder(max_line=1000)
    with pytest.raises(InvalidResponse, match="an event's data longer than 1,000 bytes"):
        for _ in range(20):
            decoder.feed(b"data: " + b"z" * 100 + b"\n")


def test_a_line_just_under_the_bound_decodes() -> None:
    decoder = SSEDecoder(max_line=1000)
    line = b"data: " + b"a" * 990
    events: list[bytes] = []
    for byte in range(len(line)):
        events += decoder.feed(line[byte:byte + 1])
    assert events == [] and decoder.feed(b"\n\n") == [b"a" * 990]


def test_decoding_is_linear_in_the_input_whatever_the_read_sizes() -> None:
    """1 MB of one long event a byte per read, then 1 MB of small events a byte per read: the
    decoder's work (bytes it searched or joined) stays a small multiple of the input, where
    re-joining the buffer on every read would be ~500,000 times it."""
    payload = b'{"v":"' + b"q" * (1_000_000 - 8) + b'"}'
    data = b"data: " + payload + b"\n\n"
    decoder = SSEDecoder()
    events: list[bytes] = []
    for i in range(len(data)):
        events += decoder.feed(data[i:i + 1])
    assert events == [payload]
    assert decoder.bytes_scanned <= 3 * len(data)

    small = b": keep-alive\n\n" + b"".join(b'data: {"n":%d}\n\n' % i for i in range(60_000))
    decoder = SSEDecoder()
    count = 0
    for i in range(len(small)):
        count += len(decoder.feed(small[i:i + 1]))
    assert count == 60_000
    assert decoder.bytes_scanned <= 3 * len(small)
