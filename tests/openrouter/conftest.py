from __future__ import annotations

from collections.abc import AsyncIterator
from functools import cache
from typing import Any, Literal

import pytest
import yaml
from jsonschema import Draft202012Validator

from bot.openrouter.client import ChatStream, OpenRouterClient, Timeouts
from bot.openrouter.retry import RetryPolicy
from bot.openrouter.types import Completion
from tests.conftest import FIXTURES
from tests.fakes.openrouter_server import FakeOpenRouter

API_KEY = "sk-or-v1-test0123456789abcdef"


@cache
def chat_request_validator() -> Draft202012Validator:
    """OpenRouter's own ChatRequest schema from its published OpenAPI document."""
    with (FIXTURES / "spec" / "openrouter-openapi.yaml").open() as fh:
        spec = yaml.load(fh, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    schema = {"$ref": "#/components/schemas/ChatRequest", "components": spec["components"]}
    return Draft202012Validator(schema)


def assert_valid_chat_request(body: dict[str, Any]) -> None:
    errors = sorted(chat_request_validator().iter_errors(body), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors[:5])


@pytest.fixture
async def fake() -> AsyncIterator[FakeOpenRouter]:
    server = FakeOpenRouter()
    await server.start()
    yield server
    await server.close()


def make_client(fake: FakeOpenRouter, transport: Literal["aiohttp", "httpx"] = "aiohttp",
                **timeouts: float) -> OpenRouterClient:
    return OpenRouterClient(
        api_key=API_KEY, base_url=fake.base_url, app_url="https://example.test/bot", app_title="Test Bot",
        transport=transport,
        timeouts=Timeouts(**({"connect": 2.0, "first_byte": 5.0, "idle": 5.0} | timeouts)),
        retry=RetryPolicy(max_retries=3, base_delay=0.01, max_delay=0.05, budget=5.0),
    )


@pytest.fixture(params=["aiohttp", "httpx"])
async def client(fake: FakeOpenRouter, request: pytest.FixtureRequest) -> AsyncIterator[OpenRouterClient]:
    """The client on each transport it offers (aiohttp's by default, httpx's own): both must behave alike."""
    async with make_client(fake, request.param) as c:
        yield c


async def collect(stream: ChatStream) -> Completion:
    """Read a stream to its end; its final completion."""
    async with stream:
        async for _ in stream:
            pass
    return stream.completion
