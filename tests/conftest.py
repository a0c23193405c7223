from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.store.connect import database_for
from bot.store.database import Database
from tests.postgres import Postgres, start_postgres

FIXTURES = Path(__file__).parent / "fixtures"
BACKENDS = ("sqlite", "postgres")


def fixture_bytes(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def fixture_json(name: str) -> Any:
    return json.loads(fixture_bytes(name))


def pytest_configure(config: pytest.Config) -> None:
    for backend in BACKENDS:
        config.addinivalue_line("markers", f"{backend}_only: runs on the {backend} backend alone (its own tools)")


def _wrong_backend(item: pytest.Item) -> bool:
    callspec = getattr(item, "callspec", None)
    backend = callspec.params.get("database_url") if callspec is not None else None
    return backend is not None and any(item.get_closest_marker(f"{other}_only") for other in BACKENDS
                                       if other != backend)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """A test marked `sqlite_only` (`postgres_only`) keeps only that variant of the `database_url` fixture."""
    dropped = [item for item in items if _wrong_backend(item)]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = [item for item in items if item not in dropped]


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "bot.sqlite3"


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    """One PostgreSQL server for the session (see tests/postgres.py), started on first use. Without the
    binaries its tests skip, except under CI=true, where they fail."""
    try:
        server = start_postgres()
    except LookupError as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL is needed in CI: {exc}")
        pytest.skip(str(exc))
    yield server
    server.stop()


@pytest.fixture(params=BACKENDS)
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A new, empty database of each backend: an SQLite file, or a fresh database on the session's server."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'bot.sqlite3'}"
    server: Postgres = request.getfixturevalue("postgres")
    return await server.fresh_url()


@pytest.fixture
async def migrated_db(database_url: str) -> AsyncIterator[Database]:
    """A migrated database of each backend, open for the test."""
    async with database_for(database_url) as db:
        await db.migrate()
        yield db


# the chat core wired as in production, for tests of the core's services (see tests/core_harness.py)
from tests.core_harness import parts  # noqa: E402, F401
