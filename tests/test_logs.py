"""Secrets never reach a log line: not in messages, fields, stdlib records or exceptions."""

from __future__ import annotations

import io
import json
import logging

import httpx
import pytest
import structlog

from bot.logs import REDACTED, SecretRedactor, configure_logging, get_logger

KEY = "sk-or-v1-0123456789abcdef0123456789abcdef"
TOKEN = "MTIzNDU2Nzg5.discord.token-value-xyz"


@pytest.fixture
def captured() -> io.StringIO:
    stream = io.StringIO()
    configure_logging(level="DEBUG", fmt="json", secrets=[KEY, TOKEN], stream=stream)
    yield stream
    structlog.contextvars.clear_contextvars()
    configure_logging(level="WARNING", fmt="console")


def lines(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_json_lines_carry_bound_request_context(captured: io.StringIO) -> None:
    structlog.contextvars.bind_contextvars(guild=1, channel=2, user=3, conversation=4)
    get_logger("t").info("hello", generation_id="gen-1", model="m/x")
    [line] = lines(captured)
    assert line["event"] == "hello" and line["level"] == "info"
    assert (line["guild"], line["channel"], line["user"], line["conversation"]) == (1, 2, 3, 4)
    assert line["generation_id"] == "gen-1" and line["model"] == "m/x" and "timestamp" in line


def test_secrets_are_redacted_everywhere(captured: io.StringIO) -> None:
    log = get_logger("t")
    log.info(f"key is {KEY}", headers={"Authorization": f"Bearer {KEY}"}, token=TOKEN, nested=[{"t": TOKEN}])
    logging.getLogger("discord.http").warning("sending token %s", TOKEN)
    logging.getLogger("httpx").error("Authorization: Bearer %s", "some-other-secret-value")
    try:
        request = httpx.Request("GET", "https://x", headers={"Authorization": f"Bearer {KEY}"})
        raise RuntimeError(f"failed with headers {dict(request.headers)}")
    except RuntimeError:
        log.exception("request failed")
    try:
        raise ValueError(f"token {TOKEN}")
    except ValueError:
        logging.getLogger("discord.client").exception("stdlib exception")
    text = captured.getvalue()
    assert KEY not in text and TOKEN not in text and "some-other-secret-value" not in text
    assert text.count(REDACTED) >= 7
    assert len(lines(captured)) == 5
    assert any("Traceback" in line.get("exception", "") for line in lines(captured))


def test_console_format_is_readable() -> None:
    stream = io.StringIO()
    configure_logging(level="INFO", fmt="console", secrets=[KEY], stream=stream)
    get_logger("t").info("started", guild=5, key=KEY)
    text = stream.getvalue()
    assert "started" in text and "guild=5" in text and KEY not in text
    assert not text.lstrip().startswith("{")
    configure_logging(level="WARNING", fmt="console")


def test_redactor_patterns_without_known_secrets() -> None:
    scrub = SecretRedactor().scrub
    assert scrub("authorization: Bot abc.def.ghi") == f"authorization: {REDACTED}"
    assert scrub("use sk-or-v1-deadbeefdeadbeef now") == f"use {REDACTED} now"
    assert scrub("Bearer abcdefghijkl") == REDACTED
    assert scrub("nothing here") == "nothing here"


def test_interaction_tokens_are_redacted() -> None:
    interaction = "aW50ZXJhY3Rpb246MTIzNDU2Nzg5OmFiY2RlZmdoaWprbG1ub3BxcnN0dXZ3eHl6"
    scrub = SecretRedactor().scrub
    url = f"POST https://discord.com/api/v10/webhooks/1234/{interaction}/messages/@original with None"
    assert scrub(url) == f"POST https://discord.com/api/v10/webhooks/1234/{REDACTED}/messages/@original with None"
    assert interaction not in scrub(f"/interactions/99/{interaction}/callback?x=1")
    event = {"t": "INTERACTION_CREATE", "d": {"id": "99", "token": interaction, "type": 2}}
    assert interaction not in scrub(str(event)) and interaction not in scrub(json.dumps(event))
    assert "'type': 2" in scrub(str(event))


def test_token_fields_are_redacted_but_token_counts_are_not(captured: io.StringIO) -> None:
    get_logger("t").info("answered", interaction_token="abc-secret-value", prompt_tokens=12, token="xyz-value")
    [line] = lines(captured)
    assert line["interaction_token"] == line["token"] == REDACTED and line["prompt_tokens"] == 12
