"""OpenRouter errors, typed by what they mean to the person waiting in Discord.

`classify()` turns an HTTP status (or the `code` of an error chunk inside a stream) and OpenRouter's
error body into one of these classes. Each carries a short `user_message` fit to show in Discord; the
text from OpenRouter stays in `detail` for the logs and the stored turn. Secrets are scrubbed from
`detail` and `metadata` when the error is made (an upstream message may repeat the API key), so
nothing built from them can show or store one.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any

from bot.logs import scrub_secrets

if TYPE_CHECKING:
    from bot.openrouter.types import Completion


def _shorten(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


class OpenRouterError(Exception):
    """Base class. `partial` holds what a stream delivered before it failed, if anything."""

    retryable = False

    def __init__(self, detail: str, *, status: int | None = None,
                 metadata: Mapping[str, Any] | None = None, partial: Completion | None = None) -> None:
        detail = scrub_secrets(detail)
        super().__init__(detail)
        self.detail = detail
        self.status = status
        self.metadata: dict[str, Any] = _scrubbed(dict(metadata or {}))
        self.partial = partial

    @property
    def user_message(self) -> str:
        return f"OpenRouter returned an error: {_shorten(self.detail)}"

    @property
    def kind(self) -> str:
        """A stable short name, stored with a failed turn."""
        return type(self).__name__

    def __repr__(self) -> str:
        return f"{type(self).__name__}(status={self.status!r}, detail={_shorten(self.detail, 120)!r})"


def _scrubbed(value: Any) -> Any:
    if isinstance(value, str):
        return scrub_secrets(value)
    if isinstance(value, Mapping):
        return {key: _scrubbed(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_scrubbed(item) for item in value]
    return value


class BadRequest(OpenRouterError):
    @property
    def user_message(self) -> str:
        return f"OpenRouter rejected the request: {_shorten(self.detail)}"


class ContextTooLong(BadRequest):
    @property
    def user_message(self) -> str:
        return ("This conversation no longer fits the model's context window. Start a new conversation, "
                "or switch to a model with a larger context.")


class ModelNotFound(BadRequest):
    @property
    def user_message(self) -> str:
        return f"That model is not available on OpenRouter ({_shorten(self.detail, 160)}). Pick another with /models."


class AuthenticationFailed(OpenRouterError):
    @property
    def user_message(self) -> str:
        return "The bot's OpenRouter API key was rejected. Ask the bot's operator to check it."


class InsufficientCredits(OpenRouterError):
    @property
    def user_message(self) -> str:
        return "The bot's OpenRouter account is out of credits. Ask the bot's operator to add credits."


class ModerationRefused(OpenRouterError):
    @property
    def reasons(self) -> list[str]:
        found = self.metadata.get("reasons") or self.metadata.get("patterns") or []
        return [str(reason) for reason in found] if isinstance(found, list) else [str(found)]

    @property
    def flagged_input(self) -> str | None:
        flagged = self.metadata.get("flagged_input")
        return str(flagged) if flagged else None

    @property
    def user_message(self) -> str:
        reasons = ", ".join(self.reasons)
        base = "The request was refused by moderation"
        return f"{base} ({_shorten(reasons, 200)})." if reasons else f"{base}: {_shorten(self.detail, 200)}"


class RequestTimeout(OpenRouterError):
    retryable = True

    @property
    def user_message(self) -> str:
        return "The model took too long to answer. Try again, or pick a faster model."


class RateLimited(OpenRouterError):
    retryable = True

    def __init__(self, detail: str, *, retry_after: float | None = None, **kwargs: Any) -> None:
        super().__init__(detail, **kwargs)
        self.retry_after = retry_after

    @property
    def user_message(self) -> str:
        wait = f" Try again in {math.ceil(self.retry_after)} s." if self.retry_after else " Try again shortly."
        provider = self.metadata.get("provider_name")
        who = f"The provider ({provider})" if provider else "OpenRouter"
        return f"{who} is rate-limiting requests for this model right now.{wait}"


class ProviderUnavailable(OpenRouterError):
    retryable = True

    @property
    def user_message(self) -> str:
        provider = self.metadata.get("provider_name")
        who = f"The model's provider ({provider})" if provider else "The model's provider"
        code = f" (HTTP {self.status})" if self.status else ""
        return f"{who} is unavailable right now{code}. Try again shortly, or pick another model."


class ConnectionFailed(OpenRouterError):
    retryable = True

    @property
    def user_message(self) -> str:
        return "Could not reach OpenRouter. Try again in a moment."


class StreamInterrupted(OpenRouterError):
    retryable = True

    @property
    def user_message(self) -> str:
        return "The connection to OpenRouter dropped while the answer was streaming."


class InvalidResponse(OpenRouterError):
    @property
    def user_message(self) -> str:
        return "OpenRouter sent a response the bot could not read. Try again."


def parse_error_body(body: bytes | str) -> tuple[str, int | None, dict[str, Any]]:
    """(message, code, metadata) from an error body; tolerant of padding and of non-JSON text."""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    stripped = text.strip()
    try:
        parsed = json.loads(stripped) if stripped else None
    except ValueError:
        parsed = None
    if isinstance(parsed, dict):
        err = parsed.get("error", parsed)
        if isinstance(err, dict):
            message = str(err.get("message") or parsed.get("message") or "unknown error")
            code = err.get("code")
            metadata = err.get("metadata")
            return message, code if isinstance(code, int) else None, metadata if isinstance(metadata, dict) else {}
        if isinstance(err, str):
            return err, None, {}
    return (_shorten(stripped, 200) or "empty response"), None, {}


def retry_after_seconds(headers: Mapping[str, str], metadata: Mapping[str, Any] | None = None,
                        *, now: float | None = None) -> float | None:
    """The delay the server asked for: `Retry-After` (seconds or HTTP date), else `X-RateLimit-Reset`.

    `X-RateLimit-Reset` is epoch milliseconds; OpenRouter also repeats it inside the error body's
    `metadata.headers`.
    """
    now = time.time() if now is None else now
    lowered = {k.lower(): v for k, v in headers.items()}
    value = lowered.get("retry-after")
    if value:
        try:
            return max(0.0, float(value))
        except ValueError:
            try:
                return max(0.0, parsedate_to_datetime(value).timestamp() - now)
            except (TypeError, ValueError, IndexError):
                pass
    reset = lowered.get("x-ratelimit-reset")
    if reset is None and metadata:
        inner = metadata.get("headers")
        if isinstance(inner, Mapping):
            reset = next((str(v) for k, v in inner.items() if k.lower() == "x-ratelimit-reset"), None)
    if reset:
        try:
            stamp = float(reset)
        except ValueError:
            return None
        if stamp > 1e11:  # milliseconds since the epoch
            stamp /= 1000
        return max(0.0, stamp - now)
    return None


def classify(status: int | None, message: str, metadata: Mapping[str, Any] | None = None, *,
             headers: Mapping[str, str] | None = None, partial: Completion | None = None) -> OpenRouterError:
    """The typed error for an HTTP status or an in-stream error code."""
    meta = dict(metadata or {})
    common: dict[str, Any] = {"status": status, "metadata": meta, "partial": partial}
    lowered = message.lower()
    if status == 400:
        if "context length" in lowered or "context window" in lowered or "too many tokens" in lowered:
            return ContextTooLong(message, **common)
        if "not a valid model" in lowered or "model not found" in lowered or "no endpoints found" in lowered:
            return ModelNotFound(message, **common)
        return BadRequest(message, **common)
    if status == 401:
        return AuthenticationFailed(message, **common)
    if status == 402:
        return InsufficientCredits(message, **common)
    if status == 403:
        return ModerationRefused(message, **common)
    if status == 404:
        return ModelNotFound(message, **common)
    if status == 408:
        return RequestTimeout(message, **common)
    if status == 413:
        return ContextTooLong(message, **common)
    if status == 429:
        return RateLimited(message, retry_after=retry_after_seconds(headers or {}, meta), **common)
    if status is not None and status >= 500:
        return ProviderUnavailable(message, **common)
    if status is not None and 400 <= status < 500:
        return BadRequest(message, **common)
    return OpenRouterError(message, **common)
