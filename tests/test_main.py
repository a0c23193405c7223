"""`python -m bot check`: verifies the configuration without joining Discord."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from bot.store.database import load_migrations
from tests.conftest import fixture_bytes
from tests.fakes.openrouter_server import FakeOpenRouter, JSONReply
from tests.postgres import Postgres

ROOT = Path(__file__).resolve().parents[1]


async def run_check(fake: FakeOpenRouter, tmp_path: Path, **database: str) -> tuple[int, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DISCORD_", "OPENROUTER_", "DATABASE_"))} | {
        "DISCORD_TOKEN": "t", "OPENROUTER_API_KEY": "sk-or-v1-check-key", "OPENROUTER_BASE_URL": fake.base_url,
        "DATABASE_PATH": str(tmp_path / "db" / "bot.sqlite3"), "LOG_LEVEL": "WARNING", "PYTHONPATH": str(ROOT),
    } | database
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "bot", "check", cwd=tmp_path, env=env,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode()


async def test_check_reports_database_and_key(tmp_path: Path) -> None:
    async with FakeOpenRouter() as fake:
        status, out = await run_check(fake, tmp_path)
        assert status == 0, out
        assert "database: ok" in out and f"schema version {len(load_migrations())}" in out
        assert "openrouter key: ok (sk-or-v1-au7...890; limit $100.00, $25.50 used, $74.50 remaining)" in out
        assert fake.requests[-1].headers["authorization"] == "Bearer sk-or-v1-check-key"
        assert "sk-or-v1-check-key" not in out

        fake.script("key", JSONReply(401, fixture_bytes("error-401.json")))
        status, out = await run_check(fake, tmp_path)
        assert status == 1 and "openrouter key: FAILED: The bot's OpenRouter API key was rejected" in out


async def test_check_works_on_postgresql_and_hides_the_password(postgres: Postgres, tmp_path: Path) -> None:
    url = await postgres.fresh_url()
    with_password = url.replace("postgres@", "postgres:pa55word-unique@")  # trust auth: any password is accepted
    async with FakeOpenRouter() as fake:
        status, out = await run_check(fake, tmp_path, DATABASE_URL=with_password)
        assert status == 0, out
        assert f"database: ok ({url.replace('postgres@', 'postgres:***@')}, schema version" in out
        assert "pa55word-unique" not in out
        status, out = await run_check(fake, tmp_path, DATABASE_URL=postgres.url_for("no_such_database"))
        assert status == 1 and "database: FAILED: cannot connect to" in out and "no_such_database" in out
