"""Typed wire objects at the edge of OpenRouter's API: what we send and what comes back."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

Message = dict[str, Any]
"""A chat message exactly as OpenRouter takes it: `{"role": ..., "content": str | [parts]}`."""

def text_part(text: str) -> dict[str, Any]:
    return {"type": "text", "text": text}


def image_part(data_url: str, *, detail: Literal["auto", "low", "high"] = "auto") -> dict[str, Any]:
    return {"type": "image_url", "image_url": {"url": data_url, "detail": detail}}


def file_part(filename: str, data_url: str) -> dict[str, Any]:
    return {"type": "file", "file": {"filename": filename, "file_data": data_url}}


def to_decimal(value: Any) -> Decimal | None:
    """A price or cost as an exact Decimal; floats go through their shortest text form. None when it
    is not a finite number (`NaN`, `Infinity`, text, a boolean...)."""
    if value is None or value == "" or isinstance(value, bool):
        return None
    try:
        number = Decimal(value) if isinstance(value, str) else Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None
    return number if number.is_finite() else None


def to_cost(value: Any) -> Decimal | None:
    """A charge in USD: a finite number that is not negative, else None (unreadable)."""
    number = to_decimal(value)
    return number if number is not None and number >= 0 else None


def plain_number(value: Decimal) -> str:
    """A Decimal as plain text, without exponent or trailing zeros: `2.5`, `10`, `0.075`."""
    return format(value.normalize(), "f") if value else "0"


@dataclass(frozen=True, slots=True)
class MaxPrice:
    """`provider.max_price`: the most OpenRouter may charge for this request, whichever provider serves it.

    OpenRouter's units: prompt and completion in USD per million tokens, request and image in USD each.
    """

    prompt: Decimal
    completion: Decimal
    request: Decimal = Decimal(0)
    image: Decimal = Decimal(0)

    def to_body(self) -> dict[str, str]:
        # The published schema types each price as a string.
        return {name: plain_number(getattr(self, name)) for name in ("prompt", "completion", "request", "image")}


@dataclass(slots=True)
class ProviderPreferences:
    """OpenRouter's provider routing preferences (`provider` in the request): the ones a guild sets, and
    the price cap a budget sets."""

    allow_fallbacks: bool | None = None
    data_collection: Literal["allow", "deny"] | None = None
    sort: Literal["price", "throughput", "latency"] | None = None
    max_price: MaxPrice | None = None

    def to_body(self) -> dict[str, Any]:
        body: dict[str, Any] = {name: value for name in ("allow_fallbacks", "data_collection", "sort")
                                if (value := getattr(self, name)) is not None}
        if self.max_price is not None:
            body["max_price"] = self.max_price.to_body()
        return body


@dataclass(slots=True)
class ChatRequest:
    """One chat completion request with every OpenRouter extra a chat bot needs."""

    model: str
    messages: list[Message]
    models: list[str] | None = None  # fallback list, tried in order after `model`
    provider: ProviderPreferences | None = None
    plugins: list[dict[str, Any]] | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    response_format: dict[str, Any] | None = None  # {"type": "json_object"} or {"type": "json_schema", ...}
    max_tokens: int | None = None
    user: str | None = None  # a stable pseudonymous id of the person asking
    session_id: str | None = None
    reasoning: dict[str, Any] | None = None  # {"effort": "low"|"medium"|"high"} and/or {"exclude": True}

    def to_body(self) -> dict[str, Any]:
        """The JSON body of a streamed request."""
        body: dict[str, Any] = {"model": self.model, "messages": self.messages, "stream": True}
        if self.models:
            body["models"] = list(self.models)
        if self.provider is not None:
            prefs = self.provider.to_body()
            if prefs:
                body["provider"] = prefs
        for name in ("plugins", "tools", "tool_choice", "response_format", "max_tokens", "user", "session_id",
                     "reasoning"):
            value = getattr(self, name)
            if value is not None:
                body[name] = value
        # Usage accounting: the cost and token counts arrive in the response (always, nowadays;
        # `usage.include` is how OpenRouter documents asking for it).
        body["usage"] = {"include": True}
        return body


@dataclass(slots=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    reasoning_tokens: int = 0
    cached_tokens: int = 0
    cost: Decimal | None = None  # USD, what OpenRouter charged
    is_byok: bool = False

    @classmethod
    def from_wire(cls, raw: dict[str, Any]) -> Usage:
        details = raw.get("completion_tokens_details") or {}
        prompt_details = raw.get("prompt_tokens_details") or {}
        return cls(
            prompt_tokens=int(raw.get("prompt_tokens") or 0),
            completion_tokens=int(raw.get("completion_tokens") or 0),
            total_tokens=int(raw.get("total_tokens") or 0),
            reasoning_tokens=int(details.get("reasoning_tokens") or 0),
            cached_tokens=int(prompt_details.get("cached_tokens") or 0),
            cost=to_cost(raw.get("cost")),
            is_byok=bool(raw.get("is_byok")),
        )


@dataclass(slots=True)
class ToolCall:
    id: str
    name: str
    arguments: str  # JSON text, assembled from the stream's fragments
    type: str = "function"

    def parsed_arguments(self) -> Any:
        return json.loads(self.arguments) if self.arguments.strip() else {}

    def to_wire(self) -> dict[str, Any]:
        return {"id": self.id, "type": self.type, "function": {"name": self.name, "arguments": self.arguments}}


@dataclass(frozen=True, slots=True)
class Citation:
    """A source the answer cites (a `url_citation` annotation: web search results)."""

    url: str
    title: str = ""


@dataclass(slots=True)
class Completion:
    """What a chat completion produced, streamed or not, complete or cut short."""

    generation_id: str | None = None
    model: str | None = None  # the model that actually answered
    provider: str | None = None  # the provider that actually served it
    content: str = ""
    reasoning: str = ""
    reasoning_details: list[dict[str, Any]] = field(default_factory=list)
    tool_calls: list[ToolCall] = field(default_factory=list)
    finish_reason: str | None = None  # normalized: stop, length, tool_calls, content_filter, error
    native_finish_reason: str | None = None  # what the provider said
    usage: Usage | None = None
    refusal: str | None = None
    citations: list[Citation] = field(default_factory=list)  # in first-cited order, each url once
    # tries that OpenRouter answered and that failed before any token, then were retried: it may have
    # billed those generations too
    earlier_generations: list[str] = field(default_factory=list)

    def json(self) -> Any:
        """The answer parsed as JSON (for JSON mode / structured outputs)."""
        return json.loads(self.content)


@dataclass(slots=True)
class ChatDelta:
    """A piece of a streamed answer: visible text and reasoning are kept apart."""

    content: str = ""
    reasoning: str = ""


PRICE_KEYS = ("prompt", "completion", "request", "image")


def read_price(pricing: dict[str, Any], key: str) -> Decimal | None:
    """One price of the catalogue: absent is 0 (OpenRouter leaves zero prices out), a negative one
    (`"-1"`, variable-priced routers) or an unreadable one is unknown (None)."""
    value = to_decimal(pricing.get(key)) if key in pricing else Decimal(0)
    return value if value is not None and value >= 0 else None


def read_prices(pricing: dict[str, Any]) -> dict[str, Decimal | None]:
    """The catalogue's token, request and image prices of one model or tier (see `read_price`)."""
    return {key: read_price(pricing, key) for key in PRICE_KEYS}


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """One entry of OpenRouter's models catalogue. Prices are exact, in USD per token.

    `priced` is False when OpenRouter lists no price, a variable one (`"-1"`) or an unreadable one:
    the prices then read 0 but mean "unknown", never "free".
    """

    id: str
    name: str
    context_length: int
    max_completion_tokens: int | None
    prompt_price: Decimal
    completion_price: Decimal
    request_price: Decimal
    image_price: Decimal
    input_modalities: tuple[str, ...]
    output_modalities: tuple[str, ...]
    supported_parameters: frozenset[str]
    # The highest prices any of the model's pricing tiers charges (OpenRouter's `pricing.overrides`,
    # e.g. dearer tokens past 200k of prompt): what a worst-case cost estimate must use.
    prompt_price_ceiling: Decimal | None = None
    completion_price_ceiling: Decimal | None = None
    priced: bool = True
    # USD per web search when the model's provider searches natively (`pricing.web_search`); None: unknown
    web_search_price: Decimal | None = Decimal(0)

    @property
    def worst_prompt_price(self) -> Decimal:
        return max(self.prompt_price, self.prompt_price_ceiling or Decimal(0))

    @property
    def worst_completion_price(self) -> Decimal:
        return max(self.completion_price, self.completion_price_ceiling or Decimal(0))

    @property
    def vision(self) -> bool:
        return "image" in self.input_modalities

    @property
    def reasons(self) -> bool:
        """Whether the model takes `reasoning` (an effort, or leaving its reasoning out)."""
        return "reasoning" in self.supported_parameters

    @property
    def reads_files(self) -> bool:
        """Whether the model takes PDFs itself (else OpenRouter parses them first, for a fee)."""
        return "file" in self.input_modalities

    @classmethod
    def from_wire(cls, raw: dict[str, Any]) -> ModelInfo:
        pricing: dict[str, Any] = raw.get("pricing") or {}
        architecture = raw.get("architecture") or {}
        top = raw.get("top_provider") or {}
        context = raw.get("context_length") or top.get("context_length") or 0
        max_completion = top.get("max_completion_tokens")
        prices = read_prices(pricing)
        tiers = [read_prices(t) for t in pricing.get("overrides") or [] if isinstance(t, dict)]
        priced = "prompt" in pricing and "completion" in pricing and all(
            value is not None for p in (prices, *tiers) for value in p.values())

        def ceiling(key: str) -> Decimal | None:
            return max((t[key] or Decimal(0) for t in tiers), default=None)

        return cls(
            id=str(raw["id"]),
            name=str(raw.get("name") or raw["id"]),
            context_length=int(context),
            max_completion_tokens=int(max_completion) if max_completion else None,
            prompt_price=prices["prompt"] or Decimal(0),
            completion_price=prices["completion"] or Decimal(0),
            request_price=prices["request"] or Decimal(0),
            image_price=prices["image"] or Decimal(0),
            input_modalities=tuple(architecture.get("input_modalities") or ("text",)),
            output_modalities=tuple(architecture.get("output_modalities") or ("text",)),
            supported_parameters=frozenset(raw.get("supported_parameters") or ()),
            prompt_price_ceiling=ceiling("prompt"),
            completion_price_ceiling=ceiling("completion"),
            priced=priced,
            web_search_price=read_price(pricing, "web_search"),
        )


@dataclass(frozen=True, slots=True)
class KeyInfo:
    label: str
    limit: Decimal | None  # USD; None means no limit
    usage: Decimal
    limit_remaining: Decimal | None
    limit_reset: str | None
    is_free_tier: bool
    usage_monthly: Decimal | None = None

    @classmethod
    def from_wire(cls, raw: dict[str, Any]) -> KeyInfo:
        data = raw.get("data", raw)
        return cls(
            label=str(data.get("label") or ""),
            limit=to_decimal(data.get("limit")),
            usage=to_decimal(data.get("usage")) or Decimal(0),
            limit_remaining=to_decimal(data.get("limit_remaining")),
            limit_reset=data.get("limit_reset"),
            is_free_tier=bool(data.get("is_free_tier")),
            usage_monthly=to_decimal(data.get("usage_monthly")),
        )


@dataclass(frozen=True, slots=True)
class GenerationStats:
    """`GET /generation`: what a finished generation really cost and who served it."""

    id: str
    total_cost: Decimal | None  # None: OpenRouter sent no readable cost
    model: str | None
    provider: str | None
    prompt_tokens: int | None
    completion_tokens: int | None
    finish_reason: str | None
    native_finish_reason: str | None
    cancelled: bool = False

    @classmethod
    def from_wire(cls, raw: dict[str, Any]) -> GenerationStats:
        data = raw.get("data", raw)

        def opt_int(key: str) -> int | None:
            value = data.get(key)
            return int(value) if value is not None else None

        return cls(
            id=str(data.get("id") or ""),
            total_cost=to_cost(data.get("total_cost")),
            model=data.get("model"),
            provider=data.get("provider_name"),
            prompt_tokens=opt_int("tokens_prompt"),
            completion_tokens=opt_int("tokens_completion"),
            finish_reason=data.get("finish_reason"),
            native_finish_reason=data.get("native_finish_reason"),
            cancelled=bool(data.get("cancelled")),
        )
