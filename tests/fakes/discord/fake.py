"""The facade: :class:`FakeDiscord`, the world (:mod:`.state`) plus the servers that act on it.

It starts one aiohttp server on 127.0.0.1 with the gateway (:mod:`.gateway`), the REST routes
(:mod:`.rest`), the interaction routes (:mod:`.interactions`) and the attachment CDN, all subject to
the rate limits of :mod:`.ratelimits`; it redirects discord.py to it (:meth:`FakeDiscord.install`);
and it offers the test-side drivers (users post and delete messages, use commands and buttons).
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable

import discord
import discord.asset
import discord.gateway
import discord.http
import yarl
from aiohttp import web

from tests.fakes.discord.gateway import Gateway
from tests.fakes.discord.interactions import Interactions, Upload
from tests.fakes.discord.ratelimits import RateLimits
from tests.fakes.discord.rest import API, Rest
from tests.fakes.discord.state import Msg, World, now_iso
from tests.fakes.discord.validation import JSON


class FakeDiscord(World):
    """A fake Discord (REST + gateway + CDN) on 127.0.0.1 for one guild and one bot application.

    Options (Discord's values by default): ``global_limit`` requests per ``global_window`` seconds per
    bot token; ``channel_write_limit`` writes per ``channel_write_window`` seconds per channel;
    ``enforce_rate_limits=False`` answers no 429 at all; ``interaction_deadline`` (seconds to the
    first callback) and ``interaction_token_lifetime``; ``max_concurrency`` (IDENTIFYs per
    ``identify_window`` seconds in each shard bucket, as ``GET /gateway/bot`` reports it). More guilds:
    :meth:`add_guild`. Records: the world's (``messages``, ``threads``, ``commands``, ...), the
    gateway's (``identify_refused``, ``ready_shards``, ``closed_with``) and the public names below.
    """

    def __init__(self, *, global_limit: int = 50, global_window: float = 1.0, channel_write_limit: int = 5,
                 channel_write_window: float = 5.0, enforce_rate_limits: bool = True,
                 interaction_deadline: float = 3.0, interaction_token_lifetime: float = 15 * 60,
                 max_concurrency: int = 1, identify_window: float = 5.0) -> None:
        super().__init__()
        self.limits = RateLimits(global_limit=global_limit, global_window=global_window,
                                 channel_write_limit=channel_write_limit, channel_write_window=channel_write_window,
                                 enforce=enforce_rate_limits)
        self.gateway = Gateway(self, max_concurrency=max_concurrency, identify_window=identify_window)
        self.rest = Rest(self, self.limits)
        self.interaction_api = Interactions(self, self.limits, self.gateway, deadline=interaction_deadline,
                                            token_lifetime=interaction_token_lifetime)
        # The public hooks tests and bench/ use (the objects themselves, so they stay current).
        self.slash = self.interaction_api.slash
        self.autocomplete = self.interaction_api.autocomplete
        self.click = self.interaction_api.click
        self.write_log = self.limits.write_log
        self.rate_limit_log = self.limits.rate_limit_log
        self.invalid_requests = self.limits.invalid_requests
        self.invalid_requests_in = self.limits.invalid_requests_in
        self.max_writes_in_window = self.limits.max_writes_in_window
        self.request_log = self.rest.request_log
        self.unknown_routes = self.rest.unknown_routes
        self.server_errors = self.rest.server_errors
        self.fail = self.rest.fail
        self.identify_payloads = self.gateway.identify_payloads
        self.identify_refused = self.gateway.identify_refused
        self.ready_shards = self.gateway.ready_shards
        self.closed_with = self.gateway.closed_with
        self.host = "127.0.0.1"
        self.port = 0
        self.gateway_url = ""
        self._runner: web.AppRunner | None = None
        self._installed: tuple[str, yarl.URL, str] | None = None

    @property
    def global_429_count(self) -> int:
        return self.limits.global_429_count

    @property
    def route_429_count(self) -> int:
        return self.limits.route_429_count

    @property
    def rate_limited_count(self) -> int:
        return self.limits.rate_limited_count

    @property
    def ready_count(self) -> int:
        return self.gateway.ready_count

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        app = web.Application(middlewares=[self.rest.middleware], client_max_size=64 * 1024 * 1024)
        routes = [("GET", "/gateway/", self.gateway.handle), ("GET", f"{API}/gateway/bot", self.gateway.bot_gateway),
                  *self.rest.routes(), *self.interaction_api.routes()]
        for method, path, handler in routes:
            app.router.add_route(method, path, handler)
        app.router.add_route("*", "/{tail:.*}", self.rest.unknown)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, 0))
        self.port = sock.getsockname()[1]
        await web.SockSite(self._runner, sock).start()
        self.base_url = f"http://{self.host}:{self.port}"
        self.gateway_url = self.gateway.url = f"ws://{self.host}:{self.port}/gateway/"

    async def close(self) -> None:
        await self.gateway.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        self.uninstall()

    def install(self) -> None:
        """Point discord.py's REST base, gateway and CDN at this fake (remembers the old values)."""
        if not self.base_url:
            raise RuntimeError("start() the fake before install()")
        if self._installed is None:
            self._installed = (discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY,
                               discord.asset.Asset.BASE)
        discord.http.Route.BASE = f"{self.base_url}{API}"
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(self.gateway_url)
        discord.asset.Asset.BASE = self.base_url

    def uninstall(self) -> None:
        if self._installed is not None:
            (discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY,
             discord.asset.Asset.BASE) = self._installed
            self._installed = None

    async def wait_ready(self, timeout: float = 10) -> None:  # noqa: ASYNC109
        """Wait until a client IDENTIFYed and READY + GUILD_CREATE were written to its socket."""
        try:
            await asyncio.wait_for(self.gateway.ready.wait(), timeout)
        except TimeoutError:
            raise TimeoutError(f"no client became ready within {timeout}s") from None
        await self.gateway.flush()

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 10) -> None:  # noqa: ASYNC109
        """Poll ``predicate`` until it is true; TimeoutError after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise TimeoutError(f"condition not met within {timeout}s")
            await asyncio.sleep(0.01)

    # ------------------------------------------------------------------ users' messages

    async def post_message(self, channel_id: int, content: str, *, user_id: int,
                           attachments: list[Upload] | None = None, mentions_bot: bool = False,
                           reply_to: int | None = None) -> JSON:
        """Store a message as if ``user_id`` sent it and dispatch MESSAGE_CREATE; returns its payload.

        ``mentions_bot`` prefixes ``<@bot_id>`` to the content unless it already mentions the bot.
        """
        if user_id not in self.users or channel_id not in self.channels:
            raise ValueError(f"unknown user {user_id} or channel {channel_id}")
        if mentions_bot and f"<@{self.bot_user_id}>" not in content and f"<@!{self.bot_user_id}>" not in content:
            content = f"<@{self.bot_user_id}> {content}"
        msg = Msg(id=self.ids.next(), channel_id=channel_id, author_id=user_id, content=content)
        if reply_to is not None:
            msg.message_reference = self.resolve_reference(channel_id, {"message_reference": {"message_id": reply_to}})
            msg.type = 19
        msg.attachments = [self.attachment_payload(channel_id, *upload) for upload in attachments or []]
        self.compute_mentions(msg, by_bot=False)
        self.store_message(msg)
        await self.gateway.flush()
        return self.message_payload(msg, gateway=True)

    async def edit_user_message(self, message_id: int, content: str) -> None:
        """A user edits their message's text; dispatches MESSAGE_UPDATE with the whole message."""
        msg = self.messages[message_id]
        if msg.deleted or msg.author_id == self.bot_user_id:
            raise ValueError(f"message {message_id} cannot be edited by its user")
        msg.content = content
        msg.edited_timestamp = now_iso()
        self.compute_mentions(msg, by_bot=False)
        self.emit("MESSAGE_UPDATE", self.message_payload(msg, gateway=True))
        await self.gateway.flush()

    async def delete_user_message(self, message_id: int) -> None:
        """A user deletes a message; dispatches MESSAGE_DELETE."""
        self.delete_message(self.messages[message_id])
        await self.gateway.flush()

    async def open_dm(self, user_id: int) -> int:
        """The id of the DM channel between ``user_id`` and the bot."""
        if user_id not in self.users:
            raise ValueError(f"unknown user {user_id}")
        return self.dm_channel(user_id)
