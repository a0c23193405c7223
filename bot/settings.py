"""Configuration, read once from environment variables and an optional `.env` file."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AnyHttpUrl, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

DEFAULT_ALLOWED_MODELS = (
    "openai/gpt-4o-mini",
    "openai/gpt-4.1-mini",
    "google/gemini-2.5-flash",
    "anthropic/claude-haiku-4.5",
    "meta-llama/*:free",
    "deepseek/*",
)


class Settings(BaseSettings):
    """Every setting the bot reads. Names are the environment variables, case-insensitive."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    discord_token: SecretStr
    openrouter_api_key: SecretStr
    openrouter_base_url: AnyHttpUrl = AnyHttpUrl("https://openrouter.ai/api/v1")
    database_path: Path = Path("data/bot.sqlite3")
    database_url: SecretStr | None = None  # sqlite:///path or postgresql://…; unset: SQLite at DATABASE_PATH
    default_model: str = "openai/gpt-4o-mini"
    app_url: str = "https://github.com/openrouter-discord-bot"
    app_title: str = "OpenRouter Discord Bot"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["json", "console"] = "json"
    use_uvloop: bool = True  # uvloop's event loop where it is installed (less CPU); false: asyncio's
    metrics_port: int | None = Field(default=None, ge=1, le=65535)  # Prometheus' /metrics; unset: not served
    metrics_host: str = "127.0.0.1"

    # OpenRouter client behaviour
    request_max_retries: int = Field(default=3, ge=0, le=10)
    request_retry_budget_seconds: float = Field(default=30.0, gt=0)
    connect_timeout_seconds: float = Field(default=10.0, gt=0)
    first_byte_timeout_seconds: float = Field(default=60.0, gt=0)
    idle_timeout_seconds: float = Field(default=60.0, gt=0)
    stream_max_seconds: float = Field(default=900.0, gt=0)
    stream_idle_content_seconds: float = Field(default=300.0, gt=0)
    stream_read_gather_seconds: float = Field(default=0.25, ge=0, le=1)  # see .env.example
    openrouter_http: Literal["aiohttp", "httpx"] = "aiohttp"  # under httpx (aiohttp: streams read from it directly)
    models_cache_ttl_seconds: float = Field(default=3600.0, gt=0)

    # Chat behaviour
    allow_dms: bool = True
    system_prompt: str = "You are a helpful assistant in a Discord server. Answer concisely; use Markdown."
    max_answer_tokens: int = Field(default=2048, ge=16)
    stream_edit_interval_seconds: float = Field(default=1.0, ge=0.2)
    first_words_wait_seconds: float = Field(default=0.0, ge=0, le=5)
    discord_writes_per_second: int = Field(default=45, ge=1, le=50)  # of Discord's global 50, for all processes
    # Sharding: None = what Discord recommends (GET /gateway/bot) and every shard in this process.
    shard_count: int | None = Field(default=None, ge=1)
    shard_ids: Annotated[list[int] | None, NoDecode] = None  # this process's shards (needs SHARD_COUNT)
    final_edit_retry_seconds: float = Field(default=60.0, ge=0)  # how long an answer's final edit is retried
    interaction_token_seconds: float = Field(default=15 * 60, gt=0)  # Discord's interaction token lifetime
    show_reasoning: bool = True
    fallback_models: Annotated[list[str], NoDecode] = Field(default_factory=list)

    # Moderation and money
    default_allowed_models: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: list(DEFAULT_ALLOWED_MODELS)
    )
    default_guild_monthly_quota_usd: Decimal = Field(default=Decimal("10"), ge=0)
    default_member_monthly_quota_usd: Decimal = Field(default=Decimal("2"), ge=0)
    owner_ids: Annotated[list[int], NoDecode] = Field(default_factory=list)

    @field_validator("fallback_models", "default_allowed_models", "owner_ids", mode="before")
    @classmethod
    def _comma_list(cls, value: object) -> object:
        """Lists are written as comma-separated values: `FALLBACK_MODELS=a/b,c/d`."""
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("metrics_port", "shard_count", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        """`METRICS_PORT=` and `SHARD_COUNT=` (as in .env.example) mean unset."""
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("shard_ids", mode="before")
    @classmethod
    def _shard_list(cls, value: object) -> object:
        """`SHARD_IDS=0,1` or a range `SHARD_IDS=0-3`; empty means every shard."""
        if not isinstance(value, str):
            return value
        ids: list[int] = []
        for part in (p.strip() for p in value.split(",") if p.strip()):
            first, _, last = part.partition("-")
            ids.extend(range(int(first), int(last or first) + 1))
        return ids or None

    @model_validator(mode="after")
    def _shards_fit(self) -> Settings:
        if self.shard_ids is None:
            return self
        if self.shard_count is None:
            raise ValueError("SHARD_IDS needs SHARD_COUNT (the total number of shards across every process)")
        ids = self.shard_ids
        if len(set(ids)) != len(ids) or not all(0 <= i < self.shard_count for i in ids):
            raise ValueError(f"SHARD_IDS must be distinct shard ids from 0 to SHARD_COUNT - 1 ({self.shard_count - 1})")
        return self

    @field_validator("discord_token", "openrouter_api_key")
    @classmethod
    def _not_empty(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value().strip():
            raise ValueError("is empty")
        return value

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: SecretStr | None) -> SecretStr | None:
        text = value.get_secret_value().strip() if value is not None else ""
        if not text:
            return None
        if text == "sqlite:///" or not text.startswith(("sqlite:///", "postgresql://", "postgres://")):
            raise ValueError("must be sqlite:///path/to/file or postgresql://user:password@host/dbname")
        return SecretStr(text)

    @field_validator("default_model")
    @classmethod
    def _model_slug(cls, value: str) -> str:
        value = value.strip()
        if "/" not in value:
            raise ValueError("must be an OpenRouter model id such as 'openai/gpt-4o-mini'")
        return value

    @property
    def base_url(self) -> str:
        return str(self.openrouter_base_url).rstrip("/")

    @property
    def database_location(self) -> str:
        """The database's URL: DATABASE_URL, else the SQLite file at DATABASE_PATH."""
        if self.database_url is not None:
            return self.database_url.get_secret_value()
        return f"sqlite:///{self.database_path}"

    @property
    def process_writes_per_second(self) -> int:
        """This process's share of DISCORD_WRITES_PER_SECOND: in proportion to the shards it runs, so the
        processes of one bot (disjoint SHARD_IDS covering every shard) stay under Discord's limit together."""
        if self.shard_ids is None or self.shard_count is None:
            return self.discord_writes_per_second
        return max(1, self.discord_writes_per_second * len(self.shard_ids) // self.shard_count)

    @property
    def allowed_models_default(self) -> list[str]:
        """The operator's default allowlist, which always includes DEFAULT_MODEL."""
        models = list(self.default_allowed_models)
        if self.default_model not in models:
            models.insert(0, self.default_model)
        return models


class SettingsError(Exception):
    """A setting is missing or invalid; the message names the variable."""


def load_settings(**overrides: object) -> Settings:
    """Read the settings once; turn pydantic's report into one line naming the variable."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise SettingsError(describe_validation_error(exc)) from None


def describe_validation_error(exc: ValidationError) -> str:
    problems = []
    for error in exc.errors():
        name = "_".join(str(part) for part in error["loc"] if isinstance(part, str)).upper() or "SETTINGS"
        if error["type"] == "missing":
            problems.append(f"{name} is not set")
        else:
            problems.append(f"{name} is invalid: {error['msg']}")
    return "configuration error: " + "; ".join(problems)
