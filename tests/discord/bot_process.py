"""Runs the real bot (`python -m bot`) in its own process, pointed at the local fake Discord.

Used by tests that kill or signal the process. The OpenRouter URL and everything else come from
the environment, exactly as in production; only Discord's addresses are redirected here.
"""

from __future__ import annotations

import os
import sys

import discord
import yarl


def main() -> int:
    discord.http.Route.BASE = os.environ["FAKE_DISCORD_API"]
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(os.environ["FAKE_DISCORD_GATEWAY"])
    from bot.__main__ import main as bot_main

    return bot_main(["run"])


if __name__ == "__main__":
    sys.exit(main())
