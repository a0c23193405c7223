"""A local fake of Discord's REST API, gateway and attachment host for end-to-end tests.

An unmodified discord.py client talks to it over real sockets on 127.0.0.1::

    fake = FakeDiscord()
    await fake.start()
    fake.install()          # points discord.py's Route.BASE / DEFAULT_GATEWAY / Asset.BASE here
    task = asyncio.create_task(bot.start("any-token"))
    await fake.wait_ready()
    inter = await fake.slash("echo", {"text": "hi"}, user_id=fake.add_user("alice"))
    await inter.wait_response()
    ...
    await bot.close(); await fake.close(); fake.uninstall()

The fake holds one guild with a text channel, the bot and the application owner as members, and lets
tests act as users (slash commands, autocomplete, button clicks, modal submits, messages with
attachments, DMs, reactions). Everything the bot does is recorded (:attr:`FakeDiscord.messages`,
:attr:`FakeDiscord.threads`, :attr:`FakeDiscord.write_log`, ...).

Discord rules it enforces: per-channel write rate limits (429 with ``Via`` and ``retry_after``),
the interaction callback deadline (404 code 10062) and single acknowledgement (400 code 40060),
message/embed/component size limits (400 code 50035), empty messages (400 code 50006), the message
content intent (``content`` blanked without it), and command definition validity at sync time.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import math
import mimetypes
import re
import secrets
import socket
import sys
import time
import traceback
from collections import deque
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import discord
import discord.asset
import discord.gateway
import discord.http
import yarl
from aiohttp import BodyPartReader, WSMsgType, web

__all__ = ["FakeDiscord", "Interaction", "Msg"]

JSON = dict[str, Any]
_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

API = "/api/v10"
DISCORD_EPOCH_MS = 1_420_070_400_000

# Gateway intents.
INTENT_GUILDS = 1 << 0
INTENT_GUILD_MEMBERS = 1 << 1
INTENT_GUILD_MESSAGES = 1 << 9
INTENT_GUILD_MESSAGE_REACTIONS = 1 << 10
INTENT_DIRECT_MESSAGES = 1 << 12
INTENT_DIRECT_MESSAGE_REACTIONS = 1 << 13
INTENT_MESSAGE_CONTENT = 1 << 15

# Message flags.
FLAG_SUPPRESS_EMBEDS = 1 << 2
FLAG_EPHEMERAL = 1 << 6
FLAG_LOADING = 1 << 7
FLAG_SUPPRESS_NOTIFICATIONS = 1 << 12
FLAG_COMPONENTS_V2 = 1 << 15
_SETTABLE_FLAGS = FLAG_SUPPRESS_EMBEDS | FLAG_SUPPRESS_NOTIFICATIONS | FLAG_COMPONENTS_V2

# Interaction types and callback types.
IT_APPLICATION_COMMAND = 2
IT_COMPONENT = 3
IT_AUTOCOMPLETE = 4
IT_MODAL_SUBMIT = 5
CB_MESSAGE = 4
CB_DEFERRED_MESSAGE = 5
CB_DEFERRED_UPDATE = 6
CB_UPDATE = 7
CB_AUTOCOMPLETE = 8
CB_MODAL = 9

# Application command option types.
OPT_SUB_COMMAND = 1
OPT_SUB_COMMAND_GROUP = 2
OPT_STRING = 3
OPT_INTEGER = 4
OPT_BOOLEAN = 5
OPT_USER = 6
OPT_CHANNEL = 7
OPT_ROLE = 8
OPT_MENTIONABLE = 9
OPT_NUMBER = 10
OPT_ATTACHMENT = 11

# Channel types.
CH_TEXT = 0
CH_DM = 1
CH_PUBLIC_THREAD = 11
CH_PRIVATE_THREAD = 12
_THREAD_TYPES = (10, CH_PUBLIC_THREAD, CH_PRIVATE_THREAD)

_P = discord.Permissions
PERMS_ALL = _P.all().value
PERMS_EVERYONE = _P(
    view_channel=True,
    send_messages=True,
    read_message_history=True,
    embed_links=True,
    attach_files=True,
    add_reactions=True,
    use_external_emojis=True,
    use_application_commands=True,
    create_public_threads=True,
    send_messages_in_threads=True,
    create_instant_invite=True,
    change_nickname=True,
    connect=True,
    speak=True,
).value
PERMS_BOT_ROLE = _P(
    manage_messages=True,
    manage_threads=True,
    create_private_threads=True,
    mention_everyone=True,
    read_message_history=True,
).value

ATTACHMENT_SIZE_LIMIT = 10 * 1024 * 1024
_MENTION_USER = re.compile(r"<@!?(\d+)>")
_MENTION_ROLE = re.compile(r"<@&(\d+)>")
_COMMAND_NAME = re.compile(r"^[-_'\w]{1,32}$")


def _now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat()


def _json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    """A JSON response with exactly ``Content-Type: application/json`` (discord.py needs it verbatim)."""
    all_headers = {"Content-Type": "application/json"}
    if headers:
        all_headers.update(headers)
    return web.Response(status=status, body=json.dumps(data).encode(), headers=all_headers)


def _round_up(seconds: float) -> float:
    """Seconds rounded up to the millisecond plus 2 ms: asyncio may wake a timer ~1 ms early, and a
    retry that arrives a hair too soon would be answered with another 429."""
    return math.ceil((max(seconds, 0.0) + 0.002) * 1000) / 1000


def _no_content(headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(status=204, headers=headers or {})


def _field_error(path: str, code: str, message: str) -> JSON:
    """Discord's nested ``errors`` object for one field path like ``embeds.0.description``."""
    node: JSON = {"_errors": [{"code": code, "message": message}]}
    for part in reversed(path.split(".")):
        node = {part: node}
    return node


class ApiError(Exception):
    """Raised inside handlers; turned into a Discord-shaped JSON error response."""

    def __init__(
        self,
        status: int,
        code: int,
        message: str,
        *,
        errors: JSON | None = None,
        headers: dict[str, str] | None = None,
        body: JSON | None = None,
    ) -> None:
        super().__init__(f"{status} {code} {message}")
        self.status = status
        self.code = code
        self.message = message
        self.errors = errors
        self.headers = headers or {}
        self.body = body

    def response(self) -> web.Response:
        body = self.body
        if body is None:
            body = {"message": self.message, "code": self.code}
            if self.errors is not None:
                body["errors"] = self.errors
        return _json_response(body, self.status, self.headers)


def _invalid_form(path: str, code: str, message: str) -> ApiError:
    return ApiError(400, 50035, "Invalid Form Body", errors=_field_error(path, code, message))


def _too_long(path: str, limit: int) -> ApiError:
    return _invalid_form(path, "BASE_TYPE_MAX_LENGTH", f"Must be {limit} or fewer in length.")


@dataclass
class Msg:
    """A message as the fake stores it (bot's and users')."""

    id: int
    channel_id: int
    author_id: int
    content: str = ""
    embeds: list[JSON] = field(default_factory=list)
    components: list[JSON] = field(default_factory=list)
    allowed_mentions: JSON | None = None
    flags: int = 0
    edits: list[str] = field(default_factory=list)
    created_at: float = field(default_factory=time.monotonic)
    deleted: bool = False
    interaction_id: int | None = None
    edit_times: list[float] = field(default_factory=list)
    # Extras beyond the required API.
    attachments: list[JSON] = field(default_factory=list)
    type: int = 0
    timestamp: str = field(default_factory=_now_iso)
    edited_timestamp: str | None = None
    webhook_id: int | None = None
    message_reference: JSON | None = None
    nonce: str | int | None = None
    tts: bool = False
    pinned: bool = False
    mentions: list[int] = field(default_factory=list)
    mention_roles: list[int] = field(default_factory=list)
    mention_everyone: bool = False
    reactions: dict[str, set[int]] = field(default_factory=dict)
    thread_id: int | None = None  # a thread started from this message
    deleted_at: float | None = None

    @property
    def ephemeral(self) -> bool:
        return bool(self.flags & FLAG_EPHEMERAL)

    @property
    def loading(self) -> bool:
        return bool(self.flags & FLAG_LOADING)

    def iter_components(self) -> Iterator[JSON]:
        """Every component in the message, depth first (rows, containers, sections, accessories)."""
        yield from _walk_components(self.components)


def _walk_components(components: list[JSON]) -> Iterator[JSON]:
    for comp in components:
        yield comp
        if comp.get("components"):
            yield from _walk_components(comp["components"])
        if isinstance(comp.get("accessory"), dict):
            yield from _walk_components([comp["accessory"]])
        if isinstance(comp.get("component"), dict):
            yield from _walk_components([comp["component"]])


class Interaction:
    """Handle for an interaction the fake dispatched (slash command, autocomplete, click, modal)."""

    def __init__(
        self,
        *,
        id: int,
        token: str,
        type: int,
        channel_id: int,
        guild_id: int | None,
        user_id: int,
        payload: JSON,
        target_message_id: int | None = None,
    ) -> None:
        self.id = id
        self.token = token
        self.type = type
        self.channel_id = channel_id
        self.guild_id = guild_id
        self.user_id = user_id
        self.payload = payload  # the INTERACTION_CREATE data sent to the bot
        self.target_message_id = target_message_id  # component/modal: the message it came from
        self.dispatched_at = time.monotonic()
        self.response_type: int | None = None
        self.response_data: JSON | None = None
        self.callback_delay: float | None = None  # seconds from dispatch to the accepted callback
        self.callback_errors: list[tuple[int, int]] = []  # (http status, discord code) of rejected callbacks
        self.message: Msg | None = None
        self.followups: list[Msg] = []
        self.choices: list[JSON] | None = None  # autocomplete result
        self.modal: JSON | None = None  # modal the bot opened (callback type 9)
        self._callback_event = asyncio.Event()

    @property
    def ephemeral(self) -> bool:
        flags = (self.response_data or {}).get("flags") or 0
        if self.message is not None and self.response_type in (CB_MESSAGE, CB_DEFERRED_MESSAGE):
            flags |= self.message.flags
        return bool(int(flags) & FLAG_EPHEMERAL)

    @property
    def responded(self) -> bool:
        return self.response_type is not None

    async def wait_response(self, timeout: float = 5) -> None:  # noqa: ASYNC109
        """Wait until a callback arrived (accepted or rejected); TimeoutError otherwise."""
        try:
            await asyncio.wait_for(self._callback_event.wait(), timeout)
        except TimeoutError:
            raise TimeoutError(f"interaction {self.id}: no callback within {timeout}s") from None

    def __repr__(self) -> str:
        return f"<FakeInteraction id={self.id} type={self.type} response_type={self.response_type}>"


class _Snowflakes:
    def __init__(self) -> None:
        self._last = 0
        self._increment = 0

    def next(self) -> int:
        ms = int(time.time() * 1000) - DISCORD_EPOCH_MS
        self._increment = (self._increment + 1) & 0xFFF
        value = (ms << 22) | (1 << 17) | self._increment
        if value <= self._last:
            value = self._last + 1
        self._last = value
        return value


class _Conn:
    """One gateway websocket connection with an ordered outgoing queue."""

    def __init__(self, ws: web.WebSocketResponse) -> None:
        self.ws = ws
        self.queue: asyncio.Queue[str] = asyncio.Queue()
        self.session: _Session | None = None
        self.closed = False
        self.writer: asyncio.Task[None] | None = None

    def send(self, payload: JSON) -> None:
        if not self.closed:
            self.queue.put_nowait(json.dumps(payload))


class _Session:
    def __init__(self, session_id: str, intents: int, shard: list[int] | None) -> None:
        self.id = session_id
        self.intents = intents
        self.shard = shard
        self.seq = 0
        self.backlog: deque[tuple[int, str]] = deque(maxlen=10_000)
        self.conn: _Conn | None = None

    def push(self, event: str, data: JSON) -> None:
        self.seq += 1
        frame = json.dumps({"op": 0, "s": self.seq, "t": event, "d": data})
        self.backlog.append((self.seq, frame))
        if self.conn is not None and not self.conn.closed:
            self.conn.queue.put_nowait(frame)


class FakeDiscord:
    """A fake Discord (REST + gateway + CDN) on 127.0.0.1 for one guild and one bot application."""

    heartbeat_interval_ms = 41250

    def __init__(
        self,
        *,
        channel_write_limit: int = 5,
        channel_write_window: float = 5.0,
        enforce_rate_limits: bool = True,
        interaction_deadline: float = 3.0,
        interaction_token_lifetime: float = 15 * 60,
    ) -> None:
        self.channel_write_limit = channel_write_limit
        self.channel_write_window = channel_write_window
        self.enforce_rate_limits = enforce_rate_limits
        self.interaction_deadline = interaction_deadline
        self.interaction_token_lifetime = interaction_token_lifetime

        self.host = "127.0.0.1"
        self.port = 0
        self.base_url = ""
        self.gateway_url = ""
        self._runner: web.AppRunner | None = None
        self._installed: tuple[str, yarl.URL, str] | None = None

        self._ids = _Snowflakes()
        self.application_id = self.bot_user_id = self._ids.next()
        self.owner_id = self._ids.next()
        self.guild_id = self._ids.next()
        self.text_channel_id = self._ids.next()
        self.admin_role_id = self._ids.next()
        self.manager_role_id = self._ids.next()
        self.bot_role_id = self._ids.next()
        self.guild_name = "Fake Guild"

        self.users: dict[int, JSON] = {}
        self.members: dict[int, JSON] = {}  # user id -> {"roles": [ids], "joined_at": iso}
        self.roles: dict[int, JSON] = {}
        self.channels: dict[int, JSON] = {}  # guild channels, threads and DMs by id
        self.threads: dict[int, JSON] = {}
        self.dm_channels: dict[int, int] = {}  # user id -> DM channel id
        self._thread_members: dict[int, set[int]] = {}
        self.messages: dict[int, Msg] = {}
        self.files: dict[int, tuple[str, bytes, str]] = {}  # attachment id -> (filename, data, content type)
        self.interactions: dict[int, Interaction] = {}
        self._interactions_by_token: dict[str, Interaction] = {}
        self.commands: list[JSON] = []
        self.guild_commands: dict[int, list[JSON]] = {}
        self.command_sync_count = 0

        self.rate_limited_count = 0
        self.rate_limit_log: list[tuple[float, int, str]] = []  # (monotonic, channel id, kind) per 429
        self.write_log: list[tuple[float, int, str]] = []
        self._windows: dict[int, deque[float]] = {}
        self.typing_log: list[tuple[float, int]] = []
        self.request_log: list[tuple[float, str, str, int]] = []
        self.unknown_routes: list[tuple[str, str]] = []
        self.server_errors: list[str] = []
        self.presence: JSON | None = None

        self._conns: set[_Conn] = set()
        self._sessions: dict[str, _Session] = {}
        self.identify_payloads: list[JSON] = []
        self.ready_count = 0
        self.resume_count = 0
        self._ready_event = asyncio.Event()
        self._tasks: set[asyncio.Task[Any]] = set()

        self._build_world()

    # ------------------------------------------------------------------ world

    def _build_world(self) -> None:
        self.users[self.bot_user_id] = self._make_user(
            self.bot_user_id, "FakeBot", bot=True, discriminator="4242"
        )
        self.users[self.owner_id] = self._make_user(self.owner_id, "owner")
        everyone = self._make_role(self.guild_id, "@everyone", PERMS_EVERYONE, position=0)
        self.roles[self.guild_id] = everyone
        self.roles[self.admin_role_id] = self._make_role(
            self.admin_role_id, "Admin", _P(administrator=True).value, 3
        )
        self.roles[self.manager_role_id] = self._make_role(
            self.manager_role_id, "Manager", _P(manage_guild=True).value, 2
        )
        bot_role = self._make_role(self.bot_role_id, "FakeBot", PERMS_BOT_ROLE, 1, managed=True)
        bot_role["tags"] = {"bot_id": str(self.bot_user_id)}
        self.roles[self.bot_role_id] = bot_role
        self.members[self.bot_user_id] = {"roles": [self.bot_role_id], "joined_at": _now_iso()}
        self.members[self.owner_id] = {"roles": [], "joined_at": _now_iso()}
        self.channels[self.text_channel_id] = self._make_text_channel(self.text_channel_id, "general", 0)

    @staticmethod
    def _make_user(user_id: int, name: str, *, bot: bool = False, discriminator: str = "0") -> JSON:
        user: JSON = {
            "id": str(user_id),
            "username": name,
            "discriminator": discriminator,
            "global_name": None if bot else name.title(),
            "avatar": None,
            "public_flags": 0,
            "flags": 0,
            "banner": None,
            "accent_color": None,
            "avatar_decoration_data": None,
        }
        if bot:
            user["bot"] = True
        return user

    @staticmethod
    def _make_role(
        role_id: int, name: str, permissions: int, position: int, *, managed: bool = False
    ) -> JSON:
        return {
            "id": str(role_id),
            "name": name,
            "color": 0,
            "colors": {"primary_color": 0, "secondary_color": None, "tertiary_color": None},
            "hoist": False,
            "icon": None,
            "unicode_emoji": None,
            "position": position,
            "permissions": str(permissions),
            "managed": managed,
            "mentionable": False,
            "flags": 0,
        }

    def _make_text_channel(self, channel_id: int, name: str, position: int) -> JSON:
        return {
            "id": str(channel_id),
            "type": CH_TEXT,
            "guild_id": str(self.guild_id),
            "name": name,
            "position": position,
            "permission_overwrites": [],
            "nsfw": False,
            "topic": None,
            "last_message_id": None,
            "rate_limit_per_user": 0,
            "parent_id": None,
            "flags": 0,
            "default_thread_rate_limit_per_user": 0,
        }

    def add_user(self, name: str, *, admin: bool = False, manage_guild: bool = False) -> int:
        """Add a guild member; returns the user id. Dispatches GUILD_MEMBER_ADD to connected clients."""
        user_id = self._ids.next()
        self.users[user_id] = self._make_user(user_id, name)
        roles = []
        if admin:
            roles.append(self.admin_role_id)
        if manage_guild:
            roles.append(self.manager_role_id)
        self.members[user_id] = {"roles": roles, "joined_at": _now_iso()}
        self._emit("GUILD_MEMBER_ADD", {**self._member_payload(user_id), "guild_id": str(self.guild_id)})
        return user_id

    def add_text_channel(self, name: str) -> int:
        """Add a guild text channel; dispatches CHANNEL_CREATE to connected clients."""
        channel_id = self._ids.next()
        position = sum(1 for c in self.channels.values() if c["type"] == CH_TEXT)
        self.channels[channel_id] = self._make_text_channel(channel_id, name, position)
        self._emit("CHANNEL_CREATE", self.channels[channel_id])
        return channel_id

    def check_command_permissions(self, name: str, user_id: int, *, guild: bool = True) -> None:
        command = self.find_command(name)
        if command is None:
            return
        if not guild and (command.get("dm_permission") is False or command.get("contexts") == [0]):
            raise PermissionError(f"/{name} cannot be used in direct messages")
        required = command.get("default_member_permissions")
        if guild and required is not None:
            needed = int(required)
            if self.user_permissions(user_id) & needed != needed:
                raise PermissionError(f"Discord does not offer /{name} to this member (missing permissions)")

    def user_permissions(self, user_id: int) -> int:
        """Guild-level permissions of a member (owner and administrators get everything)."""
        if user_id == self.owner_id:
            return PERMS_ALL
        perms = int(self.roles[self.guild_id]["permissions"])
        for role_id in self.members.get(user_id, {}).get("roles", []):
            perms |= int(self.roles[role_id]["permissions"])
        if perms & _P(administrator=True).value:
            return PERMS_ALL
        return perms

    def _is_guild_channel(self, channel_id: int) -> bool:
        channel = self.channels.get(channel_id)
        return channel is not None and "guild_id" in channel

    def _channel_or_404(self, channel_id: int) -> JSON:
        channel = self.channels.get(channel_id)
        if channel is None:
            raise ApiError(404, 10003, "Unknown Channel")
        return channel

    def _user_or_404(self, user_id: int) -> JSON:
        user = self.users.get(user_id)
        if user is None:
            raise ApiError(404, 10013, "Unknown User")
        return user

    # ------------------------------------------------------------------ payloads

    def _member_partial(self, user_id: int) -> JSON:
        member = self.members[user_id]
        return {
            "roles": [str(r) for r in member["roles"]],
            "joined_at": member["joined_at"],
            "nick": None,
            "avatar": None,
            "banner": None,
            "deaf": False,
            "mute": False,
            "flags": 0,
            "pending": False,
            "premium_since": None,
            "communication_disabled_until": None,
        }

    def _member_payload(self, user_id: int) -> JSON:
        return {"user": dict(self.users[user_id]), **self._member_partial(user_id)}

    def _guild_payload(self) -> JSON:
        channels = [c for c in self.channels.values() if c.get("guild_id") and c["type"] not in _THREAD_TYPES]
        active_threads = [t for t in self.threads.values() if not t["thread_metadata"]["archived"]]
        members = [self._member_payload(uid) for uid in self.members]
        return {
            "id": str(self.guild_id),
            "name": self.guild_name,
            "icon": None,
            "splash": None,
            "discovery_splash": None,
            "banner": None,
            "description": None,
            "owner_id": str(self.owner_id),
            "application_id": None,
            "region": None,
            "afk_channel_id": None,
            "afk_timeout": 300,
            "verification_level": 0,
            "default_message_notifications": 1,
            "explicit_content_filter": 0,
            "mfa_level": 0,
            "nsfw_level": 0,
            "premium_tier": 0,
            "premium_subscription_count": 0,
            "premium_progress_bar_enabled": False,
            "preferred_locale": "en-US",
            "vanity_url_code": None,
            "system_channel_id": str(self.text_channel_id),
            "system_channel_flags": 0,
            "rules_channel_id": None,
            "public_updates_channel_id": None,
            "safety_alerts_channel_id": None,
            "max_members": 500000,
            "max_video_channel_users": 25,
            "max_stage_video_channel_users": 50,
            "features": [],
            "roles": list(self.roles.values()),
            "emojis": [],
            "stickers": [],
            "joined_at": self.members[self.bot_user_id]["joined_at"],
            "large": False,
            "unavailable": False,
            "lazy": True,
            "member_count": len(members),
            "members": members,
            "channels": channels,
            "threads": active_threads,
            "voice_states": [],
            "presences": [],
            "stage_instances": [],
            "guild_scheduled_events": [],
            "soundboard_sounds": [],
            "incidents_data": None,
            "application_command_counts": {},
        }

    def _guild_of(self, channel_id: int) -> int | None:
        channel = self.channels.get(channel_id)
        if channel is None or "guild_id" not in channel:
            return None
        return int(channel["guild_id"])

    def _mention_payload(self, user_id: int, guild_id: int | None) -> JSON:
        user = dict(self.users[user_id])
        if guild_id is not None and user_id in self.members:
            user["member"] = self._member_partial(user_id)
        return user

    def message_payload(self, msg: Msg, *, gateway: bool = False, with_reference: bool = True) -> JSON:
        """The Discord message object for ``msg`` (``gateway=True`` adds guild_id and member)."""
        guild_id = self._guild_of(msg.channel_id)
        payload: JSON = {
            "id": str(msg.id),
            "channel_id": str(msg.channel_id),
            "type": msg.type,
            "content": msg.content,
            "author": dict(self.users[msg.author_id]),
            "attachments": [dict(a) for a in msg.attachments],
            "embeds": [dict(e) for e in msg.embeds],
            "mentions": [self._mention_payload(u, guild_id) for u in msg.mentions if u in self.users],
            "mention_roles": [str(r) for r in msg.mention_roles],
            "mention_everyone": msg.mention_everyone,
            "pinned": msg.pinned,
            "tts": msg.tts,
            "timestamp": msg.timestamp,
            "edited_timestamp": msg.edited_timestamp,
            "flags": msg.flags,
            "components": msg.components,
        }
        if msg.reactions:
            payload["reactions"] = [
                {
                    "emoji": {"id": None, "name": emoji},
                    "count": len(users),
                    "count_details": {"burst": 0, "normal": len(users)},
                    "me": self.bot_user_id in users,
                    "me_burst": False,
                    "burst_colors": [],
                }
                for emoji, users in msg.reactions.items()
                if users
            ]
        if msg.nonce is not None:
            payload["nonce"] = msg.nonce
        if msg.webhook_id is not None:
            payload["webhook_id"] = str(msg.webhook_id)
            payload["application_id"] = str(self.application_id)
        if msg.interaction_id is not None and msg.interaction_id in self.interactions:
            inter = self.interactions[msg.interaction_id]
            user = dict(self.users[inter.user_id])
            owners = {"0": str(inter.guild_id)} if inter.guild_id else {"1": str(inter.user_id)}
            payload["interaction_metadata"] = {
                "id": str(inter.id),
                "type": inter.type,
                "user": user,
                "authorizing_integration_owners": owners,
            }
            name = (inter.payload.get("data") or {}).get("name") or ""
            payload["interaction"] = {"id": str(inter.id), "type": inter.type, "name": name, "user": user}
        if msg.message_reference is not None:
            payload["message_reference"] = msg.message_reference
            if with_reference:
                ref_id = int(msg.message_reference.get("message_id", 0) or 0)
                ref = self.messages.get(ref_id)
                payload["referenced_message"] = (
                    None if ref is None or ref.deleted else self.message_payload(ref, with_reference=False)
                )
        if msg.thread_id is not None and msg.thread_id in self.threads:
            payload["thread"] = dict(self.threads[msg.thread_id])
        if gateway and guild_id is not None:
            payload["guild_id"] = str(guild_id)
            if msg.webhook_id is None and msg.author_id in self.members:
                payload["member"] = self._member_partial(msg.author_id)
        return payload

    def _attachment_payload(
        self, channel_id: int, filename: str, data: bytes, content_type: str | None
    ) -> JSON:
        attachment_id = self._ids.next()
        if not content_type or content_type == "application/octet-stream":
            content_type = mimetypes.guess_type(filename)[0] or content_type or "application/octet-stream"
        self.files[attachment_id] = (filename, data, content_type)
        path = f"/attachments/{channel_id}/{attachment_id}/{quote(filename, safe='')}"
        return {
            "id": str(attachment_id),
            "filename": filename,
            "size": len(data),
            "url": f"{self.base_url}{path}",
            "proxy_url": f"{self.base_url}/media{path}",
            "content_type": content_type,
            "title": filename.rsplit(".", 1)[0],
        }

    def file_bytes(self, attachment: JSON | str) -> bytes:
        """The stored bytes of an attachment (payload dict or its URL)."""
        url = attachment if isinstance(attachment, str) else attachment["url"]
        attachment_id = int(yarl.URL(url).path.split("/")[-2])
        return self.files[attachment_id][1]

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        app = web.Application(middlewares=[self._middleware], client_max_size=64 * 1024 * 1024)
        self._add_routes(app.router)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, 0))
        self.port = sock.getsockname()[1]
        await web.SockSite(self._runner, sock).start()
        self.base_url = f"http://{self.host}:{self.port}"
        self.gateway_url = f"ws://{self.host}:{self.port}/gateway/"

    async def close(self) -> None:
        for conn in list(self._conns):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.ws.close(code=1001, message=b"fake discord shutting down"), 2)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        self.uninstall()

    async def __aenter__(self) -> FakeDiscord:
        await self.start()
        self.install()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def install(self) -> None:
        """Point discord.py's REST base, gateway and CDN at this fake (remembers the old values)."""
        if not self.base_url:
            raise RuntimeError("start() the fake before install()")
        if self._installed is None:
            self._installed = (
                discord.http.Route.BASE,
                discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY,
                discord.asset.Asset.BASE,
            )
        discord.http.Route.BASE = f"{self.base_url}{API}"
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(self.gateway_url)
        discord.asset.Asset.BASE = self.base_url

    def uninstall(self) -> None:
        if self._installed is None:
            return
        base, gateway, asset = self._installed
        discord.http.Route.BASE = base
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = gateway
        discord.asset.Asset.BASE = asset
        self._installed = None

    async def wait_ready(self, timeout: float = 10) -> None:  # noqa: ASYNC109
        """Wait until a client IDENTIFYed and READY + GUILD_CREATE were written to its socket."""
        try:
            await asyncio.wait_for(self._ready_event.wait(), timeout)
        except TimeoutError:
            raise TimeoutError(f"no client became ready within {timeout}s") from None
        await self._flush()

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 10) -> None:  # noqa: ASYNC109
        """Poll ``predicate`` until it is true; TimeoutError after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise TimeoutError(f"condition not met within {timeout}s")
            await asyncio.sleep(0.01)

    async def disconnect_clients(self) -> None:
        """Close every gateway socket with code 4000 so discord.py reconnects and RESUMEs."""
        conns = [c for c in self._conns if not c.closed]
        for conn in conns:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.ws.close(code=4000, message=b"Unknown error"), 5)
        await self.wait_for(lambda: all(c.closed for c in conns), timeout=5)

    # ------------------------------------------------------------------ gateway

    def _session_wants(self, session: _Session, event: str, data: JSON) -> JSON | None:
        intents = session.intents
        if event.startswith("MESSAGE_"):
            in_guild = "guild_id" in data
            if event.startswith("MESSAGE_REACTION"):
                needed = INTENT_GUILD_MESSAGE_REACTIONS if in_guild else INTENT_DIRECT_MESSAGE_REACTIONS
            else:
                needed = INTENT_GUILD_MESSAGES if in_guild else INTENT_DIRECT_MESSAGES
            if not intents & needed:
                return None
            if event in ("MESSAGE_CREATE", "MESSAGE_UPDATE") and not intents & INTENT_MESSAGE_CONTENT:
                author_id = int(data.get("author", {}).get("id", 0))
                mentioned = any(int(m["id"]) == self.bot_user_id for m in data.get("mentions", []))
                if in_guild and author_id != self.bot_user_id and not mentioned:
                    data = {**data, "content": "", "embeds": [], "attachments": [], "components": []}
            return data
        if event.startswith(("GUILD_MEMBER", "GUILD_MEMBERS")) and event != "GUILD_MEMBERS_CHUNK":
            return data if intents & INTENT_GUILD_MEMBERS else None
        if event.startswith(("CHANNEL_", "THREAD_", "GUILD_")):
            return data if intents & INTENT_GUILDS else None
        return data

    def _emit(self, event: str, data: JSON) -> None:
        """Queue a dispatch to every live session (ordered; written by each connection's writer task)."""
        for session in list(self._sessions.values()):
            filtered = self._session_wants(session, event, data)
            if filtered is not None:
                session.push(event, filtered)

    async def _flush(self, max_wait: float = 2.0) -> None:
        """Wait until queued gateway frames were written to the sockets."""
        for conn in list(self._conns):
            if not conn.closed:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(conn.queue.join(), max_wait)

    async def _writer(self, conn: _Conn) -> None:
        while True:
            frame = await conn.queue.get()
            try:
                if not conn.ws.closed:
                    await conn.ws.send_str(frame)
            except Exception:  # the socket went away; RESUME replays from the session backlog
                pass
            finally:
                conn.queue.task_done()

    async def _h_gateway(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(max_msg_size=0)
        await ws.prepare(request)
        conn = _Conn(ws)
        self._conns.add(conn)
        conn.writer = asyncio.create_task(self._writer(conn))
        conn.send(
            {
                "op": 10,
                "s": None,
                "t": None,
                "d": {"heartbeat_interval": self.heartbeat_interval_ms, "_trace": ['["fake-gateway",{}]']},
            }
        )
        try:
            async for msg in ws:
                if msg.type is WSMsgType.TEXT:
                    try:
                        payload = json.loads(msg.data)
                    except ValueError:
                        await ws.close(code=4002, message=b"Error while decoding payload.")
                        break
                    await self._on_gateway_payload(conn, payload)
                elif msg.type is WSMsgType.ERROR:
                    break
        finally:
            conn.closed = True
            if conn.session is not None and conn.session.conn is conn:
                conn.session.conn = None
            if conn.writer is not None:
                conn.writer.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await conn.writer
            while not conn.queue.empty():
                conn.queue.get_nowait()
                conn.queue.task_done()
            self._conns.discard(conn)
        return ws

    async def _on_gateway_payload(self, conn: _Conn, payload: JSON) -> None:
        op = payload.get("op")
        data = payload.get("d")
        if op == 1:  # heartbeat
            conn.send({"op": 11, "s": None, "t": None, "d": None})
        elif op == 2:  # identify
            self._identify(conn, data or {})
        elif op == 6:  # resume
            self._resume(conn, data or {})
        elif op == 3:  # presence update
            self.presence = data
        elif op == 8:  # request guild members
            nonce = (data or {}).get("nonce")
            chunk: JSON = {
                "guild_id": str(self.guild_id),
                "members": [self._member_payload(uid) for uid in self.members],
                "chunk_index": 0,
                "chunk_count": 1,
                "not_found": [],
                "presences": [],
            }
            if nonce is not None:
                chunk["nonce"] = nonce
            if conn.session is not None:
                conn.session.push("GUILD_MEMBERS_CHUNK", chunk)
        elif op == 4:  # voice state update: not supported, ignored
            pass
        else:
            print(f"[fake-discord] unknown gateway op {op}: {payload!r}", file=sys.stderr)

    def _identify(self, conn: _Conn, data: JSON) -> None:
        if conn.session is not None:
            task = asyncio.get_running_loop().create_task(
                conn.ws.close(code=4005, message=b"Already authenticated.")
            )
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            return
        self.identify_payloads.append(data)
        # A fresh IDENTIFY invalidates sessions that are not connected any more.
        for sid, old in list(self._sessions.items()):
            if old.conn is None:
                del self._sessions[sid]
        intents = int(data.get("intents", discord.Intents.default().value))
        session = _Session(secrets.token_hex(16), intents, data.get("shard"))
        self._sessions[session.id] = session
        session.conn = conn
        conn.session = session
        bot = dict(self.users[self.bot_user_id])
        bot.update({"verified": True, "mfa_enabled": False, "email": None, "locale": "en-US"})
        ready: JSON = {
            "v": 10,
            "user": bot,
            "user_settings": {},
            "guilds": [{"id": str(self.guild_id), "unavailable": True}],
            "session_id": session.id,
            "session_type": "normal",
            "resume_gateway_url": self.gateway_url,
            "private_channels": [],
            "relationships": [],
            "presences": [],
            "guild_join_requests": [],
            "geo_ordered_rtc_regions": ["fake"],
            "application": {"id": str(self.application_id), "flags": 0},
            "_trace": ['["fake-gateway",{}]'],
        }
        if session.shard is not None:
            ready["shard"] = session.shard
        session.push("READY", ready)
        if intents & INTENT_GUILDS:
            session.push("GUILD_CREATE", self._guild_payload())
        self.ready_count += 1
        self._ready_event.set()

    def _resume(self, conn: _Conn, data: JSON) -> None:
        session = self._sessions.get(str(data.get("session_id")))
        if session is None or conn.session is not None:
            conn.send({"op": 9, "s": None, "t": None, "d": False})
            return
        if session.conn is not None and session.conn is not conn:
            session.conn.session = None
        session.conn = conn
        conn.session = session
        last_seq = data.get("seq") or 0
        for seq, frame in session.backlog:
            if seq > last_seq:
                conn.queue.put_nowait(frame)
        session.push("RESUMED", {"_trace": ['["fake-gateway",{}]']})
        self.resume_count += 1

    # ------------------------------------------------------------------ HTTP plumbing

    def _add_routes(self, router: web.UrlDispatcher) -> None:
        a = API
        cid = "{channel_id:\\d+}"
        mid = "{message_id:\\d+}"
        routes: list[tuple[str, str, _Handler]] = [
            ("GET", "/gateway", self._h_gateway),
            ("GET", "/gateway/", self._h_gateway),
            ("GET", "/attachments/{channel_id}/{attachment_id}/{filename}", self._h_attachment),
            ("GET", "/media/attachments/{channel_id}/{attachment_id}/{filename}", self._h_attachment),
            ("GET", f"{a}/gateway", self._h_get_gateway),
            ("GET", f"{a}/gateway/bot", self._h_get_gateway),
            ("GET", f"{a}/users/@me", self._h_get_me),
            ("POST", f"{a}/users/@me/channels", self._h_create_dm),
            ("GET", f"{a}/users/{{user_id:\\d+}}", self._h_get_user),
            ("GET", f"{a}/oauth2/applications/@me", self._h_app_info),
            ("GET", f"{a}/applications/@me", self._h_app_info),
            ("GET", f"{a}/applications/{{app_id}}/commands", self._h_get_commands),
            ("PUT", f"{a}/applications/{{app_id}}/commands", self._h_put_commands),
            ("POST", f"{a}/applications/{{app_id}}/commands", self._h_post_command),
            (
                "GET",
                f"{a}/applications/{{app_id}}/guilds/{{guild_id}}/commands/permissions",
                self._h_empty_list,
            ),
            ("GET", f"{a}/applications/{{app_id}}/guilds/{{guild_id}}/commands", self._h_get_commands),
            ("PUT", f"{a}/applications/{{app_id}}/guilds/{{guild_id}}/commands", self._h_put_commands),
            ("POST", f"{a}/applications/{{app_id}}/guilds/{{guild_id}}/commands", self._h_post_command),
            ("GET", f"{a}/guilds/{{guild_id:\\d+}}", self._h_get_guild),
            ("GET", f"{a}/guilds/{{guild_id:\\d+}}/channels", self._h_guild_channels),
            ("GET", f"{a}/guilds/{{guild_id:\\d+}}/roles", self._h_guild_roles),
            ("GET", f"{a}/guilds/{{guild_id:\\d+}}/threads/active", self._h_active_threads),
            ("GET", f"{a}/guilds/{{guild_id:\\d+}}/members/{{user_id:\\d+}}", self._h_get_member),
            ("GET", f"{a}/channels/{cid}", self._h_get_channel),
            ("PATCH", f"{a}/channels/{cid}", self._h_edit_channel),
            ("DELETE", f"{a}/channels/{cid}", self._h_delete_channel),
            ("GET", f"{a}/channels/{cid}/messages", self._h_history),
            ("POST", f"{a}/channels/{cid}/messages", self._h_create_message),
            ("POST", f"{a}/channels/{cid}/messages/bulk-delete", self._h_bulk_delete),
            ("GET", f"{a}/channels/{cid}/messages/{mid}", self._h_get_message),
            ("PATCH", f"{a}/channels/{cid}/messages/{mid}", self._h_edit_message),
            ("DELETE", f"{a}/channels/{cid}/messages/{mid}", self._h_delete_message),
            ("POST", f"{a}/channels/{cid}/messages/{mid}/threads", self._h_thread_from_message),
            ("POST", f"{a}/channels/{cid}/threads", self._h_thread_without_message),
            ("PUT", f"{a}/channels/{cid}/thread-members/{{user}}", self._h_thread_member),
            ("DELETE", f"{a}/channels/{cid}/thread-members/{{user}}", self._h_thread_member),
            ("POST", f"{a}/channels/{cid}/typing", self._h_typing),
            ("PUT", f"{a}/channels/{cid}/messages/{mid}/reactions/{{emoji}}/@me", self._h_add_reaction),
            (
                "DELETE",
                f"{a}/channels/{cid}/messages/{mid}/reactions/{{emoji}}/{{user}}",
                self._h_del_reaction,
            ),
            ("PUT", f"{a}/channels/{cid}/messages/pins/{mid}", self._h_pin),
            ("DELETE", f"{a}/channels/{cid}/messages/pins/{mid}", self._h_pin),
            ("PUT", f"{a}/channels/{cid}/pins/{mid}", self._h_pin),
            ("DELETE", f"{a}/channels/{cid}/pins/{mid}", self._h_pin),
            ("POST", f"{a}/interactions/{{interaction_id:\\d+}}/{{token}}/callback", self._h_callback),
            ("POST", f"{a}/webhooks/{{app_id}}/{{token}}", self._h_followup),
            ("GET", f"{a}/webhooks/{{app_id}}/{{token}}/messages/{{message_id}}", self._h_webhook_get),
            ("PATCH", f"{a}/webhooks/{{app_id}}/{{token}}/messages/{{message_id}}", self._h_webhook_edit),
            ("DELETE", f"{a}/webhooks/{{app_id}}/{{token}}/messages/{{message_id}}", self._h_webhook_delete),
        ]
        for method, path, handler in routes:
            router.add_route(method, path, handler)
        router.add_route("*", "/{tail:.*}", self._h_unknown)

    @web.middleware
    async def _middleware(self, request: web.Request, handler: _Handler) -> web.StreamResponse:
        try:
            path = request.path
            needs_auth = path.startswith(API) and not path.startswith(
                (f"{API}/webhooks/", f"{API}/interactions/")
            )
            if needs_auth and not request.headers.get("Authorization", "").startswith("Bot "):
                raise ApiError(401, 0, "401: Unauthorized")
            response = await handler(request)
        except ApiError as exc:
            response = exc.response()
        except web.HTTPException:
            raise
        except Exception as exc:
            # A bug in the fake: answer 400 (discord.py would retry a 5xx for ~25 s) and shout about it.
            text = traceback.format_exc()
            self.server_errors.append(text)
            print(
                f"[fake-discord] handler crashed for {request.method} {request.path}:\n{text}",
                file=sys.stderr,
            )
            response = _json_response({"message": f"fake discord server error: {exc!r}", "code": 0}, 400)
        self.request_log.append((time.monotonic(), request.method, request.path, response.status))
        return response

    async def _h_unknown(self, request: web.Request) -> web.StreamResponse:
        self.unknown_routes.append((request.method, request.path_qs))
        print(f"[fake-discord] UNKNOWN ROUTE {request.method} {request.path_qs}", file=sys.stderr)
        return _json_response({"message": "Unknown", "code": 0}, 404)

    @staticmethod
    async def _read_body(request: web.Request) -> tuple[JSON, dict[str, tuple[str, bytes, str]]]:
        """JSON body, or multipart with ``payload_json`` and ``files[n]`` parts."""
        files: dict[str, tuple[str, bytes, str]] = {}
        if request.content_type.startswith("multipart/"):
            payload: JSON = {}
            reader = await request.multipart()
            async for part in reader:
                if not isinstance(part, BodyPartReader):
                    continue
                if part.name == "payload_json":
                    payload = json.loads(await part.text() or "{}")
                elif part.name:
                    data = bytes(await part.read(decode=True))
                    ctype = part.headers.get("Content-Type", "application/octet-stream")
                    files[part.name] = (part.filename or part.name, data, ctype)
            return payload, files
        raw = await request.read()
        if not raw:
            return {}, files
        try:
            body = json.loads(raw)
        except ValueError:
            raise ApiError(400, 50109, "The request body contains invalid JSON.") from None
        return (body if isinstance(body, dict) else {"_list": body}), files

    @staticmethod
    def _int(request: web.Request, name: str) -> int:
        return int(request.match_info[name])

    # ------------------------------------------------------------------ rate limits

    def _bucket(self, kind: str) -> str:
        return f"fake-{kind}"

    def _rate_check(self, channel_id: int, kind: str) -> None:
        """Raise the 429 if ``channel_id`` has no write slot free (does not consume one)."""
        if not self.enforce_rate_limits:
            return
        now = time.monotonic()
        window = self._windows.setdefault(channel_id, deque())
        while window and window[0] <= now - self.channel_write_window:
            window.popleft()
        if len(window) < self.channel_write_limit:
            return
        retry_after = _round_up(window[0] + self.channel_write_window - now)
        self.rate_limited_count += 1
        self.rate_limit_log.append((now, channel_id, kind))
        headers = {
            "Via": "1.1 google",
            "Retry-After": str(math.ceil(retry_after)),
            "X-RateLimit-Limit": str(self.channel_write_limit),
            "X-RateLimit-Remaining": "0",
            "X-RateLimit-Reset": f"{time.time() + retry_after:.3f}",
            "X-RateLimit-Reset-After": f"{retry_after:.3f}",
            "X-RateLimit-Bucket": self._bucket(kind),
            "X-RateLimit-Scope": "user",
        }
        body = {
            "message": "You are being rate limited.",
            "retry_after": round(retry_after, 3),
            "global": False,
        }
        raise ApiError(429, 0, "You are being rate limited.", headers=headers, body=body)

    def _rate_commit(self, channel_id: int, kind: str) -> dict[str, str]:
        """Record an accepted write; returns the X-RateLimit-* headers for the response."""
        now = time.monotonic()
        self.write_log.append((now, channel_id, kind))
        if not self.enforce_rate_limits:
            return {}
        window = self._windows.setdefault(channel_id, deque())
        while window and window[0] <= now - self.channel_write_window:
            window.popleft()
        window.append(now)
        reset_after = _round_up(window[0] + self.channel_write_window - now)
        return {
            "X-RateLimit-Limit": str(self.channel_write_limit),
            "X-RateLimit-Remaining": str(max(self.channel_write_limit - len(window), 0)),
            "X-RateLimit-Reset": f"{time.time() + reset_after:.3f}",
            "X-RateLimit-Reset-After": f"{reset_after:.3f}",
            "X-RateLimit-Bucket": self._bucket(kind),
        }

    def max_writes_in_window(
        self, channel_id: int, window: float | None = None, *, include_callbacks: bool = False
    ) -> int:
        """The most writes to ``channel_id`` inside any ``window``-second span of :attr:`write_log`
        (by default only the rate-limited kinds, i.e. without interaction callbacks)."""
        span = self.channel_write_window if window is None else window
        times = [
            t for t, c, k in self.write_log if c == channel_id and (include_callbacks or k != "callback")
        ]
        best = 0
        start = 0
        for end, t in enumerate(times):
            while t - times[start] >= span:
                start += 1
            best = max(best, end - start + 1)
        return best

    # ------------------------------------------------------------------ message building

    def _validate_message(self, msg_fields: JSON) -> None:
        content = msg_fields.get("content") or ""
        if len(content) > 2000:
            raise _too_long("content", 2000)
        embeds = msg_fields.get("embeds") or []
        if len(embeds) > 10:
            raise _too_long("embeds", 10)
        total = 0
        limits = {"title": 256, "description": 4096}
        for i, embed in enumerate(embeds):
            for key, limit in limits.items():
                value = embed.get(key) or ""
                total += len(value)
                if len(value) > limit:
                    raise _too_long(f"embeds.{i}.{key}", limit)
            fields = embed.get("fields") or []
            if len(fields) > 25:
                raise _too_long(f"embeds.{i}.fields", 25)
            for j, fld in enumerate(fields):
                for key, limit in (("name", 256), ("value", 1024)):
                    value = fld.get(key) or ""
                    total += len(value)
                    if not value:
                        raise _invalid_form(f"embeds.{i}.fields.{j}.{key}", "BASE_TYPE_REQUIRED", "Required")
                    if len(value) > limit:
                        raise _too_long(f"embeds.{i}.fields.{j}.{key}", limit)
            footer = (embed.get("footer") or {}).get("text") or ""
            author = (embed.get("author") or {}).get("name") or ""
            if len(footer) > 2048:
                raise _too_long(f"embeds.{i}.footer.text", 2048)
            if len(author) > 256:
                raise _too_long(f"embeds.{i}.author.name", 256)
            total += len(footer) + len(author)
        if total > 6000:
            raise _invalid_form(
                "embeds", "MAX_EMBED_SIZE_EXCEEDED", "Embed size exceeds maximum size of 6000"
            )
        components = msg_fields.get("components") or []
        v2 = bool((msg_fields.get("flags") or 0) & FLAG_COMPONENTS_V2)
        if not v2 and len(components) > 5:
            raise _too_long("components", 5)
        seen: set[str] = set()
        for i, row in enumerate(components):
            if not v2 and row.get("type") == 1 and len(row.get("components") or []) > 5:
                raise _too_long(f"components.{i}.components", 5)
        for comp in _walk_components(components):
            custom_id = comp.get("custom_id")
            if custom_id is not None:
                if len(custom_id) > 100:
                    raise _too_long("components.custom_id", 100)
                if custom_id in seen:
                    raise _invalid_form(
                        "components",
                        "COMPONENT_CUSTOM_ID_DUPLICATED",
                        "Component custom id cannot be duplicated",
                    )
                seen.add(custom_id)
            if comp.get("type") == 2 and len(comp.get("label") or "") > 80:
                raise _too_long("components.label", 80)

    def _check_not_empty(self, msg: Msg) -> None:
        if not (msg.content or msg.embeds or msg.attachments or msg.components):
            raise ApiError(400, 50006, "Cannot send an empty message")

    def _compute_mentions(self, msg: Msg, *, by_bot: bool) -> None:
        user_ids = [int(u) for u in _MENTION_USER.findall(msg.content)]
        role_ids = [int(r) for r in _MENTION_ROLE.findall(msg.content)]
        everyone = "@everyone" in msg.content or "@here" in msg.content
        reply_author: int | None = None
        if msg.message_reference is not None:
            ref = self.messages.get(int(msg.message_reference.get("message_id") or 0))
            if ref is not None:
                reply_author = ref.author_id
        am = msg.allowed_mentions if by_bot else None
        if am is not None:
            parse = am.get("parse") or []
            allowed_users = {int(u) for u in am.get("users") or []}
            allowed_roles = {int(r) for r in am.get("roles") or []}
            user_ids = [u for u in user_ids if "users" in parse or u in allowed_users]
            role_ids = [r for r in role_ids if "roles" in parse or r in allowed_roles]
            everyone = everyone and "everyone" in parse
            if not am.get("replied_user"):
                reply_author = None
        if by_bot and not (self.user_permissions(self.bot_user_id) & _P(mention_everyone=True).value):
            everyone = False
        mentions: list[int] = []
        for uid in [*user_ids, *([reply_author] if reply_author is not None else [])]:
            if uid in self.users and uid not in mentions:
                mentions.append(uid)
        msg.mentions = mentions
        msg.mention_roles = [r for r in dict.fromkeys(role_ids) if r in self.roles]
        msg.mention_everyone = everyone

    def _attachments_from(
        self, channel_id: int, payload: JSON, files: dict[str, tuple[str, bytes, str]], existing: list[JSON]
    ) -> list[JSON] | None:
        """New attachment list from ``payload['attachments']`` + uploaded files (None: unchanged)."""
        uploads = {}
        for name, (filename, data, ctype) in files.items():
            match = re.fullmatch(r"files\[(\d+)\]|file(\d*)", name)
            index = (match.group(1) or match.group(2) or "0") if match else name
            uploads[str(index)] = (filename, data, ctype)
        if "attachments" not in payload and not uploads:
            return None
        result: list[JSON] = []
        used: set[str] = set()
        by_id = {a["id"]: a for a in existing}
        for item in payload.get("attachments") or []:
            key = str(item.get("id"))
            if key in uploads and key not in used:
                filename, data, ctype = uploads[key]
                att = self._attachment_payload(channel_id, item.get("filename") or filename, data, ctype)
                if item.get("description"):
                    att["description"] = item["description"]
                result.append(att)
                used.add(key)
            elif key in by_id:
                result.append(by_id[key])
        for key, (filename, data, ctype) in uploads.items():
            if key not in used:
                result.append(self._attachment_payload(channel_id, filename, data, ctype))
        for att in result:
            if att["size"] > ATTACHMENT_SIZE_LIMIT:
                raise ApiError(413, 40005, "Request entity too large")
        return result

    def _apply_fields(
        self,
        msg: Msg,
        payload: JSON,
        files: dict[str, tuple[str, bytes, str]],
        *,
        by_bot: bool,
        creating: bool,
    ) -> None:
        if "content" in payload:
            msg.content = payload["content"] or ""
        if "embeds" in payload:
            msg.embeds = [{"type": "rich", **e} for e in payload["embeds"] or []]
        if "components" in payload:
            msg.components = payload["components"] or []
        if "allowed_mentions" in payload:
            msg.allowed_mentions = payload["allowed_mentions"]
        if "flags" in payload and payload["flags"] is not None:
            keep = msg.flags & (FLAG_EPHEMERAL | FLAG_LOADING) if not creating else msg.flags
            msg.flags = keep | (int(payload["flags"]) & _SETTABLE_FLAGS)
        attachments = self._attachments_from(msg.channel_id, payload, files, msg.attachments)
        if attachments is not None:
            msg.attachments = attachments
        if creating:
            msg.tts = bool(payload.get("tts"))
            msg.nonce = payload.get("nonce")
        self._compute_mentions(msg, by_bot=by_bot)

    def _resolve_reference(self, channel_id: int, payload: JSON) -> JSON | None:
        ref = payload.get("message_reference")
        if not ref:
            return None
        ref_id = int(ref.get("message_id") or 0)
        ref_channel = int(ref.get("channel_id") or channel_id)
        target = self.messages.get(ref_id)
        if target is None or target.deleted or target.channel_id != ref_channel:
            if ref.get("fail_if_not_exists", True):
                raise _invalid_form(
                    "message_reference", "MESSAGE_REFERENCE_UNKNOWN_MESSAGE", "Unknown message"
                )
            return None
        out = {"type": 0, "message_id": str(ref_id), "channel_id": str(ref_channel)}
        guild_id = self._guild_of(ref_channel)
        if guild_id is not None:
            out["guild_id"] = str(guild_id)
        return out

    def _store_new_message(self, msg: Msg) -> None:
        self.messages[msg.id] = msg
        channel = self.channels.get(msg.channel_id)
        if channel is None:
            return
        channel["last_message_id"] = str(msg.id)
        if channel["type"] in _THREAD_TYPES:
            channel["message_count"] = channel.get("message_count", 0) + 1
            channel["total_message_sent"] = channel.get("total_message_sent", 0) + 1
            meta = channel["thread_metadata"]
            if meta["archived"] and not meta["locked"]:
                meta["archived"] = False
                meta["archive_timestamp"] = _now_iso()
                self._emit("THREAD_UPDATE", dict(channel))

    def _new_message(
        self,
        channel_id: int,
        author_id: int,
        payload: JSON,
        files: dict[str, tuple[str, bytes, str]],
        *,
        by_bot: bool = True,
        msg_type: int = 0,
        interaction: Interaction | None = None,
        extra_flags: int = 0,
    ) -> Msg:
        """Validate and build (but do not store) a message from a create payload."""
        self._validate_message(payload)
        msg = Msg(id=self._ids.next(), channel_id=channel_id, author_id=author_id)
        reference = self._resolve_reference(channel_id, payload)
        if reference is not None:
            msg.message_reference = reference
            msg_type = 19 if msg_type == 0 else msg_type
        msg.type = msg_type
        self._apply_fields(msg, payload, files, by_bot=by_bot, creating=True)
        msg.flags |= extra_flags
        if interaction is not None:
            msg.interaction_id = interaction.id
            msg.webhook_id = self.application_id
        return msg

    def _edit_message(self, msg: Msg, payload: JSON, files: dict[str, tuple[str, bytes, str]]) -> None:
        """Validate and apply an edit (without recording it)."""
        merged = {
            "content": payload.get("content", msg.content),
            "embeds": payload.get("embeds", msg.embeds),
            "components": payload.get("components", msg.components),
            "flags": payload.get("flags", msg.flags),
        }
        self._validate_message(merged)
        self._apply_fields(msg, payload, files, by_bot=True, creating=False)

    def _record_edit(self, msg: Msg, *, clear_loading: bool = False) -> None:
        if clear_loading:
            msg.flags &= ~FLAG_LOADING
        self._check_not_empty(msg)
        msg.edits.append(msg.content)
        msg.edit_times.append(time.monotonic())
        msg.edited_timestamp = _now_iso()
        if not msg.ephemeral:
            self._emit("MESSAGE_UPDATE", self.message_payload(msg, gateway=True))

    def _announce_create(self, msg: Msg) -> None:
        if not msg.ephemeral:
            self._emit("MESSAGE_CREATE", self.message_payload(msg, gateway=True))

    def _message_or_404(self, channel_id: int, message_id: int) -> Msg:
        msg = self.messages.get(message_id)
        if msg is None or msg.deleted or msg.channel_id != channel_id:
            raise ApiError(404, 10008, "Unknown Message")
        return msg

    def _mark_deleted(self, msg: Msg) -> None:
        msg.deleted = True
        msg.deleted_at = time.monotonic()
        if msg.ephemeral:
            return
        data: JSON = {"id": str(msg.id), "channel_id": str(msg.channel_id)}
        guild_id = self._guild_of(msg.channel_id)
        if guild_id is not None:
            data["guild_id"] = str(guild_id)
        self._emit("MESSAGE_DELETE", data)

    def channel_messages(self, channel_id: int, *, include_deleted: bool = False) -> list[Msg]:
        """Messages of a channel in creation order (deleted ones only if asked)."""
        return [
            m
            for m in self.messages.values()
            if m.channel_id == channel_id and (include_deleted or not m.deleted)
        ]

    def bot_messages(self, channel_id: int | None = None) -> list[Msg]:
        """Non-deleted messages authored by the bot (optionally in one channel), in creation order."""
        return [
            m
            for m in self.messages.values()
            if m.author_id == self.bot_user_id
            and not m.deleted
            and (channel_id is None or m.channel_id == channel_id)
        ]

    # ------------------------------------------------------------------ REST: identity & guild

    def _bot_user_payload(self) -> JSON:
        user = dict(self.users[self.bot_user_id])
        user.update({"verified": True, "mfa_enabled": False, "email": None, "locale": "en-US"})
        return user

    async def _h_get_me(self, request: web.Request) -> web.StreamResponse:
        return _json_response(self._bot_user_payload())

    async def _h_get_user(self, request: web.Request) -> web.StreamResponse:
        return _json_response(self._user_or_404(self._int(request, "user_id")))

    async def _h_app_info(self, request: web.Request) -> web.StreamResponse:
        return _json_response(
            {
                "id": str(self.application_id),
                "name": "FakeBot",
                "icon": None,
                "description": "A fake application for tests",
                "summary": "",
                "type": None,
                "bot_public": True,
                "bot_require_code_grant": False,
                "verify_key": "0" * 64,
                "owner": dict(self.users[self.owner_id]),
                "team": None,
                "flags": 0,
                "bot": dict(self.users[self.bot_user_id]),
                "rpc_origins": [],
                "redirect_uris": [],
                "tags": [],
                "interactions_endpoint_url": None,
                "role_connections_verification_url": None,
                "approximate_guild_count": 1,
                "integration_types_config": {"0": {}, "1": {}},
            }
        )

    async def _h_get_gateway(self, request: web.Request) -> web.StreamResponse:
        return _json_response(
            {
                "url": self.gateway_url,
                "shards": 1,
                "session_start_limit": {
                    "total": 1000,
                    "remaining": 999,
                    "reset_after": 0,
                    "max_concurrency": 1,
                },
            }
        )

    def _check_guild(self, request: web.Request) -> None:
        if self._int(request, "guild_id") != self.guild_id:
            raise ApiError(404, 10004, "Unknown Guild")

    async def _h_get_guild(self, request: web.Request) -> web.StreamResponse:
        self._check_guild(request)
        payload = self._guild_payload()
        for key in (
            "members",
            "channels",
            "threads",
            "voice_states",
            "presences",
            "joined_at",
            "large",
            "lazy",
        ):
            payload.pop(key, None)
        payload["approximate_member_count"] = len(self.members)
        payload["approximate_presence_count"] = 0
        return _json_response(payload)

    async def _h_guild_channels(self, request: web.Request) -> web.StreamResponse:
        self._check_guild(request)
        chans = [c for c in self.channels.values() if c.get("guild_id") and c["type"] not in _THREAD_TYPES]
        return _json_response(chans)

    async def _h_guild_roles(self, request: web.Request) -> web.StreamResponse:
        self._check_guild(request)
        return _json_response(list(self.roles.values()))

    async def _h_active_threads(self, request: web.Request) -> web.StreamResponse:
        self._check_guild(request)
        threads = [t for t in self.threads.values() if not t["thread_metadata"]["archived"]]
        return _json_response({"threads": threads, "members": []})

    async def _h_get_member(self, request: web.Request) -> web.StreamResponse:
        self._check_guild(request)
        user_id = self._int(request, "user_id")
        if user_id not in self.members:
            raise ApiError(404, 10007, "Unknown Member")
        return _json_response(self._member_payload(user_id))

    async def _h_empty_list(self, request: web.Request) -> web.StreamResponse:
        return _json_response([])

    async def _h_create_dm(self, request: web.Request) -> web.StreamResponse:
        body, _ = await self._read_body(request)
        user_id = int(body.get("recipient_id") or 0)
        self._user_or_404(user_id)
        return _json_response(self.channels[self._dm_channel(user_id)])

    def _dm_channel(self, user_id: int) -> int:
        channel_id = self.dm_channels.get(user_id)
        if channel_id is None:
            channel_id = self._ids.next()
            self.dm_channels[user_id] = channel_id
            self.channels[channel_id] = {
                "id": str(channel_id),
                "type": CH_DM,
                "last_message_id": None,
                "flags": 0,
                "recipients": [dict(self.users[user_id])],
            }
        return channel_id

    # ------------------------------------------------------------------ REST: commands

    def _check_app(self, request: web.Request) -> None:
        if request.match_info["app_id"] != str(self.application_id):
            raise ApiError(403, 50001, "Missing Access")

    def _command_list(self, request: web.Request) -> tuple[list[JSON], int | None]:
        self._check_app(request)
        if "guild_id" in request.match_info:
            guild_id = self._int(request, "guild_id")
            if guild_id != self.guild_id:
                raise ApiError(403, 50001, "Missing Access")
            return self.guild_commands.setdefault(guild_id, []), guild_id
        return self.commands, None

    def _validate_options(self, options: list[JSON], path: str, depth: int) -> None:
        if len(options) > 25:
            raise _too_long(f"{path}.options", 25)
        names: set[str] = set()
        seen_optional = False
        for i, opt in enumerate(options):
            where = f"{path}.options.{i}"
            name = opt.get("name") or ""
            if not _COMMAND_NAME.match(name) or name != name.lower():
                raise _invalid_form(
                    f"{where}.name", "APPLICATION_COMMAND_INVALID_NAME", "Command name is invalid"
                )
            if name in names:
                raise _invalid_form(
                    f"{where}.name",
                    "APPLICATION_COMMAND_OPTIONS_NAME_ALREADY_EXISTS",
                    "Option name already exists",
                )
            names.add(name)
            if not 1 <= len(opt.get("description") or "") <= 100:
                raise _invalid_form(
                    f"{where}.description", "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 100"
                )
            otype = opt.get("type")
            if otype in (OPT_SUB_COMMAND, OPT_SUB_COMMAND_GROUP):
                if depth >= 2 or (otype == OPT_SUB_COMMAND_GROUP and depth >= 1):
                    raise _invalid_form(
                        f"{where}.type", "APPLICATION_COMMAND_OPTION_TYPE_INVALID", "Bad nesting"
                    )
                self._validate_options(opt.get("options") or [], where, depth + 1)
                continue
            if opt.get("required"):
                if seen_optional:
                    raise _invalid_form(
                        f"{where}.required",
                        "APPLICATION_COMMAND_OPTIONS_REQUIRED_INVALID",
                        "Required options must be placed before non-required options",
                    )
            else:
                seen_optional = True
            if len(opt.get("choices") or []) > 25:
                raise _too_long(f"{where}.choices", 25)
            if opt.get("choices") and opt.get("autocomplete"):
                raise _invalid_form(f"{where}.autocomplete", "BASE_TYPE_INVALID", "Autocomplete with choices")

    def _validate_command(self, cmd: JSON, index: int) -> None:
        ctype = cmd.get("type", 1)
        name = cmd.get("name") or ""
        if ctype == 1:
            if not _COMMAND_NAME.match(name) or name != name.lower():
                raise _invalid_form(
                    f"{index}.name", "APPLICATION_COMMAND_INVALID_NAME", "Command name is invalid"
                )
            if not 1 <= len(cmd.get("description") or "") <= 100:
                raise _invalid_form(
                    f"{index}.description", "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 100"
                )
            self._validate_options(cmd.get("options") or [], str(index), 0)
        elif not 1 <= len(name) <= 32:
            raise _invalid_form(f"{index}.name", "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 32")

    def _store_command(self, cmd: JSON, existing: list[JSON], guild_id: int | None) -> JSON:
        ctype = cmd.get("type", 1)
        prev = next((c for c in existing if c["name"] == cmd.get("name") and c["type"] == ctype), None)
        stored: JSON = {
            "id": prev["id"] if prev else str(self._ids.next()),
            "application_id": str(self.application_id),
            "version": str(self._ids.next()),
            "type": ctype,
            "name": cmd["name"],
            "name_localizations": cmd.get("name_localizations"),
            "description": cmd.get("description") or "",
            "description_localizations": cmd.get("description_localizations"),
            "default_member_permissions": cmd.get("default_member_permissions"),
            "dm_permission": cmd.get("dm_permission", True),
            "contexts": cmd.get("contexts"),
            "integration_types": cmd.get("integration_types") or [0],
            "nsfw": bool(cmd.get("nsfw", False)),
        }
        if ctype == 1 or cmd.get("options"):
            stored["options"] = cmd.get("options") or []
        if guild_id is not None:
            stored["guild_id"] = str(guild_id)
        return stored

    async def _h_get_commands(self, request: web.Request) -> web.StreamResponse:
        commands, _ = self._command_list(request)
        return _json_response(commands)

    async def _h_put_commands(self, request: web.Request) -> web.StreamResponse:
        existing, guild_id = self._command_list(request)
        body, _ = await self._read_body(request)
        payload = body.get("_list", [])
        if len(payload) > 100:
            raise _too_long("_root", 100)
        seen: set[tuple[str, int]] = set()
        for i, cmd in enumerate(payload):
            self._validate_command(cmd, i)
            key = (cmd.get("name", ""), cmd.get("type", 1))
            if key in seen:
                raise _invalid_form(
                    str(i),
                    "APPLICATION_COMMANDS_DUPLICATE_NAME",
                    f"Application command names must be unique: {key[0]}",
                )
            seen.add(key)
        stored = [self._store_command(cmd, existing, guild_id) for cmd in payload]
        if guild_id is None:
            self.commands = stored
        else:
            self.guild_commands[guild_id] = stored
        self.command_sync_count += 1
        return _json_response(stored)

    async def _h_post_command(self, request: web.Request) -> web.StreamResponse:
        existing, guild_id = self._command_list(request)
        cmd, _ = await self._read_body(request)
        self._validate_command(cmd, 0)
        stored = self._store_command(cmd, existing, guild_id)
        existing[:] = [c for c in existing if c["id"] != stored["id"]] + [stored]
        return _json_response(stored, 201)

    def find_command(self, name: str, guild_id: int | None = None) -> JSON | None:
        """A synced chat-input command by name (guild commands first, then global)."""
        pools = []
        if guild_id is not None:
            pools.append(self.guild_commands.get(guild_id, []))
        pools.append(self.commands)
        for pool in pools:
            for cmd in pool:
                if cmd["name"] == name and cmd.get("type", 1) == 1:
                    return cmd
        return None

    # ------------------------------------------------------------------ REST: channels & messages

    async def _h_get_channel(self, request: web.Request) -> web.StreamResponse:
        return _json_response(self._channel_or_404(self._int(request, "channel_id")))

    async def _h_edit_channel(self, request: web.Request) -> web.StreamResponse:
        channel_id = self._int(request, "channel_id")
        channel = self._channel_or_404(channel_id)
        body, _ = await self._read_body(request)
        if "name" in body:
            name = str(body["name"] or "")
            if not 1 <= len(name) <= 100:
                raise _invalid_form("name", "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 100 in length.")
            channel["name"] = name
        for key in ("topic", "nsfw", "rate_limit_per_user", "position", "flags", "applied_tags"):
            if key in body:
                channel[key] = body[key]
        if channel["type"] in _THREAD_TYPES:
            meta = channel["thread_metadata"]
            for key in ("archived", "locked", "auto_archive_duration", "invitable"):
                if key in body:
                    meta[key] = body[key]
            if "archived" in body:
                meta["archive_timestamp"] = _now_iso()
            self._emit("THREAD_UPDATE", dict(channel))
        elif "guild_id" in channel:
            self._emit("CHANNEL_UPDATE", dict(channel))
        return _json_response(channel)

    async def _h_delete_channel(self, request: web.Request) -> web.StreamResponse:
        channel_id = self._int(request, "channel_id")
        channel = self._channel_or_404(channel_id)
        if channel["type"] == CH_DM:
            return _json_response(channel)
        del self.channels[channel_id]
        if channel["type"] in _THREAD_TYPES:
            self.threads.pop(channel_id, None)
            self._emit(
                "THREAD_DELETE",
                {
                    "id": str(channel_id),
                    "guild_id": channel["guild_id"],
                    "parent_id": channel["parent_id"],
                    "type": channel["type"],
                },
            )
        else:
            self._emit("CHANNEL_DELETE", dict(channel))
        return _json_response(channel)

    async def _h_history(self, request: web.Request) -> web.StreamResponse:
        channel_id = self._int(request, "channel_id")
        self._channel_or_404(channel_id)
        limit = max(1, min(int(request.query.get("limit", "50")), 100))
        msgs = [m for m in self.channel_messages(channel_id) if not m.ephemeral]
        if "before" in request.query:
            before = int(request.query["before"])
            msgs = [m for m in msgs if m.id < before]
            selected = msgs[-limit:]
        elif "after" in request.query:
            after = int(request.query["after"])
            selected = [m for m in msgs if m.id > after][:limit]
        elif "around" in request.query:
            around = int(request.query["around"])
            older = [m for m in msgs if m.id < around][-(limit // 2) :] if limit > 1 else []
            newer = [m for m in msgs if m.id >= around][: limit - len(older)]
            selected = older + newer
        else:
            selected = msgs[-limit:]
        selected = sorted(selected, key=lambda m: m.id, reverse=True)
        return _json_response([self.message_payload(m) for m in selected])

    async def _h_get_message(self, request: web.Request) -> web.StreamResponse:
        msg = self._message_or_404(self._int(request, "channel_id"), self._int(request, "message_id"))
        return _json_response(self.message_payload(msg))

    async def _h_create_message(self, request: web.Request) -> web.StreamResponse:
        channel_id = self._int(request, "channel_id")
        self._channel_or_404(channel_id)
        payload, files = await self._read_body(request)
        msg = self._new_message(channel_id, self.bot_user_id, payload, files)
        self._check_not_empty(msg)
        self._rate_check(channel_id, "create")
        headers = self._rate_commit(channel_id, "create")
        self._store_new_message(msg)
        self._announce_create(msg)
        return _json_response(self.message_payload(msg), headers=headers)

    async def _h_edit_message(self, request: web.Request) -> web.StreamResponse:
        channel_id = self._int(request, "channel_id")
        msg = self._message_or_404(channel_id, self._int(request, "message_id"))
        payload, files = await self._read_body(request)
        if msg.author_id != self.bot_user_id and set(payload) - {"flags"}:
            raise ApiError(403, 50005, "Cannot edit a message authored by another user")
        snapshot = (msg.content, msg.embeds, msg.components, msg.attachments, msg.flags, msg.allowed_mentions)
        try:
            self._edit_message(msg, payload, files)
            self._check_not_empty(msg)
            self._rate_check(channel_id, "edit")
        except ApiError:
            msg.content, msg.embeds, msg.components, msg.attachments, msg.flags, msg.allowed_mentions = (
                snapshot
            )
            raise
        headers = self._rate_commit(channel_id, "edit")
        self._record_edit(msg)
        return _json_response(self.message_payload(msg), headers=headers)

    async def _h_delete_message(self, request: web.Request) -> web.StreamResponse:
        msg = self._message_or_404(self._int(request, "channel_id"), self._int(request, "message_id"))
        self._mark_deleted(msg)
        return _no_content()

    async def _h_bulk_delete(self, request: web.Request) -> web.StreamResponse:
        channel_id = self._int(request, "channel_id")
        body, _ = await self._read_body(request)
        ids = [int(i) for i in body.get("messages") or []]
        if not 2 <= len(ids) <= 100:
            raise _invalid_form("messages", "BASE_TYPE_BAD_LENGTH", "Must be between 2 and 100 in length.")
        for message_id in ids:
            msg = self.messages.get(message_id)
            if msg is not None and msg.channel_id == channel_id and not msg.deleted:
                msg.deleted = True
                msg.deleted_at = time.monotonic()
        data: JSON = {"ids": [str(i) for i in ids], "channel_id": str(channel_id)}
        guild_id = self._guild_of(channel_id)
        if guild_id is not None:
            data["guild_id"] = str(guild_id)
        self._emit("MESSAGE_DELETE_BULK", data)
        return _no_content()

    async def _h_typing(self, request: web.Request) -> web.StreamResponse:
        channel_id = self._int(request, "channel_id")
        self._channel_or_404(channel_id)
        self.typing_log.append((time.monotonic(), channel_id))
        return _no_content()

    def _reaction_event(self, event: str, msg: Msg, emoji: str, user_id: int) -> None:
        data: JSON = {
            "user_id": str(user_id),
            "channel_id": str(msg.channel_id),
            "message_id": str(msg.id),
            "emoji": {"id": None, "name": emoji},
            "burst": False,
            "type": 0,
            "message_author_id": str(msg.author_id),
        }
        guild_id = self._guild_of(msg.channel_id)
        if guild_id is not None:
            data["guild_id"] = str(guild_id)
            if event == "MESSAGE_REACTION_ADD" and user_id in self.members:
                data["member"] = self._member_payload(user_id)
        self._emit(event, data)

    async def _h_add_reaction(self, request: web.Request) -> web.StreamResponse:
        msg = self._message_or_404(self._int(request, "channel_id"), self._int(request, "message_id"))
        emoji = request.match_info["emoji"]
        msg.reactions.setdefault(emoji, set()).add(self.bot_user_id)
        self._reaction_event("MESSAGE_REACTION_ADD", msg, emoji, self.bot_user_id)
        return _no_content()

    async def _h_del_reaction(self, request: web.Request) -> web.StreamResponse:
        msg = self._message_or_404(self._int(request, "channel_id"), self._int(request, "message_id"))
        emoji = request.match_info["emoji"]
        who = request.match_info["user"]
        user_id = self.bot_user_id if who == "@me" else int(who)
        msg.reactions.get(emoji, set()).discard(user_id)
        self._reaction_event("MESSAGE_REACTION_REMOVE", msg, emoji, user_id)
        return _no_content()

    async def _h_pin(self, request: web.Request) -> web.StreamResponse:
        msg = self._message_or_404(self._int(request, "channel_id"), self._int(request, "message_id"))
        msg.pinned = request.method == "PUT"
        return _no_content()

    # ------------------------------------------------------------------ REST: threads

    def _new_thread(
        self,
        parent_id: int,
        name: str,
        owner_id: int,
        *,
        thread_id: int | None = None,
        thread_type: int = CH_PUBLIC_THREAD,
        auto_archive_duration: int = 4320,
        rate_limit_per_user: int = 0,
        invitable: bool = True,
    ) -> JSON:
        if not 1 <= len(name) <= 100:
            raise _invalid_form("name", "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 100 in length.")
        if auto_archive_duration not in (60, 1440, 4320, 10080):
            raise _invalid_form(
                "auto_archive_duration", "BASE_TYPE_CHOICES", "Value must be one of {60, 1440, 4320, 10080}."
            )
        tid = thread_id if thread_id is not None else self._ids.next()
        now = _now_iso()
        meta: JSON = {
            "archived": False,
            "auto_archive_duration": auto_archive_duration,
            "archive_timestamp": now,
            "locked": False,
            "create_timestamp": now,
        }
        if thread_type == CH_PRIVATE_THREAD:
            meta["invitable"] = invitable
        thread: JSON = {
            "id": str(tid),
            "type": thread_type,
            "guild_id": str(self.guild_id),
            "parent_id": str(parent_id),
            "owner_id": str(owner_id),
            "name": name,
            "last_message_id": None,
            "message_count": 0,
            "total_message_sent": 0,
            "member_count": 1,
            "rate_limit_per_user": rate_limit_per_user,
            "flags": 0,
            "applied_tags": [],
            "thread_metadata": meta,
        }
        self.threads[tid] = thread
        self.channels[tid] = thread
        self._thread_members.setdefault(tid, set()).add(owner_id)
        return thread

    def _announce_thread(self, thread: JSON, owner_id: int) -> JSON:
        event = dict(thread)
        event["newly_created"] = True
        if owner_id == self.bot_user_id:
            event["member"] = {
                "id": thread["id"],
                "user_id": str(owner_id),
                "join_timestamp": thread["thread_metadata"]["create_timestamp"],
                "flags": 1,
            }
        self._emit("THREAD_CREATE", event)
        return event

    def _parent_text_channel(self, channel_id: int) -> JSON:
        channel = self._channel_or_404(channel_id)
        if channel["type"] not in (CH_TEXT, 5):
            raise ApiError(400, 50024, "Cannot execute action on this channel type")
        return channel

    async def _h_thread_from_message(self, request: web.Request) -> web.StreamResponse:
        channel_id = self._int(request, "channel_id")
        self._parent_text_channel(channel_id)
        msg = self._message_or_404(channel_id, self._int(request, "message_id"))
        if msg.thread_id is not None or msg.id in self.threads:
            raise ApiError(400, 160004, "A thread has already been created for this message")
        body, _ = await self._read_body(request)
        thread = self._new_thread(
            channel_id,
            str(body.get("name") or ""),
            self.bot_user_id,
            thread_id=msg.id,
            auto_archive_duration=int(body.get("auto_archive_duration") or 4320),
            rate_limit_per_user=int(body.get("rate_limit_per_user") or 0),
        )
        msg.thread_id = msg.id
        self._announce_thread(thread, self.bot_user_id)
        return _json_response(self._thread_response(thread), 201)

    def _thread_response(self, thread: JSON) -> JSON:
        out = dict(thread)
        out["member"] = {
            "id": thread["id"],
            "user_id": str(self.bot_user_id),
            "join_timestamp": thread["thread_metadata"]["create_timestamp"],
            "flags": 1,
        }
        return out

    async def _h_thread_without_message(self, request: web.Request) -> web.StreamResponse:
        channel_id = self._int(request, "channel_id")
        self._parent_text_channel(channel_id)
        body, _ = await self._read_body(request)
        thread_type = int(body.get("type") or CH_PRIVATE_THREAD)
        if thread_type not in (CH_PUBLIC_THREAD, CH_PRIVATE_THREAD):
            raise _invalid_form("type", "BASE_TYPE_CHOICES", "Value must be one of {11, 12}.")
        thread = self._new_thread(
            channel_id,
            str(body.get("name") or ""),
            self.bot_user_id,
            thread_type=thread_type,
            auto_archive_duration=int(body.get("auto_archive_duration") or 4320),
            rate_limit_per_user=int(body.get("rate_limit_per_user") or 0),
            invitable=bool(body.get("invitable", True)),
        )
        self._announce_thread(thread, self.bot_user_id)
        return _json_response(self._thread_response(thread), 201)

    async def _h_thread_member(self, request: web.Request) -> web.StreamResponse:
        channel_id = self._int(request, "channel_id")
        thread = self.threads.get(channel_id)
        if thread is None:
            raise ApiError(404, 10003, "Unknown Channel")
        who = request.match_info["user"]
        user_id = self.bot_user_id if who == "@me" else int(who)
        self._user_or_404(user_id)
        members = self._thread_members.setdefault(channel_id, set())
        if request.method == "PUT":
            members.add(user_id)
        else:
            members.discard(user_id)
        thread["member_count"] = len(members)
        return _no_content()

    # ------------------------------------------------------------------ REST: interactions & webhooks

    async def _h_callback(self, request: web.Request) -> web.StreamResponse:
        arrived = time.monotonic()
        inter = self.interactions.get(self._int(request, "interaction_id"))
        if inter is None or inter.token != request.match_info["token"]:
            raise ApiError(404, 10062, "Unknown interaction")
        body, files = await self._read_body(request)
        try:
            if inter.response_type is not None:
                raise ApiError(400, 40060, "Interaction has already been acknowledged.")
            if arrived - inter.dispatched_at > self.interaction_deadline:
                raise ApiError(404, 10062, "Unknown interaction")
            resource = self._apply_callback(inter, body, files)
        except ApiError as exc:
            inter.callback_errors.append((exc.status, exc.code))
            inter._callback_event.set()
            raise
        inter.callback_delay = arrived - inter.dispatched_at
        inter._callback_event.set()
        if "with_response" not in request.query:
            return _no_content()
        info: JSON = {"id": str(inter.id), "type": inter.type}
        cb_type = resource["type"]
        message = inter.message if cb_type in (CB_MESSAGE, CB_DEFERRED_MESSAGE, CB_UPDATE) else None
        if message is not None:
            info["response_message_id"] = str(message.id)
            info["response_message_loading"] = cb_type == CB_DEFERRED_MESSAGE
            info["response_message_ephemeral"] = message.ephemeral
        return _json_response({"interaction": info, "resource": resource})

    def _apply_callback(
        self, inter: Interaction, body: JSON, files: dict[str, tuple[str, bytes, str]]
    ) -> JSON:
        cb_type = body.get("type")
        data: JSON = body.get("data") or {}
        allowed = {
            IT_APPLICATION_COMMAND: (CB_MESSAGE, CB_DEFERRED_MESSAGE, CB_MODAL),
            IT_COMPONENT: (CB_MESSAGE, CB_DEFERRED_MESSAGE, CB_DEFERRED_UPDATE, CB_UPDATE, CB_MODAL),
            IT_AUTOCOMPLETE: (CB_AUTOCOMPLETE,),
            IT_MODAL_SUBMIT: (CB_MESSAGE, CB_DEFERRED_MESSAGE, CB_DEFERRED_UPDATE, CB_UPDATE),
        }[inter.type]
        if cb_type not in allowed:
            raise _invalid_form(
                "type", "INTERACTION_RESPONSE_TYPE_INVALID", f"Invalid response type {cb_type}"
            )
        resource: JSON = {"type": cb_type}
        if cb_type in (CB_MESSAGE, CB_DEFERRED_MESSAGE):
            ephemeral = int(data.get("flags") or 0) & FLAG_EPHEMERAL
            msg_type = 20 if inter.type == IT_APPLICATION_COMMAND else 0
            if cb_type == CB_MESSAGE:
                msg = self._new_message(
                    inter.channel_id,
                    self.bot_user_id,
                    data,
                    files,
                    msg_type=msg_type,
                    interaction=inter,
                    extra_flags=ephemeral,
                )
                self._check_not_empty(msg)
            else:
                msg = self._new_message(
                    inter.channel_id,
                    self.bot_user_id,
                    {},
                    {},
                    msg_type=msg_type,
                    interaction=inter,
                    extra_flags=ephemeral | FLAG_LOADING,
                )
            self._store_new_message(msg)
            self.write_log.append((time.monotonic(), msg.channel_id, "callback"))
            inter.message = msg
            self._announce_create(msg)
            resource["message"] = self.message_payload(msg)
        elif cb_type in (CB_DEFERRED_UPDATE, CB_UPDATE):
            target = self.messages.get(inter.target_message_id or 0)
            if target is None or target.deleted:
                raise ApiError(404, 10008, "Unknown Message")
            if cb_type == CB_UPDATE:
                self._edit_message(target, data, files)
                self._record_edit(target)
                self.write_log.append((time.monotonic(), target.channel_id, "callback"))
            inter.message = target
            resource["message"] = self.message_payload(target)
        elif cb_type == CB_AUTOCOMPLETE:
            choices = data.get("choices") or []
            if len(choices) > 25:
                raise _too_long("data.choices", 25)
            inter.choices = choices
        elif cb_type == CB_MODAL:
            inter.modal = data
        inter.response_type = cb_type
        inter.response_data = data
        return resource

    def _webhook_interaction(self, request: web.Request) -> Interaction:
        if request.match_info["app_id"] != str(self.application_id):
            raise ApiError(404, 10015, "Unknown Webhook")
        inter = self._interactions_by_token.get(request.match_info["token"])
        if inter is None:
            raise ApiError(404, 10015, "Unknown Webhook")
        if time.monotonic() - inter.dispatched_at > self.interaction_token_lifetime:
            raise ApiError(401, 50027, "Invalid Webhook Token")
        if inter.response_type is None:
            raise ApiError(404, 10015, "Unknown Webhook")
        return inter

    def _webhook_message(self, inter: Interaction, message_ref: str) -> tuple[Msg, bool]:
        """(message, is_original) for ``@original`` or a message id belonging to the interaction."""
        if message_ref == "@original":
            if inter.message is None or inter.message.deleted:
                raise ApiError(404, 10008, "Unknown Message")
            return inter.message, True
        try:
            message_id = int(message_ref)
        except ValueError:
            raise ApiError(404, 10008, "Unknown Message") from None
        if inter.message is not None and inter.message.id == message_id and not inter.message.deleted:
            return inter.message, True
        for msg in inter.followups:
            if msg.id == message_id and not msg.deleted:
                return msg, False
        raise ApiError(404, 10008, "Unknown Message")

    async def _h_webhook_get(self, request: web.Request) -> web.StreamResponse:
        inter = self._webhook_interaction(request)
        msg, _ = self._webhook_message(inter, request.match_info["message_id"])
        return _json_response(self.message_payload(msg))

    async def _h_webhook_edit(self, request: web.Request) -> web.StreamResponse:
        inter = self._webhook_interaction(request)
        msg, is_original = self._webhook_message(inter, request.match_info["message_id"])
        payload, files = await self._read_body(request)
        kind = "original_edit" if is_original else "followup_edit"
        snapshot = (msg.content, msg.embeds, msg.components, msg.attachments, msg.flags, msg.allowed_mentions)
        was_loading = msg.loading
        try:
            self._edit_message(msg, payload, files)
            if not (msg.content or msg.embeds or msg.attachments or msg.components):
                raise ApiError(400, 50006, "Cannot send an empty message")
            self._rate_check(msg.channel_id, kind)
        except ApiError:
            msg.content, msg.embeds, msg.components, msg.attachments, msg.flags, msg.allowed_mentions = (
                snapshot
            )
            raise
        headers = self._rate_commit(msg.channel_id, kind)
        self._record_edit(msg, clear_loading=was_loading)
        return _json_response(self.message_payload(msg), headers=headers)

    async def _h_webhook_delete(self, request: web.Request) -> web.StreamResponse:
        inter = self._webhook_interaction(request)
        msg, _ = self._webhook_message(inter, request.match_info["message_id"])
        self._mark_deleted(msg)
        return _no_content()

    async def _h_followup(self, request: web.Request) -> web.StreamResponse:
        inter = self._webhook_interaction(request)
        payload, files = await self._read_body(request)
        wait = request.query.get("wait", "false").lower() in ("1", "true")
        channel_id = int(request.query.get("thread_id") or inter.channel_id)
        original = inter.message
        if (
            original is not None
            and original.loading
            and not original.deleted
            and inter.response_type == CB_DEFERRED_MESSAGE
        ):
            # Discord: the first followup after a "thinking" defer replaces the loading message.
            snapshot = (
                original.content,
                original.embeds,
                original.components,
                original.attachments,
                original.flags,
            )
            try:
                self._edit_message(original, payload, files)
                self._check_not_empty(original)
                self._rate_check(original.channel_id, "followup")
            except ApiError:
                (
                    original.content,
                    original.embeds,
                    original.components,
                    original.attachments,
                    original.flags,
                ) = snapshot
                raise
            headers = self._rate_commit(original.channel_id, "followup")
            self._record_edit(original, clear_loading=True)
            return (
                _json_response(self.message_payload(original), headers=headers)
                if wait
                else _no_content(headers)
            )
        self._channel_or_404(channel_id)
        ephemeral = int(payload.get("flags") or 0) & FLAG_EPHEMERAL
        msg = self._new_message(
            channel_id, self.bot_user_id, payload, files, interaction=inter, extra_flags=ephemeral
        )
        self._check_not_empty(msg)
        self._rate_check(channel_id, "followup")
        headers = self._rate_commit(channel_id, "followup")
        self._store_new_message(msg)
        inter.followups.append(msg)
        self._announce_create(msg)
        return _json_response(self.message_payload(msg), headers=headers) if wait else _no_content(headers)

    async def _h_attachment(self, request: web.Request) -> web.StreamResponse:
        try:
            attachment_id = int(request.match_info["attachment_id"])
        except ValueError:
            raise ApiError(404, 0, "Not Found") from None
        stored = self.files.get(attachment_id)
        if stored is None:
            return web.Response(status=404, text="Not Found")
        _, data, ctype = stored
        return web.Response(body=data, headers={"Content-Type": ctype})

    # ------------------------------------------------------------------ simulated users

    def _require_session(self) -> None:
        if not self._sessions:
            raise RuntimeError("no gateway client has identified; call wait_ready() first")

    def _interaction_base(
        self, itype: int, user_id: int, channel_id: int, guild: bool
    ) -> tuple[Interaction, JSON]:
        if user_id not in self.users:
            raise ValueError(f"unknown user {user_id}")
        channel = self.channels.get(channel_id)
        if channel is None:
            raise ValueError(f"unknown channel {channel_id}")
        inter_id = self._ids.next()
        token = "aW50ZXJhY3Rpb246" + secrets.token_urlsafe(48)
        payload: JSON = {
            "id": str(inter_id),
            "application_id": str(self.application_id),
            "type": itype,
            "token": token,
            "version": 1,
            "channel_id": str(channel_id),
            "channel": dict(channel),
            "locale": "en-US",
            "entitlements": [],
            "attachment_size_limit": ATTACHMENT_SIZE_LIMIT,
            "app_permissions": str(self.user_permissions(self.bot_user_id)),
        }
        guild_id: int | None = None
        if guild:
            if "guild_id" not in channel:
                raise ValueError(f"channel {channel_id} is not a guild channel")
            if user_id not in self.members:
                raise ValueError(f"user {user_id} is not a guild member")
            guild_id = self.guild_id
            member = self._member_payload(user_id)
            member["permissions"] = str(self.user_permissions(user_id))
            payload.update(
                {
                    "guild_id": str(guild_id),
                    "guild": {"id": str(guild_id), "locale": "en-US", "features": []},
                    "guild_locale": "en-US",
                    "member": member,
                    "authorizing_integration_owners": {"0": str(guild_id)},
                    "context": 0,
                }
            )
        else:
            if channel["type"] != CH_DM:
                raise ValueError("guild=False needs a DM channel")
            payload.update(
                {
                    "user": dict(self.users[user_id]),
                    "authorizing_integration_owners": {"0": "0"},
                    "context": 1,
                }
            )
        inter = Interaction(
            id=inter_id,
            token=token,
            type=itype,
            channel_id=channel_id,
            guild_id=guild_id,
            user_id=user_id,
            payload=payload,
        )
        return inter, payload

    async def _dispatch_interaction(self, inter: Interaction) -> None:
        self.interactions[inter.id] = inter
        self._interactions_by_token[inter.token] = inter
        inter.dispatched_at = time.monotonic()
        self._emit("INTERACTION_CREATE", inter.payload)
        await self._flush()

    def _command_options(
        self,
        cmd: JSON | None,
        options: dict[str, Any],
        subcommand: list[str] | None,
        attachments: dict[str, tuple[str, bytes, str]] | None,
        channel_id: int,
        focused: str | None,
    ) -> tuple[list[JSON], JSON]:
        path = list(subcommand or [])
        level: list[JSON] | None = cmd.get("options", []) if cmd else None
        path_types: list[int] = []
        for depth, name in enumerate(path):
            found = next((o for o in level or [] if o["name"] == name), None) if level is not None else None
            if level is not None and cmd is not None and found is None:
                raise ValueError(f"command {cmd['name']!r} has no subcommand {name!r}")
            if found is not None:
                path_types.append(found["type"])
                level = found.get("options", [])
            else:
                path_types.append(OPT_SUB_COMMAND_GROUP if depth < len(path) - 1 else OPT_SUB_COMMAND)
                level = None
        defs = {o["name"]: o for o in level or []}
        resolved: JSON = {}
        leaf: list[JSON] = []
        values = dict(options)
        if focused is not None and focused not in values:
            values[focused] = ""
        for name, value in values.items():
            odef = defs.get(name)
            if level is not None and odef is None:
                raise ValueError(f"unknown option {name!r} (known: {sorted(defs)})")
            otype = odef["type"] if odef else self._infer_type(value)
            leaf.append(self._option_value(name, otype, value, resolved, focused == name))
        for name, (filename, data, ctype) in (attachments or {}).items():
            att = self._attachment_payload(channel_id, filename, data, ctype)
            att["ephemeral"] = True
            resolved.setdefault("attachments", {})[att["id"]] = att
            leaf.append({"name": name, "type": OPT_ATTACHMENT, "value": att["id"]})
        if focused is None and level is not None:
            given = {o["name"] for o in leaf}
            missing = [o["name"] for o in level if o.get("required") and o["name"] not in given]
            if missing:
                raise ValueError(f"missing required options {missing}")
        result = leaf
        for name, otype in reversed(list(zip(path, path_types, strict=True))):
            result = [{"name": name, "type": otype, "options": result}]
        return result, resolved

    @staticmethod
    def _infer_type(value: Any) -> int:
        if isinstance(value, bool):
            return OPT_BOOLEAN
        if isinstance(value, int):
            return OPT_INTEGER
        if isinstance(value, float):
            return OPT_NUMBER
        return OPT_STRING

    def _option_value(self, name: str, otype: int, value: Any, resolved: JSON, focused: bool) -> JSON:
        opt: JSON = {"name": name, "type": otype}
        if focused:
            opt["value"] = value if isinstance(value, str) else str(value)
            opt["focused"] = True
            return opt
        if otype == OPT_INTEGER:
            opt["value"] = int(value)
        elif otype == OPT_NUMBER:
            opt["value"] = float(value)
        elif otype == OPT_BOOLEAN:
            opt["value"] = bool(value)
        elif otype in (OPT_USER, OPT_MENTIONABLE) and int(value) in self.users:
            uid = int(value)
            opt["value"] = str(uid)
            resolved.setdefault("users", {})[str(uid)] = dict(self.users[uid])
            if uid in self.members:
                member = self._member_partial(uid)
                member["permissions"] = str(self.user_permissions(uid))
                resolved.setdefault("members", {})[str(uid)] = member
        elif otype == OPT_CHANNEL:
            ch = self.channels[int(value)]
            opt["value"] = ch["id"]
            partial: JSON = {
                k: ch[k] for k in ("id", "type", "name", "parent_id", "thread_metadata") if k in ch
            }
            partial["permissions"] = str(PERMS_ALL)
            resolved.setdefault("channels", {})[ch["id"]] = partial
        elif otype in (OPT_ROLE, OPT_MENTIONABLE):
            opt["value"] = str(int(value))
            resolved.setdefault("roles", {})[str(int(value))] = self.roles[int(value)]
        elif otype == OPT_ATTACHMENT:
            filename, data, ctype = value
            att = self._attachment_payload(self.text_channel_id, filename, data, ctype)
            att["ephemeral"] = True
            resolved.setdefault("attachments", {})[att["id"]] = att
            opt["value"] = att["id"]
        else:
            opt["value"] = str(value)
        return opt

    def _command_data(
        self,
        name: str,
        options: dict[str, Any] | None,
        subcommand: list[str] | None,
        attachments: dict[str, tuple[str, bytes, str]] | None,
        channel_id: int,
        guild: bool,
        focused: str | None = None,
    ) -> JSON:
        cmd = self.find_command(name, self.guild_id if guild else None)
        opts, resolved = self._command_options(
            cmd, options or {}, subcommand, attachments, channel_id, focused
        )
        data: JSON = {"id": cmd["id"] if cmd else str(self._ids.next()), "name": name, "type": 1}
        if opts:
            data["options"] = opts
        if resolved:
            data["resolved"] = resolved
        if cmd is not None and "guild_id" in cmd:
            data["guild_id"] = cmd["guild_id"]
        return data

    def _default_channel(self, channel_id: int | None, user_id: int, guild: bool) -> int:
        if channel_id is not None:
            return channel_id
        return self.text_channel_id if guild else self._dm_channel(user_id)

    async def slash(
        self,
        name: str,
        options: dict[str, Any] | None = None,
        *,
        user_id: int,
        channel_id: int | None = None,
        subcommand: list[str] | None = None,
        attachments: dict[str, tuple[str, bytes, str]] | None = None,
        guild: bool = True,
    ) -> Interaction:
        """Dispatch a chat-input command interaction (type 2); returns at once (see wait_response).

        Like Discord, refuses (PermissionError) when the synced command's `default_member_permissions`
        are not all held by the member, and a guild-only command used in a DM.
        """
        self._require_session()
        self.check_command_permissions(name, user_id, guild=guild)
        channel_id = self._default_channel(channel_id, user_id, guild)
        inter, payload = self._interaction_base(IT_APPLICATION_COMMAND, user_id, channel_id, guild)
        payload["data"] = self._command_data(name, options, subcommand, attachments, channel_id, guild)
        await self._dispatch_interaction(inter)
        return inter

    async def autocomplete(
        self,
        name: str,
        options: dict[str, Any],
        focused: str,
        *,
        user_id: int,
        channel_id: int | None = None,
        subcommand: list[str] | None = None,
        guild: bool = True,
        timeout: float = 5,  # noqa: ASYNC109
    ) -> list[JSON]:
        """Dispatch an autocomplete interaction (type 4) and return the choices the bot answered."""
        self._require_session()
        channel_id = self._default_channel(channel_id, user_id, guild)
        inter, payload = self._interaction_base(IT_AUTOCOMPLETE, user_id, channel_id, guild)
        payload["data"] = self._command_data(
            name, options, subcommand, None, channel_id, guild, focused=focused
        )
        await self._dispatch_interaction(inter)
        await inter.wait_response(timeout)
        if inter.choices is None:
            raise AssertionError(f"autocomplete was not answered with type 8: {inter.callback_errors}")
        return inter.choices

    def _find_component(self, msg: Msg, custom_id: str) -> JSON:
        for comp in msg.iter_components():
            if comp.get("custom_id") == custom_id:
                return comp
        raise ValueError(f"message {msg.id} has no component with custom_id {custom_id!r}")

    async def click(
        self,
        message_id: int,
        custom_id: str,
        *,
        user_id: int,
        values: list[str] | None = None,
    ) -> Interaction:
        """Dispatch a component interaction (type 3) for a button or select on ``message_id``."""
        self._require_session()
        msg = self.messages.get(message_id)
        if msg is None or msg.deleted:
            raise ValueError(f"unknown message {message_id}")
        comp = self._find_component(msg, custom_id)
        if comp.get("disabled"):
            raise ValueError(f"component {custom_id!r} is disabled")
        guild = self._is_guild_channel(msg.channel_id)
        inter, payload = self._interaction_base(IT_COMPONENT, user_id, msg.channel_id, guild)
        inter.target_message_id = msg.id
        data: JSON = {"custom_id": custom_id, "component_type": comp.get("type", 2)}
        if comp.get("type") in (3, 5, 6, 7, 8):
            data["values"] = list(values or [])
        payload["data"] = data
        payload["message"] = self.message_payload(msg)
        await self._dispatch_interaction(inter)
        return inter

    async def submit_modal(
        self,
        interaction: Interaction,
        values: dict[str, str],
        *,
        user_id: int | None = None,
    ) -> Interaction:
        """Submit the modal the bot opened in ``interaction``.

        ``values`` maps a text input's custom_id or label to the typed text; inputs left out are sent
        empty. The submission mirrors the modal's layout (action rows or Label components).
        """
        self._require_session()
        modal = interaction.modal
        if modal is None:
            raise ValueError("the bot did not answer that interaction with a modal")
        uid = interaction.user_id if user_id is None else user_id
        guild = interaction.guild_id is not None
        inter, payload = self._interaction_base(IT_MODAL_SUBMIT, uid, interaction.channel_id, guild)
        remaining = dict(values)

        def answer(text_input: JSON, label: str | None) -> JSON:
            custom_id = text_input.get("custom_id")
            value = ""
            for key in (custom_id, label, text_input.get("label")):
                if key is not None and key in remaining:
                    value = remaining.pop(key)
                    break
            if text_input.get("required", True) and not value:
                raise ValueError(f"required text input {label or custom_id!r} has no value")
            return {"type": 4, "id": text_input.get("id", 0), "custom_id": custom_id, "value": value}

        submitted: list[JSON] = []
        for comp in modal.get("components") or []:
            if comp.get("type") == 1:
                inner = [answer(c, None) for c in comp.get("components") or [] if c.get("type") == 4]
                submitted.append({"type": 1, "id": comp.get("id", 0), "components": inner})
            elif comp.get("type") == 18 and (comp.get("component") or {}).get("type") == 4:
                submitted.append(
                    {
                        "type": 18,
                        "id": comp.get("id", 0),
                        "component": answer(comp["component"], comp.get("label")),
                    }
                )
        if remaining:
            raise ValueError(f"the modal has no text inputs {sorted(remaining)}")
        payload["data"] = {"custom_id": modal.get("custom_id"), "components": submitted}
        if interaction.target_message_id is not None:
            inter.target_message_id = interaction.target_message_id
            payload["message"] = self.message_payload(self.messages[interaction.target_message_id])
        await self._dispatch_interaction(inter)
        return inter

    async def post_message(
        self,
        channel_id: int,
        content: str,
        *,
        user_id: int,
        attachments: list[tuple[str, bytes, str]] | None = None,
        mentions_bot: bool = False,
        reply_to: int | None = None,
    ) -> JSON:
        """Store a message as if ``user_id`` sent it and dispatch MESSAGE_CREATE; returns its payload.

        ``mentions_bot`` prefixes ``<@bot_id>`` to the content unless it already mentions the bot.
        """
        if user_id not in self.users:
            raise ValueError(f"unknown user {user_id}")
        if channel_id not in self.channels:
            raise ValueError(f"unknown channel {channel_id}")
        bot_mentions = (f"<@{self.bot_user_id}>", f"<@!{self.bot_user_id}>")
        if mentions_bot and not any(m in content for m in bot_mentions):
            content = f"<@{self.bot_user_id}> {content}"
        msg = Msg(id=self._ids.next(), channel_id=channel_id, author_id=user_id, content=content)
        if reply_to is not None:
            msg.message_reference = self._resolve_reference(
                channel_id, {"message_reference": {"message_id": reply_to}}
            )
            msg.type = 19
        for filename, data, ctype in attachments or []:
            msg.attachments.append(self._attachment_payload(channel_id, filename, data, ctype))
        self._compute_mentions(msg, by_bot=False)
        self._store_new_message(msg)
        payload = self.message_payload(msg, gateway=True)
        self._emit("MESSAGE_CREATE", payload)
        await self._flush()
        return payload

    async def edit_user_message(self, message_id: int, content: str) -> JSON:
        """Edit a user's message and dispatch MESSAGE_UPDATE."""
        msg = self.messages[message_id]
        msg.content = content
        self._compute_mentions(msg, by_bot=False)
        msg.edits.append(content)
        msg.edit_times.append(time.monotonic())
        msg.edited_timestamp = _now_iso()
        payload = self.message_payload(msg, gateway=True)
        self._emit("MESSAGE_UPDATE", payload)
        await self._flush()
        return payload

    async def delete_user_message(self, message_id: int) -> None:
        self._mark_deleted(self.messages[message_id])
        await self._flush()

    async def react(self, message_id: int, emoji: str, *, user_id: int) -> None:
        """A user adds a unicode reaction; dispatches MESSAGE_REACTION_ADD."""
        msg = self.messages[message_id]
        msg.reactions.setdefault(emoji, set()).add(user_id)
        self._reaction_event("MESSAGE_REACTION_ADD", msg, emoji, user_id)
        await self._flush()

    async def open_dm(self, user_id: int) -> int:
        """The DM channel id (type 1) between ``user_id`` and the bot."""
        if user_id not in self.users:
            raise ValueError(f"unknown user {user_id}")
        return self._dm_channel(user_id)
