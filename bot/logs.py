"""Structured logging: JSON lines in production, readable in a terminal, secrets never written.

Every log line passes through `SecretRedactor`, which replaces the configured secret values (the
OpenRouter key, the Discord token), anything shaped like a bearer token or an OpenRouter key, and
Discord interaction tokens (the path segment after `/webhooks/{id}/` or `/interactions/{id}/` that
discord.py logs at DEBUG, and a `token` value in the gateway payloads it logs) with `[REDACTED]`, in
the message, in every field and in rendered exceptions. Records from the standard
library (discord.py, httpx, aiosqlite) are routed through the same processors.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable, Mapping
from typing import Any

import structlog
from structlog.types import EventDict, Processor

REDACTED = "[REDACTED]"
_PATTERNS = (  # a pattern's group 1, when it has one, is kept
    re.compile(r"(?i)(authorization\s*[:=]\s*['\"]?)(bearer|bot)?\s*[^\s'\",}]+(\s*[^\s'\",}]+)?"),
    re.compile(r"(?i)bearer\s+[A-Za-z0-9._~+/=-]{8,}"),
    re.compile(r"sk-or-[A-Za-z0-9_-]{8,}"),
    re.compile(r"(/(?:webhooks|interactions)/\d+/)[^/\s?#'\"]+"),
    re.compile(r"""(?i)(['"](?:interaction_)?token['"]\s*:\s*['"])[^'"]+"""),
)
_SECRET_KEYS = re.compile(r"(?i)^(.*_)?token$")  # a field named token or *_token (not *_tokens)


_ACTIVE: SecretRedactor | None = None  # the configured one, with the process's secrets


def scrub_secrets(text: str) -> str:
    """`text` without the process's secrets or anything shaped like one: for text that is shown or
    stored (an upstream error that repeats the key), not only for log lines."""
    return (_ACTIVE or _DEFAULT).scrub(text)


class SecretRedactor:
    """A structlog processor that scrubs secrets from every value of an event."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets = sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True)

    def scrub(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        for pattern in _PATTERNS:
            text = pattern.sub(_replacement, text)
        return text

    def _clean(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.scrub(value)
        if isinstance(value, Mapping):
            return {key: self._clean(item) for key, item in value.items()}
        if isinstance(value, list | tuple | set):
            return [self._clean(item) for item in value]
        if isinstance(value, int | float | bool) or value is None:
            return value
        return self.scrub(repr(value) if isinstance(value, BaseException) else str(value))

    def __call__(self, logger: Any, method: str, event: EventDict) -> EventDict:
        # Keys starting with "_" are structlog's own bookkeeping (the stdlib record), not log content.
        return {key: value if key.startswith("_") else
                REDACTED if isinstance(value, str) and _SECRET_KEYS.match(key) else self._clean(value)
                for key, value in event.items()}


_DEFAULT = SecretRedactor()


def _replacement(match: re.Match[str]) -> str:
    return (match.group(1) or "") + REDACTED if match.re.groups else REDACTED


def configure_logging(*, level: str = "INFO", fmt: str = "json", secrets: Iterable[str] = (),
                      stream: Any = None) -> None:
    """Configure structlog and the standard library once per process."""
    global _ACTIVE
    redactor = _ACTIVE = SecretRedactor(secrets)
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
        structlog.processors.format_exc_info,
        redactor,
    ]
    renderer: Processor
    if fmt == "console":
        renderer = structlog.dev.ConsoleRenderer(colors=False, exception_formatter=structlog.dev.plain_traceback)
    else:
        renderer = structlog.processors.JSONRenderer()

    structlog.configure(
        processors=[structlog.stdlib.filter_by_level, *shared,
                    structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[structlog.stdlib.ExtraAdder(), *shared],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
    )
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # httpx logs every request line at INFO; keep it for DEBUG only.
    logging.getLogger("httpx").setLevel(max(logging.WARNING, logging.getLevelName(level)))
    logging.getLogger("httpcore").setLevel(max(logging.WARNING, logging.getLevelName(level)))


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    return structlog.stdlib.get_logger(name)
