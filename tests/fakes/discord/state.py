"""The fake Discord's world: one guild with its roles, members, text channels and threads, DM channels,
messages (:class:`Msg`), stored attachments, the synced commands, and the Discord objects built from them.
More guilds can be added (:meth:`World.add_guild`): light ones, each with one text channel, an
``@everyone`` role and the bot's role; every user counts as a member of them without roles, so Discord's
sharding can be exercised with as many guilds as a test needs (10,000 for the start-up benchmark).

Changes that Discord announces over the gateway are passed to :attr:`World.emit` (the gateway sets it).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import mimetypes
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import quote

import discord
import yarl

from tests.fakes.discord.validation import (
    JSON,
    ApiError,
    check_not_empty,
    invalid_form,
    validate_message,
    walk_components,
)

if TYPE_CHECKING:
    from tests.fakes.discord.interactions import Interaction

DISCORD_EPOCH_MS = 1_420_070_400_000
FLAG_EPHEMERAL = 1 << 6
FLAG_LOADING = 1 << 7
_SETTABLE_FLAGS = (1 << 2) | (1 << 12) | (1 << 15)  # suppress embeds, suppress notifications, components v2
CH_TEXT, CH_DM, CH_PUBLIC_THREAD = 0, 1, 11
ATTACHMENT_SIZE_LIMIT = 10 * 1024 * 1024

_P = discord.Permissions
PERMS_ALL = _P.all().value
PERMS_EVERYONE = _P(view_channel=True, send_messages=True, read_message_history=True, embed_links=True,
                    attach_files=True, use_application_commands=True, create_public_threads=True,
                    send_messages_in_threads=True).value
PERMS_BOT_ROLE = _P(manage_messages=True, manage_threads=True, mention_everyone=True).value
_MENTION_USER = re.compile(r"<@!?(\d+)>")
_MENTION_ROLE = re.compile(r"<@&(\d+)>")
# Message fields an edit replaces (copied back from the validated copy).
_EDITABLE = ("content", "embeds", "components", "attachments", "flags", "allowed_mentions", "mentions",
             "mention_roles", "mention_everyone")


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat()


class Snowflakes:
    def __init__(self) -> None:
        self._last = 0

    def next(self) -> int:
        value = max((int(time.time() * 1000) - DISCORD_EPOCH_MS) << 22 | 1 << 17, self._last + 1)
        self._last = value
        return value


def shard_of(guild_id: int | None, shard_count: int) -> int:
    """The shard Discord sends a guild's events to; direct messages (no guild) go to shard 0."""
    return 0 if guild_id is None else (guild_id >> 22) % shard_count


@dataclass
class LightGuild:
    """A guild beyond the main one: a text channel and the bot's role; everyone is a member without roles."""

    id: int
    name: str
    text_channel_id: int
    bot_role_id: int
    more_channels: int = 0  # text channels beyond the first, only listed in GUILD_CREATE (for size)
    more_roles: int = 0  # roles beyond @everyone and the bot's, likewise


@dataclass
class Msg:
    """A message as the fake stores it (the bot's and users')."""

    id: int
    channel_id: int
    author_id: int
    content: str = ""
    embeds: list[JSON] = field(default_factory=list)
    components: list[JSON] = field(default_factory=list)
    attachments: list[JSON] = field(default_factory=list)
    allowed_mentions: JSON | None = None
    flags: int = 0
    type: int = 0
    first_content: str = ""  # the content it was created with (the bot's messages)
    edits: list[str] = field(default_factory=list)  # the content after each accepted edit
    edit_times: list[float] = field(default_factory=list)  # monotonic time of each accepted edit
    created_at: float = field(default_factory=time.monotonic)
    timestamp: str = field(default_factory=now_iso)
    edited_timestamp: str | None = None
    deleted: bool = False
    interaction_id: int | None = None  # the interaction it answers (response or follow-up)
    webhook_id: int | None = None
    message_reference: JSON | None = None
    mentions: list[int] = field(default_factory=list)
    mention_roles: list[int] = field(default_factory=list)
    mention_everyone: bool = False
    thread_id: int | None = None  # a thread started from this message

    @property
    def ephemeral(self) -> bool:
        return bool(self.flags & FLAG_EPHEMERAL)

    @property
    def loading(self) -> bool:
        return bool(self.flags & FLAG_LOADING)

    def iter_components(self) -> Iterator[JSON]:
        """Every component in the message, depth first."""
        yield from walk_components(self.components)


def _user(user_id: int, name: str, *, bot: bool = False) -> JSON:
    user: JSON = {"id": str(user_id), "username": name, "discriminator": "4242" if bot else "0",
                  "global_name": None if bot else name.title(), "avatar": None, "public_flags": 0}
    return user | {"bot": True} if bot else user


def _role(role_id: int, name: str, permissions: int, position: int, *, managed: bool = False) -> JSON:
    return {"id": str(role_id), "name": name, "color": 0, "hoist": False, "position": position,
            "permissions": str(permissions), "managed": managed, "mentionable": False, "flags": 0}


class World:
    """State shared by the gateway, the REST routes and the interaction routes."""

    def __init__(self) -> None:
        self.ids = Snowflakes()
        self.application_id = self.bot_user_id = self.ids.next()
        self.owner_id = self.ids.next()
        self.guild_id = self.ids.next()
        self.text_channel_id = self.ids.next()
        self.admin_role_id = self.ids.next()
        self.manager_role_id = self.ids.next()
        self.bot_role_id = self.ids.next()
        self.base_url = ""  # set once the server listens (attachment URLs)
        self.emit: Callable[[str, JSON], None] = lambda event, data: None

        self.users: dict[int, JSON] = {self.bot_user_id: _user(self.bot_user_id, "FakeBot", bot=True),
                                       self.owner_id: _user(self.owner_id, "owner")}
        self.roles: dict[int, JSON] = {
            self.guild_id: _role(self.guild_id, "@everyone", PERMS_EVERYONE, 0),
            self.admin_role_id: _role(self.admin_role_id, "Admin", _P(administrator=True).value, 3),
            self.manager_role_id: _role(self.manager_role_id, "Manager", _P(manage_guild=True).value, 2),
            self.bot_role_id: _role(self.bot_role_id, "FakeBot", PERMS_BOT_ROLE, 1, managed=True)
            | {"tags": {"bot_id": str(self.bot_user_id)}},
        }
        self.members: dict[int, JSON] = {self.bot_user_id: {"roles": [self.bot_role_id], "joined_at": now_iso()},
                                         self.owner_id: {"roles": [], "joined_at": now_iso()}}
        self.channels: dict[int, JSON] = {}  # guild channels, threads and DMs by id
        self.threads: dict[int, JSON] = {}
        self.dm_channels: dict[int, int] = {}  # user id -> DM channel id
        self.messages: dict[int, Msg] = {}
        self.files: dict[int, tuple[str, bytes, str]] = {}  # attachment id -> (filename, data, content type)
        self.interactions: dict[int, Interaction] = {}
        self.commands: list[JSON] = []  # the global commands of the last bulk overwrite
        self.command_sync_count = 0
        self.light_guilds: dict[int, LightGuild] = {}
        self._guild_ms = self.guild_id >> 22  # the millisecond of the newest guild's id
        self._new_text_channel(self.text_channel_id, "general")

    # ------------------------------------------------------------------ guild, users, channels

    def _new_text_channel(self, channel_id: int, name: str, guild_id: int | None = None) -> JSON:
        guild_id = guild_id or self.guild_id
        position = 0 if guild_id != self.guild_id else sum(
            1 for c in self.channels.values() if c["type"] == CH_TEXT and c["guild_id"] == str(guild_id))
        channel = {"id": str(channel_id), "type": CH_TEXT, "guild_id": str(guild_id), "name": name,
                   "position": position, "permission_overwrites": [], "nsfw": False, "parent_id": None,
                   "last_message_id": None, "rate_limit_per_user": 0, "flags": 0}
        self.channels[channel_id] = channel
        return channel

    def add_user(self, name: str, *, admin: bool = False, manage_guild: bool = False) -> int:
        """Add a guild member; returns the user id. Dispatches GUILD_MEMBER_ADD."""
        user_id = self.ids.next()
        self.users[user_id] = _user(user_id, name)
        roles = [r for r, on in ((self.admin_role_id, admin), (self.manager_role_id, manage_guild)) if on]
        self.members[user_id] = {"roles": roles, "joined_at": now_iso()}
        self.emit("GUILD_MEMBER_ADD", {**self.member_payload(user_id), "guild_id": str(self.guild_id)})
        return user_id

    def add_text_channel(self, name: str, guild_id: int | None = None) -> int:
        """Add a text channel to the main guild (or `guild_id`); dispatches CHANNEL_CREATE."""
        channel_id = self.ids.next()
        self.emit("CHANNEL_CREATE", self._new_text_channel(channel_id, name, guild_id))
        return channel_id

    def add_guild(self, name: str | None = None, *, channels: int = 1, roles: int = 0) -> int:
        """Add a light guild with one text channel (the bot is in it); dispatches GUILD_CREATE.

        Guild ids are a millisecond apart (counted from the main guild's), so with N shards the main guild
        and the next N - 1 added fall on N different shards. Their low bits (1 << 16) are never those of
        other ids (1 << 17 and up), so they stay unique whatever the clock does. ``channels`` and ``roles``
        beyond the first channel and the bot's role only make GUILD_CREATE as big as a real server's."""
        self._guild_ms += 1
        guild_id = self._guild_ms << 22 | 1 << 16
        guild = LightGuild(guild_id, name or f"Guild {len(self.light_guilds) + 2}", self.ids.next(), self.ids.next(),
                           more_channels=max(0, channels - 1), more_roles=roles)
        self.light_guilds[guild_id] = guild
        self._new_text_channel(guild.text_channel_id, "general", guild_id)
        self.emit("GUILD_CREATE", self.guild_payload(guild_id))
        return guild_id

    @property
    def guild_ids(self) -> list[int]:
        """Every guild the bot is in: the main one first."""
        return [self.guild_id, *self.light_guilds]

    def text_channel_of(self, guild_id: int) -> int:
        return self.text_channel_id if guild_id == self.guild_id else self.light_guilds[guild_id].text_channel_id

    def is_member(self, user_id: int, guild_id: int) -> bool:
        return user_id in self.members if guild_id == self.guild_id else user_id in self.users

    def dm_channel(self, user_id: int) -> int:
        if user_id not in self.dm_channels:
            channel_id = self.dm_channels[user_id] = self.ids.next()
            self.channels[channel_id] = {"id": str(channel_id), "type": CH_DM, "last_message_id": None,
                                         "flags": 0, "recipients": [dict(self.users[user_id])]}
        return self.dm_channels[user_id]

    def guild_of(self, channel_id: int) -> int | None:
        guild_id = self.channels.get(channel_id, {}).get("guild_id")
        return None if guild_id is None else int(guild_id)

    def channel_or_404(self, channel_id: int) -> JSON:
        if channel_id not in self.channels:
            raise ApiError(404, 10003, "Unknown Channel")
        return self.channels[channel_id]

    def user_permissions(self, user_id: int, guild_id: int | None = None) -> int:
        """Guild-level permissions of a member (the owner and administrators get everything)."""
        if guild_id in self.light_guilds:
            if user_id == self.owner_id:
                return PERMS_ALL
            return PERMS_EVERYONE | (PERMS_BOT_ROLE if user_id == self.bot_user_id else 0)
        perms = int(self.roles[self.guild_id]["permissions"])
        for role_id in self.members.get(user_id, {}).get("roles", []):
            perms |= int(self.roles[role_id]["permissions"])
        return PERMS_ALL if user_id == self.owner_id or perms & _P(administrator=True).value else perms

    def find_command(self, name: str) -> JSON | None:
        """A synced chat-input command by name."""
        return next((c for c in self.commands if c["name"] == name and c.get("type", 1) == 1), None)

    def add_thread(self, parent_id: int, name: str, *, owner_id: int) -> int:
        """A public thread a member starts in a text channel (without a starter message)."""
        thread_id = self.ids.next()
        self.new_thread(parent_id, name, thread_id=thread_id, auto_archive_duration=1440, owner_id=owner_id)
        return thread_id

    def new_thread(self, parent_id: int, name: str, *, thread_id: int, auto_archive_duration: int,
                   owner_id: int | None = None) -> JSON:
        """A public thread (stored and announced with THREAD_CREATE), by the bot unless `owner_id` says."""
        if not 1 <= len(name) <= 100:
            raise invalid_form("name", "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 100 in length.")
        if auto_archive_duration not in (60, 1440, 4320, 10080):
            raise invalid_form("auto_archive_duration", "BASE_TYPE_CHOICES",
                               "Value must be one of {60, 1440, 4320, 10080}.")
        now = now_iso()
        thread: JSON = {
            "id": str(thread_id), "type": CH_PUBLIC_THREAD, "guild_id": self.channels[parent_id]["guild_id"],
            "parent_id": str(parent_id), "owner_id": str(owner_id or self.bot_user_id), "name": name,
            "last_message_id": None, "message_count": 0, "member_count": 1, "rate_limit_per_user": 0, "flags": 0,
            "thread_metadata": {"archived": False, "auto_archive_duration": auto_archive_duration,
                                "archive_timestamp": now, "locked": False, "create_timestamp": now},
        }
        if owner_id is None:  # the bot started it, so the bot is a member
            thread["member"] = {"id": str(thread_id), "user_id": str(self.bot_user_id), "join_timestamp": now,
                                "flags": 1}
        self.threads[thread_id] = self.channels[thread_id] = thread
        self.emit("THREAD_CREATE", {**thread, "newly_created": True})
        return thread

    # ------------------------------------------------------------------ payloads

    def member_partial(self, user_id: int, guild_id: int | None = None) -> JSON:
        light = self.light_guilds.get(guild_id or self.guild_id)
        if light is not None:
            roles = [light.bot_role_id] if user_id == self.bot_user_id else []
            member: JSON = {"roles": roles, "joined_at": self.members[self.bot_user_id]["joined_at"]}
        else:
            member = self.members[user_id]
        return {"roles": [str(r) for r in member["roles"]], "joined_at": member["joined_at"], "nick": None,
                "deaf": False, "mute": False, "flags": 0, "pending": False}

    def member_payload(self, user_id: int, guild_id: int | None = None) -> JSON:
        return {"user": dict(self.users[user_id]), **self.member_partial(user_id, guild_id)}

    def guild_payload(self, guild_id: int | None = None) -> JSON:
        """GUILD_CREATE's data (of the main guild by default)."""
        if guild_id is not None and guild_id != self.guild_id:
            return self._light_guild_payload(self.light_guilds[guild_id])
        return {
            "id": str(self.guild_id), "name": "Fake Guild", "icon": None, "owner_id": str(self.owner_id),
            "features": [], "emojis": [], "stickers": [], "roles": list(self.roles.values()),
            "channels": [c for c in self.channels.values()
                         if c["type"] == CH_TEXT and c["guild_id"] == str(self.guild_id)],
            "threads": [t for t in self.threads.values() if t["guild_id"] == str(self.guild_id)],
            "members": [self.member_payload(u) for u in self.members],
            "member_count": len(self.members), "large": False, "unavailable": False, "preferred_locale": "en-US",
            "joined_at": self.members[self.bot_user_id]["joined_at"], "voice_states": [], "presences": [],
        }

    def _decor_channel(self, guild: LightGuild, n: int) -> JSON:
        """A channel that only fills GUILD_CREATE (ids after the guild's roles: all below 1 << 17)."""
        return {"id": str(guild.id + 1 + guild.more_roles + n), "type": CH_TEXT, "guild_id": str(guild.id),
                "name": f"channel-{n}", "position": n + 1, "permission_overwrites": [], "nsfw": False,
                "parent_id": None, "last_message_id": None, "rate_limit_per_user": 0, "flags": 0,
                "topic": "a channel that is here to make the guild as big as a real one"}

    def _light_guild_payload(self, guild: LightGuild) -> JSON:
        """A small GUILD_CREATE: what a guild without the members and presences intents sends, and no more."""
        gid = str(guild.id)
        return {
            "id": gid, "name": guild.name, "icon": None, "owner_id": str(self.owner_id), "features": [],
            "emojis": [], "stickers": [], "large": False, "unavailable": False, "preferred_locale": "en-US",
            "roles": [_role(guild.id, "@everyone", PERMS_EVERYONE, 0),
                      _role(guild.bot_role_id, "FakeBot", PERMS_BOT_ROLE, 1, managed=True)
                      | {"tags": {"bot_id": str(self.bot_user_id)}},
                      *(_role(guild.id + 1 + n, f"role {n}", 0, 2 + n) for n in range(guild.more_roles))],
            "channels": [self.channels[guild.text_channel_id],
                         *(self._decor_channel(guild, n) for n in range(guild.more_channels))],
            "threads": [t for t in self.threads.values() if t["guild_id"] == gid],
            "members": [self.member_payload(self.bot_user_id, guild.id)], "member_count": len(self.users),
            "joined_at": self.members[self.bot_user_id]["joined_at"], "voice_states": [], "presences": [],
        }

    def message_payload(self, msg: Msg, *, gateway: bool = False, with_reference: bool = True) -> JSON:
        """The Discord message object (``gateway=True`` adds guild_id and member, as dispatches do)."""
        guild_id = self.guild_of(msg.channel_id)
        payload: JSON = {
            "id": str(msg.id), "channel_id": str(msg.channel_id), "type": msg.type, "content": msg.content,
            "author": dict(self.users[msg.author_id]), "attachments": [dict(a) for a in msg.attachments],
            "embeds": [dict(e) for e in msg.embeds], "components": msg.components, "flags": msg.flags,
            "mentions": [dict(self.users[u]) for u in msg.mentions], "mention_everyone": msg.mention_everyone,
            "mention_roles": [str(r) for r in msg.mention_roles], "pinned": False, "tts": False,
            "timestamp": msg.timestamp, "edited_timestamp": msg.edited_timestamp,
        }
        if msg.webhook_id is not None:
            payload |= {"webhook_id": str(msg.webhook_id), "application_id": str(self.application_id)}
        inter = self.interactions.get(msg.interaction_id or 0)
        if inter is not None:
            payload["interaction_metadata"] = {"id": str(inter.id), "type": inter.type,
                                               "user": dict(self.users[inter.user_id])}
        if msg.message_reference is not None:
            payload["message_reference"] = msg.message_reference
            ref = self.messages.get(int(msg.message_reference["message_id"]))
            if with_reference:
                payload["referenced_message"] = (None if ref is None or ref.deleted
                                                 else self.message_payload(ref, with_reference=False))
        if msg.thread_id in self.threads:
            payload["thread"] = dict(self.threads[msg.thread_id])
        if gateway and guild_id is not None:
            payload["guild_id"] = str(guild_id)
            if msg.webhook_id is None and self.is_member(msg.author_id, guild_id):
                payload["member"] = self.member_partial(msg.author_id, guild_id)
        return payload

    def attachment_payload(self, channel_id: int, filename: str, data: bytes, content_type: str | None) -> JSON:
        """Store the bytes on the fake CDN; returns the attachment object."""
        attachment_id = self.ids.next()
        if not content_type or content_type == "application/octet-stream":
            content_type = mimetypes.guess_type(filename)[0] or "application/octet-stream"
        self.files[attachment_id] = (filename, data, content_type)
        url = f"{self.base_url}/attachments/{channel_id}/{attachment_id}/{quote(filename, safe='')}"
        return {"id": str(attachment_id), "filename": filename, "size": len(data), "url": url, "proxy_url": url,
                "content_type": content_type}

    def file_bytes(self, attachment: JSON | str) -> bytes:
        """The stored bytes of an attachment (its payload or its URL)."""
        url = attachment if isinstance(attachment, str) else attachment["url"]
        return self.files[int(yarl.URL(url).path.split("/")[-2])][1]

    # ------------------------------------------------------------------ messages

    def channel_messages(self, channel_id: int, *, include_deleted: bool = False) -> list[Msg]:
        """Messages of a channel in creation order (deleted ones only if asked)."""
        return [m for m in self.messages.values()
                if m.channel_id == channel_id and (include_deleted or not m.deleted)]

    def bot_messages(self, channel_id: int | None = None) -> list[Msg]:
        """Messages the bot wrote and did not delete (optionally in one channel), in creation order."""
        return [m for m in self.messages.values() if m.author_id == self.bot_user_id and not m.deleted
                and (channel_id is None or m.channel_id == channel_id)]

    def delete_message(self, msg: Msg) -> None:
        """Mark a message deleted and dispatch MESSAGE_DELETE (whoever deleted it)."""
        msg.deleted = True
        data: JSON = {"id": str(msg.id), "channel_id": str(msg.channel_id)}
        if (guild_id := self.guild_of(msg.channel_id)) is not None:
            data["guild_id"] = str(guild_id)
        self.emit("MESSAGE_DELETE", data)

    def message_or_404(self, channel_id: int, message_id: int) -> Msg:
        msg = self.messages.get(message_id)
        if msg is None or msg.deleted or msg.channel_id != channel_id:
            raise ApiError(404, 10008, "Unknown Message")
        return msg

    def compute_mentions(self, msg: Msg, *, by_bot: bool) -> None:
        """Who the message pings, after the bot's ``allowed_mentions`` (users' messages ping freely)."""
        users = [int(u) for u in _MENTION_USER.findall(msg.content)]
        roles = [int(r) for r in _MENTION_ROLE.findall(msg.content)]
        everyone = "@everyone" in msg.content or "@here" in msg.content
        ref = self.messages.get(int((msg.message_reference or {}).get("message_id") or 0))
        reply_to = [ref.author_id] if ref is not None else []
        allowed = msg.allowed_mentions if by_bot else None
        if allowed is not None:
            parse = allowed.get("parse") or []
            users = [u for u in users if "users" in parse or str(u) in map(str, allowed.get("users") or [])]
            roles = [r for r in roles if "roles" in parse or str(r) in map(str, allowed.get("roles") or [])]
            everyone = everyone and "everyone" in parse
            reply_to = reply_to if allowed.get("replied_user") else []
        msg.mentions = [u for u in dict.fromkeys(users + reply_to) if u in self.users]
        msg.mention_roles = [r for r in dict.fromkeys(roles) if r in self.roles]
        msg.mention_everyone = everyone and (not by_bot or bool(
            self.user_permissions(self.bot_user_id) & _P(mention_everyone=True).value))

    def resolve_reference(self, channel_id: int, payload: JSON) -> JSON | None:
        ref = payload.get("message_reference")
        if not ref:
            return None
        ref_channel = int(ref.get("channel_id") or channel_id)
        target = self.messages.get(int(ref.get("message_id") or 0))
        if target is None or target.deleted or target.channel_id != ref_channel:
            if ref.get("fail_if_not_exists", True):
                raise invalid_form("message_reference", "MESSAGE_REFERENCE_UNKNOWN_MESSAGE", "Unknown message")
            return None
        out = {"type": 0, "message_id": str(target.id), "channel_id": str(ref_channel)}
        guild_id = self.guild_of(ref_channel)
        return out if guild_id is None else out | {"guild_id": str(guild_id)}

    def _attachments(self, msg: Msg, payload: JSON, files: dict[str, tuple[str, bytes, str]]) -> list[JSON]:
        """The attachment list after ``payload["attachments"]`` and the uploaded ``files[n]`` parts."""
        uploads = {re.sub(r"^files\[(\d+)\]$", r"\1", name): f for name, f in files.items()}
        if "attachments" not in payload and not uploads:
            return msg.attachments
        kept = {a["id"]: a for a in msg.attachments}
        result: list[JSON] = []
        for item in payload.get("attachments") or []:
            key = str(item.get("id"))
            if key in uploads:
                filename, data, ctype = uploads.pop(key)
                result.append(self.attachment_payload(msg.channel_id, item.get("filename") or filename, data, ctype))
            elif key in kept:
                result.append(kept[key])
        result += [self.attachment_payload(msg.channel_id, *f) for f in uploads.values()]
        if any(a["size"] > ATTACHMENT_SIZE_LIMIT for a in result):
            raise ApiError(413, 40005, "Request entity too large")
        return result

    def _apply(self, msg: Msg, payload: JSON, files: dict[str, tuple[str, bytes, str]], *, by_bot: bool) -> None:
        if "content" in payload:
            msg.content = payload["content"] or ""
        if "embeds" in payload:
            msg.embeds = [{"type": "rich", **e} for e in payload["embeds"] or []]
        if "components" in payload:
            msg.components = payload["components"] or []
        if "allowed_mentions" in payload:
            msg.allowed_mentions = payload["allowed_mentions"]
        if payload.get("flags") is not None:
            msg.flags = msg.flags & (FLAG_EPHEMERAL | FLAG_LOADING) | int(payload["flags"]) & _SETTABLE_FLAGS
        msg.attachments = self._attachments(msg, payload, files)
        validate_message({"content": msg.content, "embeds": msg.embeds, "components": msg.components,
                          "flags": msg.flags})
        self.compute_mentions(msg, by_bot=by_bot)

    def new_message(self, channel_id: int, payload: JSON, files: dict[str, tuple[str, bytes, str]], *,
                    msg_type: int = 0, flags: int = 0, interaction: Interaction | None = None) -> Msg:
        """Build and validate (but do not store) a message of the bot's from a create payload."""
        msg = Msg(id=self.ids.next(), channel_id=channel_id, author_id=self.bot_user_id, type=msg_type, flags=flags)
        msg.message_reference = self.resolve_reference(channel_id, payload)
        if msg.message_reference is not None and msg_type == 0:
            msg.type = 19
        if interaction is not None:
            msg.interaction_id, msg.webhook_id = interaction.id, self.application_id
        self._apply(msg, payload, files, by_bot=True)
        msg.first_content = msg.content
        if not msg.loading:
            check_not_empty(msg.content, msg.embeds, msg.attachments, msg.components)
        return msg

    def store_message(self, msg: Msg) -> None:
        """Store a new message and dispatch MESSAGE_CREATE (not for ephemeral ones)."""
        self.messages[msg.id] = msg
        channel = self.channels[msg.channel_id]
        channel["last_message_id"] = str(msg.id)
        if msg.channel_id in self.threads:
            channel["message_count"] += 1
        if not msg.ephemeral:
            self.emit("MESSAGE_CREATE", self.message_payload(msg, gateway=True))

    def prepare_edit(self, msg: Msg, payload: JSON, files: dict[str, tuple[str, bytes, str]]) -> Msg:
        """The message as the edit would leave it, validated; ``msg`` itself is not touched."""
        edited = dataclasses.replace(msg, flags=msg.flags & ~FLAG_LOADING)
        self._apply(edited, payload, files, by_bot=True)
        check_not_empty(edited.content, edited.embeds, edited.attachments, edited.components)
        return edited

    def commit_edit(self, msg: Msg, edited: Msg) -> None:
        """Apply a prepared edit, record it and dispatch MESSAGE_UPDATE (not for ephemeral messages)."""
        for name in _EDITABLE:
            setattr(msg, name, getattr(edited, name))
        msg.edits.append(msg.content)
        msg.edit_times.append(time.monotonic())
        msg.edited_timestamp = now_iso()
        if not msg.ephemeral:
            self.emit("MESSAGE_UPDATE", self.message_payload(msg, gateway=True))
