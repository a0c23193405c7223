"""An incremental Server-Sent Events decoder, fed raw bytes as they come off the socket.

It splits on bytes, never on decoded text, so a UTF-8 character cut in two by a network read is
joined again before anything decodes it. Comment lines (OpenRouter's `: OPENROUTER PROCESSING`
keep-alives) are skipped; fields other than `data` are ignored.

Decoding is linear in the input however it is cut: a read without a line break is only kept aside
(never joined to what came before until its line ends), so a line that arrives a byte at a time is
searched and joined once, not once per read. A line, or an event's data, longer than
`MAX_LINE_BYTES` ends the stream with `InvalidResponse` instead of growing without end.
"""

from __future__ import annotations

from bot.openrouter.errors import InvalidResponse

MAX_LINE_BYTES = 1024 * 1024


class SSEDecoder:
    __slots__ = ("_data", "_data_size", "_max_line", "_pending", "_pending_size", "bytes_scanned")

    def __init__(self, *, max_line: int = MAX_LINE_BYTES) -> None:
        self._pending: list[bytes] = []  # the start of a line whose end has not arrived yet
        self._pending_size = 0
        self._data: list[bytes] = []
        self._data_size = 0
        self._max_line = max_line
        self.bytes_scanned = 0  # bytes searched or joined so far: the decoder's work, linear in the input

    def feed(self, chunk: bytes) -> list[bytes]:
        """The `data` payloads of every event that this chunk completes, in order."""
        self.bytes_scanned += len(chunk)
        lines = chunk.split(b"\n")
        if len(lines) == 1:  # no line ends here: keep it aside, join nothing yet
            if chunk:
                self._keep(chunk)
            return []
        if self._pending:  # the first line began in earlier reads: join it, once
            self._pending.append(lines[0])
            lines[0] = b"".join(self._pending)
            self._pending, self._pending_size = [], 0
            self.bytes_scanned += len(lines[0])
            if len(lines[0]) > self._max_line:
                raise self._too_long("a line")
        tail = lines.pop()
        if len(chunk) > self._max_line and any(len(line) > self._max_line for line in lines):
            raise self._too_long("a line")
        if tail:
            self._keep(tail)
        events: list[bytes] = []
        data = self._data
        for line in lines:
            if line.endswith(b"\r"):
                line = line[:-1]
            if not line:
                if data:
                    events.append(data[0] if len(data) == 1 else b"\n".join(data))
                    data = self._data = []
                continue
            if line.startswith(b"data:"):
                value = line[5:]
                if value.startswith(b" "):
                    value = value[1:]
                if data:  # an event of several data lines (rare): their total is bounded too
                    self._grow_event(data, value)
                data.append(value)
        return events

    def _grow_event(self, data: list[bytes], value: bytes) -> None:
        if len(data) == 1:
            self._data_size = len(data[0])
        self._data_size += 1 + len(value)
        if self._data_size > self._max_line:
            raise self._too_long("an event's data")

    def _keep(self, piece: bytes) -> None:
        self._pending.append(piece)
        self._pending_size += len(piece)
        if self._pending_size > self._max_line:
            raise self._too_long("a line")

    def _too_long(self, what: str) -> InvalidResponse:
        self._pending, self._pending_size, self._data, self._data_size = [], 0, [], 0
        return InvalidResponse(f"OpenRouter sent {what} longer than {self._max_line:,} bytes in its stream")

    def flush(self) -> list[bytes]:
        """At the end of the body: an event the server did not close with a blank line."""
        events = self.feed(b"\n\n") if self._pending or self._data else []
        self._pending, self._pending_size = [], 0
        return events
