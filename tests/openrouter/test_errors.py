"""Every recorded error body maps to the right typed error with a message fit for Discord."""

from __future__ import annotations

import json

import pytest

from bot.logs import configure_logging
from bot.openrouter import errors as e
from tests.conftest import fixture_bytes

CASES = [
    ("error-400-context-length.json", 400, e.ContextTooLong, "context window"),
    ("error-401.json", 401, e.AuthenticationFailed, "key was rejected"),
    ("error-402-insufficient-credits.json", 402, e.InsufficientCredits, "out of credits"),
    ("error-402-with-metadata.json", 402, e.InsufficientCredits, "out of credits"),
    ("error-403-guardrail-docs-example.json", 403, e.ModerationRefused, "ignore all previous instructions"),
    ("error-429-free-models-per-min.json", 429, e.RateLimited, "rate-limiting"),
    ("error-429-upstream-provider.json", 429, e.RateLimited, "Google"),
]


@pytest.mark.parametrize(("name", "status", "kind", "shown"), CASES)
def test_recorded_error_bodies(name: str, status: int, kind: type[e.OpenRouterError], shown: str) -> None:
    message, code, metadata = e.parse_error_body(fixture_bytes(name))
    assert code == status
    error = e.classify(status, message, metadata, headers={})
    assert type(error) is kind
    assert shown in error.user_message
    assert len(error.user_message) < 400
    assert error.retryable == (status == 429)


def test_free_model_rate_limit_reset_from_metadata_headers() -> None:
    message, _, metadata = e.parse_error_body(fixture_bytes("error-429-free-models-per-min.json"))
    error = e.classify(429, message, metadata, headers={})
    assert isinstance(error, e.RateLimited)
    # X-RateLimit-Reset 1765680000000 ms is in the past by now: wait 0
    assert error.retry_after == 0.0
    assert e.retry_after_seconds({}, metadata, now=1765679990.0) == pytest.approx(10.0)


def test_retry_after_header_forms() -> None:
    assert e.retry_after_seconds({"Retry-After": "3"}) == 3.0
    assert e.retry_after_seconds({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}, now=1445412470.0) == 10.0
    assert e.retry_after_seconds({"X-RateLimit-Reset": "1700000005000"}, now=1700000000.0) == 5.0
    assert e.retry_after_seconds({"Retry-After": "soon"}) is None
    assert e.retry_after_seconds({}) is None


def test_moderation_reasons_and_flagged_input() -> None:
    error = e.classify(403, "Input flagged", {"reasons": ["violence", "harassment"], "flagged_input": "..."})
    assert isinstance(error, e.ModerationRefused)
    assert error.reasons == ["violence", "harassment"]
    assert "violence, harassment" in error.user_message
    assert error.flagged_input == "..."


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"   \n\n  {\"error\": {\"message\": \"padded\", \"code\": 502}}", "padded"),
        (b"<html>502 Bad Gateway</html>", "<html>502 Bad Gateway</html>"),
        (b"", "empty response"),
        (b'{"message": "flat"}', "flat"),
        (b'{"error": "just a string"}', "just a string"),
    ],
)
def test_padded_and_non_json_bodies(body: bytes, message: str) -> None:
    assert e.parse_error_body(body)[0] == message


@pytest.mark.parametrize(
    ("status", "message", "kind"),
    [
        (400, "foo/bar is not a valid model ID", e.ModelNotFound),
        (400, "Invalid temperature", e.BadRequest),
        (404, "No endpoints found that support image input", e.ModelNotFound),
        (408, "timeout", e.RequestTimeout),
        (500, "Internal", e.ProviderUnavailable),
        (502, "Bad gateway", e.ProviderUnavailable),
        (503, "No available provider", e.ProviderUnavailable),
        (418, "teapot", e.BadRequest),
        (None, "odd", e.OpenRouterError),
    ],
)
def test_status_classification(status: int | None, message: str, kind: type[e.OpenRouterError]) -> None:
    error = e.classify(status, message, {"provider_name": "Acme"})
    assert type(error) is kind
    assert error.user_message


def test_provider_down_names_provider_and_status() -> None:
    error = e.classify(503, "down", {"provider_name": "Acme"})
    assert error.user_message.startswith("The model's provider (Acme) is unavailable right now (HTTP 503)")


def test_an_error_that_repeats_a_secret_is_scrubbed_before_anything_is_built_from_it() -> None:
    key = "sk-or-v1-0123456789abcdef0123456789abcdef"
    operator_secret = "plain-secret-without-a-known-shape"
    configure_logging(level="WARNING", fmt="console", secrets=[operator_secret])
    try:
        error = e.classify(400, f"Invalid key {key} (also {operator_secret})",
                           {"raw": f"Authorization: Bearer {key}", "provider_name": "P", "list": [key]})
    finally:
        configure_logging(level="WARNING", fmt="console")
    shown = [error.detail, str(error), repr(error), error.user_message, json.dumps(error.metadata)]
    for text in shown:
        assert key not in text and operator_secret not in text
    assert "Invalid key [REDACTED]" in error.user_message and error.metadata["provider_name"] == "P"
