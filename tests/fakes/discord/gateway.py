"""The fake Discord gateway: one websocket per client (or per shard), plain JSON text frames.

HELLO (op 10) on connect; heartbeats (op 1) are answered with op 11; IDENTIFY (op 2) is answered with
READY and, with the guilds intent, one GUILD_CREATE per guild of the session. RESUME (op 6) is refused
with INVALID_SESSION (op 9, ``d: false``), so after a reconnect discord.py identifies afresh; events
dispatched while a client is away are not replayed. Other ops are ignored.

Sharding, as Discord does it: an IDENTIFY with ``shard: [id, count]`` gets only the guilds with
``(guild_id >> 22) % count == id``, and only their events; direct messages (events without a guild)
go to shard 0. A shard id outside ``0..count-1`` is closed with 4010; a session that would hold more
than ``max_guilds_per_session`` (2,500) guilds, e.g. one without sharding, is closed with 4011.
``GET /gateway/bot`` (:meth:`Gateway.bot_gateway`) answers the URL, the recommended shard count (one
per 1,000 guilds) and ``session_start_limit`` with ``max_concurrency``. IDENTIFY is limited the way
Discord limits it: in each bucket ``shard_id % max_concurrency`` one IDENTIFY per ``identify_window``
(5 s) across every connection of the bot, whichever process it comes from; one more is answered with
INVALID_SESSION (op 9, ``d: false``) and recorded in :attr:`Gateway.identify_refused`.

Dispatches (:meth:`Gateway.emit`) go in order to every identified connection that holds the event's
guild (or shard 0 for direct messages), filtered by its intents the way Discord does it: member events
need the members intent; channel, thread and guild events the guilds intent; message events the guild
or direct messages intent; and without the message content intent, guild messages from others that do
not mention the bot arrive with content, embeds, attachments and components blanked.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import secrets
import time

import discord
from aiohttp import WSMsgType, web

from tests.fakes.discord.state import World, shard_of
from tests.fakes.discord.validation import JSON, json_response

INTENT_GUILDS = 1 << 0
INTENT_GUILD_MEMBERS = 1 << 1
INTENT_GUILD_MESSAGES = 1 << 9
INTENT_DIRECT_MESSAGES = 1 << 12
INTENT_MESSAGE_CONTENT = 1 << 15
INTENT_MESSAGE_CONTENT = 1 << 15
CLOSE_INVALID_SHARD, CLOSE_SHARDING_REQUIRED = 4010, 4011
GUILDS_PER_RECOMMENDED_SHARD = 1000
SESSION_STARTS_PER_DAY = 1000
# Events whose guild is the data's "id" rather than its "guild_id".
_GUILD_ITSELF = ("GUILD_CREATE", "GUILD_UPDATE", "GUILD_DELETE")


class _Conn:
    """One websocket, with an ordered queue of outgoing frames (written by its own task)."""

    def __init__(self, ws: web.WebSocketResponse) -> None:
        self.ws = ws
        self.queue: asyncio.Queue[str] = asyncio.Queue()
        self.intents: int | None = None  # set by IDENTIFY
        self.shard: tuple[int, int] = (0, 1)  # IDENTIFY's [shard_id, num_shards]
        self.seq = 0
        self.writer: asyncio.Task[None] | None = None

    def send(self, op: int, data: object, event: str | None = None) -> None:
        seq = None
        if op == 0:
            self.seq = seq = self.seq + 1
        self.queue.put_nowait(json.dumps({"op": op, "s": seq, "t": event, "d": data}))

    async def write(self) -> None:
        while True:
            frame = await self.queue.get()
            with contextlib.suppress(Exception):  # the socket went away
                if not self.ws.closed:
                    await self.ws.send_str(frame)
            self.queue.task_done()

    def holds(self, guild_id: int | None) -> bool:
        """Whether this session gets the events of `guild_id` (None: a direct message, shard 0's)."""
        return shard_of(guild_id, self.shard[1]) == self.shard[0]


class Gateway:
    heartbeat_interval_ms = 41250

    def __init__(self, world: World, *, max_concurrency: int = 1, identify_window: float = 5.0,
                 max_guilds_per_session: int = 2500) -> None:
        self.world = world
        world.emit = self.emit
        self.url = ""  # ws://host:port/gateway/ once the server listens
        self.max_concurrency = max_concurrency
        self.identify_window = identify_window
        self.max_guilds_per_session = max_guilds_per_session
        self.conns: set[_Conn] = set()
        self.identify_payloads: list[JSON] = []  # every IDENTIFY's data, refused ones too
        self.identify_times: list[tuple[float, int]] = []  # accepted IDENTIFYs: (monotonic, shard id)
        self.identify_refused: list[tuple[float, int]] = []  # IDENTIFYs over max_concurrency: (monotonic, shard)
        self.closed_with: list[tuple[int, int]] = []  # sessions the gateway closed: (code, shard id)
        self.ready_shards: dict[int, float] = {}  # shard id → when its READY and GUILD_CREATEs were queued
        self.ready_count = 0
        self.ready = asyncio.Event()
        self._started = time.monotonic()

    def _filtered(self, intents: int, event: str, data: JSON) -> JSON | None:
        if event.startswith("MESSAGE_"):
            in_guild = "guild_id" in data
            if not intents & (INTENT_GUILD_MESSAGES if in_guild else INTENT_DIRECT_MESSAGES):
                return None
            mentioned = any(int(m["id"]) == self.world.bot_user_id for m in data.get("mentions", []))
            author = int(data.get("author", {}).get("id", 0))
            if (event != "MESSAGE_DELETE" and in_guild and not intents & INTENT_MESSAGE_CONTENT
                    and author != self.world.bot_user_id and not mentioned):
                return {**data, "content": "", "embeds": [], "attachments": [], "components": []}
            return data
        if event.startswith("GUILD_MEMBER"):
            return data if intents & INTENT_GUILD_MEMBERS else None
        if event.startswith(("CHANNEL_", "THREAD_", "GUILD_")):
            return data if intents & INTENT_GUILDS else None
        return data

    def emit(self, event: str, data: JSON) -> None:
        """Queue a dispatch to every identified connection that holds the event's guild."""
        raw = data.get("id") if event in _GUILD_ITSELF else data.get("guild_id")
        guild_id = None if raw is None else int(raw)
        for conn in self.conns:
            if (conn.intents is not None and conn.holds(guild_id)
                    and (filtered := self._filtered(conn.intents, event, data)) is not None):
                conn.send(0, filtered, event)

    async def flush(self, max_wait: float = 2.0) -> None:
        """Wait until the queued frames were written to the sockets."""
        for conn in list(self.conns):
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(conn.queue.join(), max_wait)

    def require_session(self) -> None:
        if not any(c.intents is not None for c in self.conns):
            raise RuntimeError("no gateway client has identified; call wait_ready() first")

    def recommended_shards(self) -> int:
        return max(1, math.ceil(len(self.world.guild_ids) / GUILDS_PER_RECOMMENDED_SHARD))

    async def bot_gateway(self, request: web.Request) -> web.StreamResponse:
        """``GET /gateway/bot``: where to connect, how many shards, and the session start limit."""
        used = len(self.identify_times)
        return json_response({
            "url": self.url, "shards": self.recommended_shards(),
            "session_start_limit": {
                "total": SESSION_STARTS_PER_DAY, "remaining": max(0, SESSION_STARTS_PER_DAY - used),
                "reset_after": int(max(0.0, 86_400 - (time.monotonic() - self._started)) * 1000),
                "max_concurrency": self.max_concurrency,
            },
        })

    async def handle(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(max_msg_size=0)
        await ws.prepare(request)
        conn = _Conn(ws)
        self.conns.add(conn)
        conn.writer = asyncio.create_task(conn.write())
        conn.send(10, {"heartbeat_interval": self.heartbeat_interval_ms})
        try:
            async for frame in ws:
                if frame.type is not WSMsgType.TEXT:
                    break
                payload = json.loads(frame.data)
                if payload.get("op") == 1:
                    conn.send(11, None)
                elif payload.get("op") == 2:
                    await self._identify(conn, payload.get("d") or {})
                elif payload.get("op") == 6:
                    conn.send(9, False)
        finally:
            self.conns.discard(conn)
            conn.writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await conn.writer
        return ws

    def _identify_allowed(self, shard_id: int, now: float) -> bool:
        """At most one IDENTIFY per `identify_window` in each bucket `shard_id % max_concurrency`."""
        bucket = shard_id % self.max_concurrency
        return not any(now - t < self.identify_window for t, s in self.identify_times
                       if s % self.max_concurrency == bucket)

    async def _identify(self, conn: _Conn, data: JSON) -> None:
        if conn.intents is not None:
            return
        self.identify_payloads.append(data)
        shard_id, count = (int(x) for x in data.get("shard") or (0, 1))
        now = time.monotonic()
        if not 0 <= shard_id < count:
            self.closed_with.append((CLOSE_INVALID_SHARD, shard_id))
            await conn.ws.close(code=CLOSE_INVALID_SHARD, message=b"Invalid shard")
            return
        if not self._identify_allowed(shard_id, now):
            self.identify_refused.append((now, shard_id))
            conn.send(9, False)  # as Discord answers an IDENTIFY over max_concurrency
            return
        guilds = [g for g in self.world.guild_ids if shard_of(g, count) == shard_id]
        if len(guilds) > self.max_guilds_per_session:
            self.closed_with.append((CLOSE_SHARDING_REQUIRED, shard_id))
            await conn.ws.close(code=CLOSE_SHARDING_REQUIRED, message=b"Sharding required")
            return
        self.identify_times.append((now, shard_id))
        conn.shard = (shard_id, count)
        conn.intents = int(data.get("intents", discord.Intents.default().value))
        self._ready(conn, data, guilds)

    def _ready(self, conn: _Conn, data: JSON, guilds: list[int]) -> None:
        w = self.world
        ready: JSON = {
            "v": 10, "user": dict(w.users[w.bot_user_id]) | {"verified": True, "mfa_enabled": False},
            "guilds": [{"id": str(g), "unavailable": True} for g in guilds], "session_id": secrets.token_hex(16),
            "resume_gateway_url": self.url, "private_channels": [], "relationships": [],
            "application": {"id": str(w.application_id), "flags": 0},
        }
        if data.get("shard") is not None:
            ready["shard"] = data["shard"]
        conn.send(0, ready, "READY")
        if conn.intents is not None and conn.intents & INTENT_GUILDS:
            for guild_id in guilds:
                conn.send(0, w.guild_payload(guild_id), "GUILD_CREATE")
        self.ready_shards[conn.shard[0]] = time.monotonic()
        self.ready_count += 1
        self.ready.set()

    async def close(self) -> None:
        for conn in list(self.conns):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.ws.close(code=1001, message=b"fake discord shutting down"), 2)
