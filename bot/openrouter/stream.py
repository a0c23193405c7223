"""Accumulates OpenRouter's streamed chat chunks into a `Completion`, one decoded chunk at a time.

Handles everything real OpenRouter sends (see tests/fixtures/*.sse): a usage chunk with an empty
delta, with `choices: []`, or repeating the finish reason; tool-call fragments assembled by index;
reasoning kept apart from the answer; unknown fields ignored; and a chunk with a top-level `error`,
which ends the stream with a typed error that keeps what had arrived.
"""

from __future__ import annotations

import json
from typing import Any

from bot.openrouter.errors import InvalidResponse, OpenRouterError, classify
from bot.openrouter.types import ChatDelta, Completion, ToolCall, Usage

_raw_decode = json.JSONDecoder().raw_decode


def _loads(payload: bytes) -> Any:
    """JSON from one `data:` payload: decoded as UTF-8 first (json.loads on bytes sniffs the
    encoding every time), and without the trailing-whitespace scan (the SSE decoder has split lines)."""
    text = payload.decode("utf-8")
    if text[:1].isspace():
        text = text.lstrip()
    return _raw_decode(text)[0]


class TextBuilder:
    """Appends many small strings; memory stays close to the text's own size.

    A plain list of 200,000 four-character strings costs ~60 bytes a piece; pieces are folded into
    one string every `FOLD` appends, so the overhead stays flat however long the stream runs.
    """

    __slots__ = ("_folded", "_pieces")
    FOLD = 256

    def __init__(self) -> None:
        self._pieces: list[str] = []
        self._folded: list[str] = []

    def add(self, text: str) -> None:
        pieces = self._pieces
        pieces.append(text)
        if len(pieces) >= self.FOLD:
            self._folded.append("".join(pieces))
            pieces.clear()
            if len(self._folded) >= self.FOLD:
                self._folded = ["".join(self._folded)]

    def text(self) -> str:
        return "".join(self._folded + self._pieces)


class StreamAccumulator:
    __slots__ = ("_content", "_reasoning", "_tools", "completion", "done", "events")

    def __init__(self) -> None:
        self.completion = Completion()
        self._content = TextBuilder()
        self._reasoning = TextBuilder()
        self._tools: dict[int, list[Any]] = {}
        self.done = False
        self.events = 0

    def feed(self, payload: bytes) -> ChatDelta | None:
        """Take one SSE `data` payload; return the visible delta it carries, if any.

        Raises `OpenRouterError` (with `partial`) for an error chunk or an unreadable one.
        """
        if payload == b"[DONE]":
            self.done = True
            return None
        try:
            chunk = _loads(payload)
        except (ValueError, UnicodeDecodeError):
            raise InvalidResponse(
                f"malformed stream chunk: {payload[:120]!r}", partial=self.snapshot()
            ) from None
        if type(chunk) is not dict:
            raise InvalidResponse("stream chunk is not a JSON object", partial=self.snapshot())
        self.events += 1
        completion = self.completion
        if completion.generation_id is None:
            completion.generation_id = chunk.get("id")
        model = chunk.get("model")
        if model:
            completion.model = model
        provider = chunk.get("provider")
        if provider:
            completion.provider = provider
        usage = chunk.get("usage")
        if usage:
            completion.usage = Usage.from_wire(usage)
        delta_out: ChatDelta | None = None
        for choice in chunk.get("choices") or ():
            delta = choice.get("delta")
            if delta:
                content = delta.get("content")
                reasoning = delta.get("reasoning")
                if content:
                    self._content.add(content)
                if reasoning:
                    self._reasoning.add(reasoning)
                if content or reasoning:
                    delta_out = ChatDelta(content or "", reasoning or "")
                if "tool_calls" in delta or "reasoning_details" in delta or "refusal" in delta:
                    self._rare_fields(delta)
            finish = choice.get("finish_reason")
            if finish:
                completion.finish_reason = finish
                completion.native_finish_reason = choice.get("native_finish_reason") or finish
        error = chunk.get("error")
        if error:
            self._raise_error(error)
        return delta_out

    def _rare_fields(self, delta: dict[str, Any]) -> None:
        for call in delta.get("tool_calls") or ():
            index = int(call.get("index", len(self._tools)))
            slot = self._tools.get(index)
            if slot is None:
                slot = self._tools[index] = [None, "function", "", []]
            if call.get("id"):
                slot[0] = call["id"]
            if call.get("type"):
                slot[1] = call["type"]
            function = call.get("function") or {}
            if function.get("name"):
                slot[2] = function["name"]
            if function.get("arguments"):
                slot[3].append(function["arguments"])
        details = delta.get("reasoning_details")
        if details:
            self.completion.reasoning_details.extend(details)
        if delta.get("refusal"):
            self.completion.refusal = (self.completion.refusal or "") + delta["refusal"]

    def _raise_error(self, error: Any) -> None:
        if isinstance(error, dict):
            code = error.get("code")
            message = str(error.get("message") or "error in stream")
            metadata = error.get("metadata") if isinstance(error.get("metadata"), dict) else {}
        else:
            code, message, metadata = None, str(error), {}
        self.completion.finish_reason = "error"
        status = code if isinstance(code, int) else None
        raise classify(status, message, metadata, partial=self.snapshot())

    def snapshot(self) -> Completion:
        """The completion as it stands: joined text, assembled tool calls."""
        completion = self.completion
        completion.content = self._content.text()
        completion.reasoning = self._reasoning.text()
        completion.tool_calls = [
            ToolCall(id=slot[0] or f"call_{index}", type=slot[1], name=slot[2], arguments="".join(slot[3]))
            for index, slot in sorted(self._tools.items())
        ]
        return completion


def completion_from_json(body: dict[str, Any], generation_id: str | None = None) -> Completion:
    """A non-streamed `chat.completion` body as a `Completion`."""
    if "error" in body and not body.get("choices"):
        err = body["error"] if isinstance(body["error"], dict) else {"message": str(body["error"])}
        code = err.get("code")
        metadata = err.get("metadata")
        raise classify(code if isinstance(code, int) else None, str(err.get("message")),
                       metadata if isinstance(metadata, dict) else None)
    choices = body.get("choices") or []
    if not choices:
        raise InvalidResponse("completion has no choices")
    choice = choices[0]
    message = choice.get("message") or {}
    usage = body.get("usage")
    finish = choice.get("finish_reason")
    return Completion(
        generation_id=body.get("id") or generation_id,
        model=body.get("model"),
        provider=body.get("provider"),
        content=message.get("content") or "",
        reasoning=message.get("reasoning") or "",
        reasoning_details=list(message.get("reasoning_details") or []),
        tool_calls=[
            ToolCall(id=call.get("id", ""), type=call.get("type", "function"),
                     name=(call.get("function") or {}).get("name", ""),
                     arguments=(call.get("function") or {}).get("arguments") or "")
            for call in message.get("tool_calls") or []
        ],
        finish_reason=finish,
        native_finish_reason=choice.get("native_finish_reason") or finish,
        usage=Usage.from_wire(usage) if usage else None,
        refusal=message.get("refusal"),
    )


__all__ = ["OpenRouterError", "StreamAccumulator", "completion_from_json"]
