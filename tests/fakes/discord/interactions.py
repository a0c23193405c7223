"""Interactions: the fake's users use slash commands, autocomplete and buttons; the bot answers them.

Test-side drivers (each dispatches INTERACTION_CREATE and returns an :class:`Interaction` handle):
:meth:`Interactions.slash` (type 2; options are checked against the synced command, and like
Discord's client it refuses, with ``PermissionError``, a command whose ``default_member_permissions``
the member lacks, or a guild-only command in a DM), :meth:`Interactions.autocomplete` (type 4; waits
for and returns the choices) and :meth:`Interactions.click` (type 3, a button or select on a message).

Routes, all exempt from the global rate limit and needing no bot token, as on Discord:

* ``POST /interactions/{id}/{token}/callback``: types 4 (message), 5 (deferred message, "thinking"),
  6 (deferred update, components only) and 8 (autocomplete choices). A callback later than
  ``deadline`` (3 s) after the dispatch gets 404 code 10062, a second one 400 code 40060, another
  type 400 code 50035. Callbacks take no slot of the channel's write bucket.
* ``/webhooks/{application_id}/{token}``: ``POST`` a follow-up (the first one after a deferred
  message replaces the loading message, as on Discord), ``GET`` and ``PATCH`` ``messages/@original``
  or a follow-up's id. The token works for ``token_lifetime`` (15 minutes; 401 code 50027 after).
  Follow-ups and edits take a slot of the channel's write bucket (see ``ratelimits``).
"""

from __future__ import annotations

import asyncio
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.fakes.discord.gateway import Gateway
from tests.fakes.discord.ratelimits import RateLimits
from tests.fakes.discord.rest import API, BUCKET, Route, int_param, read_body
from tests.fakes.discord.state import ATTACHMENT_SIZE_LIMIT, CH_DM, FLAG_EPHEMERAL, FLAG_LOADING, Msg, World
from tests.fakes.discord.validation import JSON, ApiError, invalid_form, json_response, too_long

IT_COMMAND, IT_COMPONENT, IT_AUTOCOMPLETE = 2, 3, 4
CB_MESSAGE, CB_DEFERRED_MESSAGE, CB_DEFERRED_UPDATE, CB_AUTOCOMPLETE = 4, 5, 6, 8
_ALLOWED_CALLBACKS = {IT_COMMAND: (CB_MESSAGE, CB_DEFERRED_MESSAGE),
                      IT_COMPONENT: (CB_MESSAGE, CB_DEFERRED_MESSAGE, CB_DEFERRED_UPDATE),
                      IT_AUTOCOMPLETE: (CB_AUTOCOMPLETE,)}
OPT_SUB_COMMAND, OPT_SUB_COMMAND_GROUP, OPT_CHANNEL, OPT_ATTACHMENT = 1, 2, 7, 11
_CONVERT: dict[int, Any] = {4: int, 5: bool, 10: float}  # integer, boolean, number; the rest are strings
Upload = tuple[str, bytes, str]  # (filename, data, content type)


@dataclass(eq=False)
class Interaction:
    """Handle for an interaction the fake dispatched, and what the bot did with it."""

    id: int
    token: str
    type: int
    channel_id: int
    guild_id: int | None
    user_id: int
    payload: JSON = field(repr=False)  # the INTERACTION_CREATE data sent to the bot
    target_message_id: int | None = None  # component: the message it came from
    dispatched_at: float = field(default_factory=time.monotonic)
    response_type: int | None = None
    response_data: JSON | None = field(default=None, repr=False)
    callback_delay: float | None = None  # seconds from dispatch to the accepted callback
    callback_errors: list[tuple[int, int]] = field(default_factory=list)  # (status, code) of rejected callbacks
    message: Msg | None = field(default=None, repr=False)  # the response (or the clicked message after type 6)
    followups: list[Msg] = field(default_factory=list, repr=False)
    choices: list[JSON] | None = None  # autocomplete result
    answered: asyncio.Event = field(default_factory=asyncio.Event, repr=False)

    @property
    def ephemeral(self) -> bool:
        flags = int((self.response_data or {}).get("flags") or 0)
        if self.message is not None and self.response_type in (CB_MESSAGE, CB_DEFERRED_MESSAGE):
            flags |= self.message.flags
        return bool(flags & FLAG_EPHEMERAL)

    async def wait_response(self, timeout: float = 5) -> None:  # noqa: ASYNC109
        """Wait until a callback arrived (accepted or rejected); TimeoutError otherwise."""
        try:
            await asyncio.wait_for(self.answered.wait(), timeout)
        except TimeoutError:
            raise TimeoutError(f"interaction {self.id}: no callback within {timeout}s") from None


class Interactions:
    def __init__(self, world: World, limits: RateLimits, gateway: Gateway, *, deadline: float = 3.0,
                 token_lifetime: float = 15 * 60) -> None:
        self.world = world
        self.limits = limits
        self.gateway = gateway
        self.deadline = deadline
        self.token_lifetime = token_lifetime
        self._by_token: dict[str, Interaction] = {}

    def routes(self) -> list[Route]:
        hook, message = f"{API}/webhooks/{{app_id}}/{{token}}", "messages/{message_id}"
        return [
            ("POST", f"{API}/interactions/{{interaction_id:\\d+}}/{{token}}/callback", self._callback),
            ("POST", hook, self._followup),
            ("GET", f"{hook}/{message}", self._webhook_get),
            ("PATCH", f"{hook}/{message}", self._webhook_edit),
        ]

    # ------------------------------------------------------------------ the callback

    async def _callback(self, request: web.Request) -> web.StreamResponse:
        arrived = time.monotonic()
        inter = self.world.interactions.get(int_param(request, "interaction_id"))
        if inter is None or inter.token != request.match_info["token"]:
            raise ApiError(404, 10062, "Unknown interaction")
        body, files = await read_body(request)
        try:
            if inter.response_type is not None:
                raise ApiError(400, 40060, "Interaction has already been acknowledged.")
            if arrived - inter.dispatched_at > self.deadline:
                raise ApiError(404, 10062, "Unknown interaction")
            resource = self._apply_callback(inter, body.get("type"), body.get("data") or {}, files)
        except ApiError as exc:
            inter.callback_errors.append((exc.status, exc.code))
            inter.answered.set()
            raise
        inter.callback_delay = arrived - inter.dispatched_at
        inter.answered.set()
        if "with_response" not in request.query:
            return web.Response(status=204)
        info: JSON = {"id": str(inter.id), "type": inter.type}
        if inter.message is not None and resource["type"] in (CB_MESSAGE, CB_DEFERRED_MESSAGE):
            info |= {"response_message_id": str(inter.message.id), "response_message_ephemeral": inter.ephemeral,
                     "response_message_loading": inter.message.loading}
        return json_response({"interaction": info, "resource": resource})

    def _apply_callback(self, inter: Interaction, cb_type: Any, data: JSON, files: dict[str, Upload]) -> JSON:
        w = self.world
        if cb_type not in _ALLOWED_CALLBACKS[inter.type]:
            raise invalid_form("type", "INTERACTION_RESPONSE_TYPE_INVALID", f"Invalid response type {cb_type}")
        resource: JSON = {"type": cb_type}
        if cb_type in (CB_MESSAGE, CB_DEFERRED_MESSAGE):
            deferred = cb_type == CB_DEFERRED_MESSAGE
            flags = int(data.get("flags") or 0) & FLAG_EPHEMERAL | (FLAG_LOADING if deferred else 0)
            msg = w.new_message(inter.channel_id, {} if deferred else data, {} if deferred else files,
                                msg_type=20 if inter.type == IT_COMMAND else 0, flags=flags, interaction=inter)
            w.store_message(msg)
            self.limits.write_log.append((time.monotonic(), msg.channel_id, "callback"))
            inter.message = msg
            resource["message"] = w.message_payload(msg)
        elif cb_type == CB_DEFERRED_UPDATE:
            target = w.messages.get(inter.target_message_id or 0)
            if target is None or target.deleted:
                raise ApiError(404, 10008, "Unknown Message")
            inter.message = target
        elif cb_type == CB_AUTOCOMPLETE:
            if len(data.get("choices") or []) > 25:
                raise too_long("data.choices", 25)
            inter.choices = data.get("choices") or []
        inter.response_type = cb_type
        inter.response_data = data
        return resource

    # ------------------------------------------------------------------ webhook routes

    def _webhook_interaction(self, request: web.Request) -> Interaction:
        inter = self._by_token.get(request.match_info["token"])
        if inter is None or request.match_info["app_id"] != str(self.world.application_id):
            raise ApiError(404, 10015, "Unknown Webhook")
        if time.monotonic() - inter.dispatched_at > self.token_lifetime:
            raise ApiError(401, 50027, "Invalid Webhook Token")
        if inter.response_type is None:
            raise ApiError(404, 10015, "Unknown Webhook")
        return inter

    def _webhook_message(self, request: web.Request) -> tuple[Interaction, Msg]:
        inter = self._webhook_interaction(request)
        ref = request.match_info["message_id"]
        for msg in ([inter.message] if inter.message is not None else []) + inter.followups:
            if ((ref == "@original" and msg is inter.message) or ref == str(msg.id)) and not msg.deleted:
                request[BUCKET] = inter.id  # Discord keys a webhook's buckets by its token
                return inter, msg
        raise ApiError(404, 10008, "Unknown Message")

    async def _webhook_get(self, request: web.Request) -> web.StreamResponse:
        return json_response(self.world.message_payload(self._webhook_message(request)[1]))

    async def _webhook_edit(self, request: web.Request) -> web.StreamResponse:
        inter, msg = self._webhook_message(request)
        edited = self.world.prepare_edit(msg, *await read_body(request))
        kind = "original_edit" if msg is inter.message else "followup_edit"
        self.limits.check_channel(inter.id, kind)
        self.limits.commit_channel(inter.id, kind)
        self.world.commit_edit(msg, edited)
        return json_response(self.world.message_payload(msg))

    async def _followup(self, request: web.Request) -> web.StreamResponse:
        inter = self._webhook_interaction(request)
        payload, files = await read_body(request)
        original = inter.message
        if (original is not None and original.loading and not original.deleted
                and inter.response_type == CB_DEFERRED_MESSAGE):
            msg = original  # the first follow-up after a "thinking" defer replaces the loading message
            request[BUCKET] = inter.id
            edited = self.world.prepare_edit(msg, payload, files)
            self.limits.check_channel(inter.id, "followup")
            self.limits.commit_channel(inter.id, "followup")
            self.world.commit_edit(msg, edited)
        else:
            channel_id = int(request.query.get("thread_id") or inter.channel_id)
            self.world.channel_or_404(channel_id)
            request[BUCKET] = inter.id
            msg = self.world.new_message(channel_id, payload, files, interaction=inter,
                                         flags=int(payload.get("flags") or 0) & FLAG_EPHEMERAL)
            self.limits.check_channel(inter.id, "followup")
            self.limits.commit_channel(inter.id, "followup")
            self.world.store_message(msg)
            inter.followups.append(msg)
        if request.query.get("wait", "false").lower() in ("1", "true"):
            return json_response(self.world.message_payload(msg))
        return web.Response(status=204)

    # ------------------------------------------------------------------ test-side drivers

    def _check_permissions(self, command: JSON, user_id: int, guild: bool, channel_id: int | None = None) -> None:
        name = command["name"]
        if not guild and (command.get("dm_permission") is False or command.get("contexts") == [0]):
            raise PermissionError(f"/{name} cannot be used in direct messages")
        required = command.get("default_member_permissions")
        perms = self.world.user_permissions(user_id, self.world.guild_of(channel_id or 0))
        if guild and required is not None and perms & int(required) != int(required):
            raise PermissionError(f"Discord does not offer /{name} to this member (missing permissions)")

    def _new(self, itype: int, user_id: int, channel_id: int, guild: bool) -> Interaction:
        w = self.world
        self.gateway.require_session()
        if user_id not in w.users:
            raise ValueError(f"unknown user {user_id}")
        channel = w.channels.get(channel_id)
        if channel is None:
            raise ValueError(f"unknown channel {channel_id}")
        inter_id, token = w.ids.next(), "aW50ZXJhY3Rpb246" + secrets.token_urlsafe(48)
        payload: JSON = {
            "id": str(inter_id), "application_id": str(w.application_id), "type": itype, "token": token,
            "version": 1, "channel_id": str(channel_id), "channel": dict(channel), "locale": "en-US",
            "entitlements": [], "attachment_size_limit": ATTACHMENT_SIZE_LIMIT,
            "app_permissions": str(w.user_permissions(w.bot_user_id, w.guild_of(channel_id))),
        }
        guild_id = w.guild_of(channel_id)
        if guild:
            if guild_id is None or not w.is_member(user_id, guild_id):
                raise ValueError(f"user {user_id} in channel {channel_id}: not a guild member in a guild channel")
            member = w.member_payload(user_id, guild_id) | {"permissions": str(w.user_permissions(user_id, guild_id))}
            payload |= {"guild_id": str(guild_id), "guild": {"id": str(guild_id), "locale": "en-US", "features": []},
                        "guild_locale": "en-US", "member": member, "context": 0,
                        "authorizing_integration_owners": {"0": str(guild_id)}}
        else:
            if channel["type"] != CH_DM:
                raise ValueError("guild=False needs a DM channel")
            payload |= {"user": dict(w.users[user_id]), "context": 1, "authorizing_integration_owners": {"0": "0"}}
        return Interaction(id=inter_id, token=token, type=itype, channel_id=channel_id,
                           guild_id=guild_id if guild else None, user_id=user_id, payload=payload)

    async def _dispatch(self, inter: Interaction) -> None:
        self.world.interactions[inter.id] = self._by_token[inter.token] = inter
        inter.dispatched_at = time.monotonic()
        self.world.emit("INTERACTION_CREATE", inter.payload)
        await self.gateway.flush()

    def _command_data(self, command: JSON, options: dict[str, Any], subcommand: list[str] | None,
                      attachments: dict[str, Upload] | None, channel_id: int, focused: str | None = None,
                      user_id: int = 0) -> JSON:
        """``data`` of a command interaction, with options checked against the synced definition."""
        level: list[JSON] = command.get("options") or []
        path: list[tuple[str, int]] = []
        for name in subcommand or []:
            found = next((o for o in level if o["name"] == name
                          and o["type"] in (OPT_SUB_COMMAND, OPT_SUB_COMMAND_GROUP)), None)
            if found is None:
                raise ValueError(f"command {command['name']!r} has no subcommand {name!r}")
            path.append((name, found["type"]))
            level = found.get("options") or []
        defs = {o["name"]: o for o in level}
        values: dict[str, Any] = dict(options) | dict(attachments or {})
        if focused is not None:
            values.setdefault(focused, "")
        resolved: JSON = {}
        result: list[JSON] = []
        for name, value in values.items():
            if name not in defs:
                raise ValueError(f"unknown option {name!r} (known: {sorted(defs)})")
            opt: JSON = {"name": name, "type": defs[name]["type"]}
            if name == focused:
                opt |= {"value": str(value), "focused": True}
            elif opt["type"] == OPT_ATTACHMENT:
                att = self.world.attachment_payload(channel_id, *value) | {"ephemeral": True}
                resolved.setdefault("attachments", {})[att["id"]] = att
                opt["value"] = att["id"]
            elif opt["type"] == OPT_CHANNEL:  # the channel's id; the channel itself in `resolved`, as Discord does
                channel = self.world.channels[int(value)]
                resolved.setdefault("channels", {})[str(value)] = {
                    k: channel[k] for k in ("id", "name", "type", "parent_id", "thread_metadata") if k in channel
                } | {"permissions": str(self.world.user_permissions(user_id))}
                opt["value"] = str(value)
            else:
                opt["value"] = _CONVERT.get(opt["type"], str)(value)
            result.append(opt)
        missing = [o["name"] for o in level if o.get("required") and o["name"] not in values]
        if focused is None and missing:
            raise ValueError(f"missing required options {missing}")
        for name, otype in reversed(path):
            result = [{"name": name, "type": otype, "options": result}]
        data: JSON = {"id": command["id"], "name": command["name"], "type": 1, "options": result}
        return data | {"resolved": resolved} if resolved else data

    def _command(self, name: str) -> JSON:
        command = self.world.find_command(name)
        if command is None:
            raise ValueError(f"no command /{name} was synced")
        return command

    async def slash(self, name: str, options: dict[str, Any] | None = None, *, user_id: int,
                    channel_id: int | None = None, subcommand: list[str] | None = None,
                    attachments: dict[str, Upload] | None = None, guild: bool = True) -> Interaction:
        """Dispatch a chat-input command (type 2) as ``user_id``; returns at once (see ``wait_response``).

        ``channel_id`` defaults to the guild's text channel (``guild=True``) or the user's DM channel.
        """
        command = self._command(name)
        if channel_id is None:
            channel_id = self.world.text_channel_id if guild else self.world.dm_channel(user_id)
        self._check_permissions(command, user_id, guild, channel_id)
        inter = self._new(IT_COMMAND, user_id, channel_id, guild)
        inter.payload["data"] = self._command_data(command, options or {}, subcommand, attachments, channel_id,
                                                   user_id=user_id)
        await self._dispatch(inter)
        return inter

    async def autocomplete(self, name: str, options: dict[str, Any], focused: str, *, user_id: int,
                           channel_id: int | None = None, subcommand: list[str] | None = None,
                           guild: bool = True, timeout: float = 5) -> list[JSON]:  # noqa: ASYNC109
        """Dispatch an autocomplete interaction (type 4) for option ``focused``; returns the bot's choices."""
        if channel_id is None:
            channel_id = self.world.text_channel_id if guild else self.world.dm_channel(user_id)
        inter = self._new(IT_AUTOCOMPLETE, user_id, channel_id, guild)
        inter.payload["data"] = self._command_data(self._command(name), options, subcommand, None, channel_id,
                                                   focused)
        await self._dispatch(inter)
        await inter.wait_response(timeout)
        if inter.choices is None:
            raise AssertionError(f"autocomplete was not answered with type 8: {inter.callback_errors}")
        return inter.choices

    async def click(self, message_id: int, custom_id: str, *, user_id: int,
                    values: list[str] | None = None) -> Interaction:
        """Dispatch a component interaction (type 3): a click on a button (or a select's ``values``)."""
        msg = self.world.messages.get(message_id)
        if msg is None or msg.deleted:
            raise ValueError(f"unknown message {message_id}")
        comp = next((c for c in msg.iter_components() if c.get("custom_id") == custom_id), None)
        if comp is None or comp.get("disabled"):
            raise ValueError(f"message {message_id} has no enabled component {custom_id!r}")
        inter = self._new(IT_COMPONENT, user_id, msg.channel_id, self.world.guild_of(msg.channel_id) is not None)
        inter.target_message_id = msg.id
        data: JSON = {"custom_id": custom_id, "component_type": comp.get("type", 2)}
        if comp.get("type") != 2:
            offered = {o.get("value") for o in comp.get("options") or ()}
            if comp.get("type") == 3 and not set(values or ()) <= offered:  # Discord sends only offered values
                raise ValueError(f"{values} are not among the options of {custom_id!r}")
            data["values"] = list(values or [])
        inter.payload |= {"data": data, "message": self.world.message_payload(msg)}
        await self._dispatch(inter)
        return inter
