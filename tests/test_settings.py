from __future__ import annotations

import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from bot.settings import SettingsError, load_settings

ROOT = Path(__file__).resolve().parents[1]
REQUIRED = {"DISCORD_TOKEN": "discord-token-value", "OPENROUTER_API_KEY": "sk-or-v1-abcdefabcdef1234"}


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.startswith(("DISCORD_", "OPENROUTER_", "DATABASE_", "DEFAULT_", "LOG_", "APP_")):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)  # no stray .env


def test_defaults_and_comma_lists(monkeypatch: pytest.MonkeyPatch) -> None:
    for k, v in REQUIRED.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("FALLBACK_MODELS", "anthropic/claude-haiku-4.5, openai/gpt-4o-mini")
    monkeypatch.setenv("OWNER_IDS", "1,2")
    monkeypatch.setenv("DEFAULT_GUILD_MONTHLY_QUOTA_USD", "12.50")
    s = load_settings()
    assert s.base_url == "https://openrouter.ai/api/v1"
    assert s.fallback_models == ["anthropic/claude-haiku-4.5", "openai/gpt-4o-mini"]
    assert s.owner_ids == [1, 2]
    assert s.default_guild_monthly_quota_usd == Decimal("12.50")
    assert s.default_model in s.allowed_models_default
    assert "sk-or" not in repr(s)  # secrets are masked in reprs


def test_dotenv_file_is_read(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("DISCORD_TOKEN=t\nOPENROUTER_API_KEY=k\nDEFAULT_MODEL=anthropic/claude-haiku-4.5\n")
    assert load_settings().default_model == "anthropic/claude-haiku-4.5"


def test_missing_and_invalid_settings_name_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENROUTER_API_KEY", "k")
    monkeypatch.setenv("LOG_FORMAT", "xml")
    with pytest.raises(SettingsError) as caught:
        load_settings()
    text = str(caught.value)
    assert "DISCORD_TOKEN is not set" in text
    assert "LOG_FORMAT is invalid" in text
    assert "\n" not in text


@pytest.mark.parametrize(("env", "named"), [({}, "DISCORD_TOKEN"), ({"DEFAULT_MODEL": "gpt4"}, "DEFAULT_MODEL"),
                                            ({"OPENROUTER_BASE_URL": "not a url"}, "OPENROUTER_BASE_URL")])
def test_python_m_bot_exits_2_with_one_line(tmp_path: Path, env: dict[str, str], named: str) -> None:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("DISCORD_", "OPENROUTER_", "DEFAULT_"))}
    if named != "DISCORD_TOKEN":
        base |= REQUIRED
    proc = subprocess.run([sys.executable, "-m", "bot", "check"], env=base | env | {"PYTHONPATH": str(ROOT)},
                          cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and named in lines[0] and "Traceback" not in proc.stderr


def test_env_example_lists_every_setting_and_parses(tmp_path: Path) -> None:
    from bot.settings import Settings

    example = (ROOT / ".env.example").read_text()
    names = {line.split("=", 1)[0] for line in example.splitlines() if line and not line.startswith("#")}
    assert names == {name.upper() for name in Settings.model_fields}
    filled = example.replace("DISCORD_TOKEN=\n", "DISCORD_TOKEN=x\n").replace(
        "OPENROUTER_API_KEY=\n", "OPENROUTER_API_KEY=y\n")
    (tmp_path / ".env").write_text(filled)
    settings = load_settings()
    defaults = Settings(discord_token="x", openrouter_api_key="y", _env_file=None)  # type: ignore[call-arg]
    assert settings.model_dump() == defaults.model_dump()  # the example shows the real defaults


def test_empty_secret_is_refused(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("DISCORD_TOKEN=\nOPENROUTER_API_KEY=k\n")
    with pytest.raises(SettingsError, match="DISCORD_TOKEN is invalid"):
        load_settings()


def test_the_database_is_sqlite_at_database_path_unless_database_url_says_otherwise(
        monkeypatch: pytest.MonkeyPatch) -> None:
    for k, v in REQUIRED.items():
        monkeypatch.setenv(k, v)
    assert load_settings().database_location == "sqlite:///data/bot.sqlite3"
    monkeypatch.setenv("DATABASE_PATH", "/data/bot.sqlite3")
    monkeypatch.setenv("DATABASE_URL", "")
    assert load_settings().database_location == "sqlite:////data/bot.sqlite3"
    monkeypatch.setenv("DATABASE_URL", "postgresql://bot:hunter2@db:5432/bot")
    settings = load_settings()
    assert settings.database_location == "postgresql://bot:hunter2@db:5432/bot"
    assert "hunter2" not in repr(settings)
    monkeypatch.setenv("DATABASE_URL", "mysql://bot@db/bot")
    with pytest.raises(SettingsError, match=r"DATABASE_URL is invalid: .*sqlite:///path/to/file or postgresql://"):
        load_settings()
