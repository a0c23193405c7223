"""compose.yaml, the deployment at scale the README describes: read as Docker Compose would, its bot
processes get settings that load and shards that fit together."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.settings import Settings, load_settings

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = re.compile(r"\$\{(\w+):-([^}]*)\}")


def with_defaults(value: object) -> str:
    """`${VAR:-default}` as Compose substitutes it when VAR is not set."""
    return DEFAULT.sub(lambda m: m.group(2), str(value))


def bot_settings(env: pytest.MonkeyPatch) -> dict[str, Settings]:
    compose: dict[str, Any] = yaml.safe_load((ROOT / "compose.yaml").read_text())
    found = {}
    for name, service in compose["services"].items():
        if service.get("build") != ".":
            continue
        with env.context() as scoped:
            for key, value in service["environment"].items():
                scoped.setenv(key, with_defaults(value))
            found[name] = load_settings(_env_file=None, discord_token="x", openrouter_api_key="sk-or-v1-x")
    return found


def test_the_compose_file_runs_every_shard_once_on_one_postgres_database(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ("SHARD_COUNT", "SHARD_IDS", "DATABASE_URL", "DATABASE_PATH", "METRICS_PORT"):
        monkeypatch.delenv(key, raising=False)
    bots = bot_settings(monkeypatch)
    assert len(bots) == 2
    counts = {s.shard_count for s in bots.values()}
    assert len(counts) == 1 and None not in counts
    [count] = counts
    slices = [set(s.shard_ids or ()) for s in bots.values()]
    assert sorted(i for part in slices for i in part) == list(range(count or 0))  # each shard exactly once
    urls = {s.database_location for s in bots.values()}
    assert len(urls) == 1 and urls.pop().startswith("postgresql://")  # one shared database
    assert sum(s.process_writes_per_second for s in bots.values()) <= 45  # together under the write budget
    assert all(s.metrics_port is not None for s in bots.values())
