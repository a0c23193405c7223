"""`python -m bot` runs the bot; `python -m bot check` verifies the configuration and stops."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable
from urllib.parse import urlsplit

from bot.logs import configure_logging, get_logger
from bot.money import usd
from bot.openrouter.errors import OpenRouterError
from bot.settings import Settings, SettingsError, load_settings
from bot.store.database import DatabaseUnavailable, MigrationError

log = get_logger("bot")


async def check(settings: Settings) -> int:
    """Database reachable and migrated; OpenRouter key valid. Prints a short report."""
    from bot.services import Services

    try:
        services = await Services.start(settings)
    except (MigrationError, DatabaseUnavailable, OSError) as exc:
        print(f"database: FAILED: {exc}")
        return 1
    try:
        version = await services.db.schema_version()
        print(f"database: ok ({services.db.describe()}, schema version {version})")
        try:
            key = await services.openrouter.get_key()
        except OpenRouterError as exc:
            print(f"openrouter key: FAILED: {exc.user_message}")
            return 1
        limit = "no limit" if key.limit is None else f"limit {usd(key.limit)}"
        remaining = "" if key.limit_remaining is None else f", {usd(key.limit_remaining)} remaining"
        print(f"openrouter key: ok ({key.label or 'unlabelled'}; {limit}, {usd(key.usage)} used{remaining})")
        return 0
    finally:
        await services.close()


def event_loop_factory(use_uvloop: bool) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's event loop where it is installed (about a quarter less CPU for this bot), else asyncio's."""
    if not use_uvloop:
        return None
    try:
        import uvloop
    except ImportError:
        log.info("uvloop is not installed; using asyncio's event loop")
        return None
    return uvloop.new_event_loop


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bot", description=__doc__)
    parser.add_argument("command", nargs="?", choices=["run", "check"], default="run")
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    configure_logging(
        level=settings.log_level,
        fmt=settings.log_format,
        secrets=[settings.discord_token.get_secret_value(), settings.openrouter_api_key.get_secret_value(),
                 *filter(None, [urlsplit(settings.database_location).password])],
    )
    if args.command == "check":
        return asyncio.run(check(settings))
    from bot.runner import MetricsUnavailable, run

    try:
        with asyncio.Runner(loop_factory=event_loop_factory(settings.use_uvloop)) as runner:
            return runner.run(run(settings))
    except KeyboardInterrupt:
        return 0
    except (MigrationError, DatabaseUnavailable, MetricsUnavailable) as exc:
        log.error("cannot start", error=str(exc))
        return 1


if __name__ == "__main__":
    sys.exit(main())
