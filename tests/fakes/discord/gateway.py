"""The fake Discord gateway: one websocket per client, plain JSON text frames.

HELLO (op 10) on connect; heartbeats (op 1) are answered with op 11; IDENTIFY (op 2) is answered with
READY and, with the guilds intent, GUILD_CREATE. RESUME (op 6) is refused with INVALID_SESSION (op 9,
``d: false``), so after a reconnect discord.py identifies afresh; events dispatched while a client is
away are not replayed. Other ops are ignored.

Dispatches (:meth:`Gateway.emit`) go in order to every identified connection, filtered by its intents
the way Discord does it: member events need the members intent; channel, thread and guild events the
guilds intent; message events the guild or direct messages intent; and without the message content
intent, guild messages from others that do not mention the bot arrive with content, embeds,
attachments and components blanked.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets

import discord
from aiohttp import WSMsgType, web

from tests.fakes.discord.state import World
from tests.fakes.discord.validation import JSON

INTENT_GUILDS = 1 << 0
INTENT_GUILD_MEMBERS = 1 << 1
INTENT_GUILD_MESSAGES = 1 << 9
INTENT_DIRECT_MESSAGES = 1 << 12
INTENT_MESSAGE_CONTENT = 1 << 15


class _Conn:
    """One websocket, with an ordered queue of outgoing frames (written by its own task)."""

    def __init__(self, ws: web.WebSocketResponse) -> None:
        self.ws = ws
        self.queue: asyncio.Queue[str] = asyncio.Queue()
        self.intents: int | None = None  # set by IDENTIFY
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


class Gateway:
    heartbeat_interval_ms = 41250

    def __init__(self, world: World) -> None:
        self.world = world
        world.emit = self.emit
        self.url = ""  # ws://host:port/gateway/ once the server listens
        self.conns: set[_Conn] = set()
        self.identify_payloads: list[JSON] = []  # every IDENTIFY's data
        self.ready_count = 0
        self.ready = asyncio.Event()

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
        """Queue a dispatch to every identified connection."""
        for conn in self.conns:
            if conn.intents is not None and (filtered := self._filtered(conn.intents, event, data)) is not None:
                conn.send(0, filtered, event)

    async def flush(self, max_wait: float = 2.0) -> None:
        """Wait until the queued frames were written to the sockets."""
        for conn in list(self.conns):
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(conn.queue.join(), max_wait)

    def require_session(self) -> None:
        if not any(c.intents is not None for c in self.conns):
            raise RuntimeError("no gateway client has identified; call wait_ready() first")

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
                    self._identify(conn, payload.get("d") or {})
                elif payload.get("op") == 6:
                    conn.send(9, False)
        finally:
            self.conns.discard(conn)
            conn.writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await conn.writer
        return ws

    def _identify(self, conn: _Conn, data: JSON) -> None:
        if conn.intents is not None:
            return
        self.identify_payloads.append(data)
        w = self.world
        conn.intents = int(data.get("intents", discord.Intents.default().value))
        ready: JSON = {
            "v": 10, "user": dict(w.users[w.bot_user_id]) | {"verified": True, "mfa_enabled": False},
            "guilds": [{"id": str(w.guild_id), "unavailable": True}], "session_id": secrets.token_hex(16),
            "resume_gateway_url": self.url, "private_channels": [], "relationships": [],
            "application": {"id": str(w.application_id), "flags": 0},
        }
        if data.get("shard") is not None:
            ready["shard"] = data["shard"]
        conn.send(0, ready, "READY")
        if conn.intents & INTENT_GUILDS:
            conn.send(0, w.guild_payload(), "GUILD_CREATE")
        self.ready_count += 1
        self.ready.set()

    async def close(self) -> None:
        for conn in list(self.conns):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.ws.close(code=1001, message=b"fake discord shutting down"), 2)
