"""The fake Discord's HTTP side: the middleware every request passes, and the REST routes the bot uses.

The middleware (:meth:`Rest.middleware`) checks ``Authorization: Bot ...`` on ``/api/v10`` routes
(401) and the global rate limit, both except on the interaction callback and webhook routes; turns
:class:`~tests.fakes.discord.validation.ApiError` into Discord's JSON errors; adds the channel bucket's
``X-RateLimit-*`` headers to every response of a bucketed route whose channel is known; counts
401/403/429 responses as invalid requests; and logs every request. A crash in a handler is a bug in
the fake: it is answered with 400 (discord.py would retry a 5xx for a long time), kept in
:attr:`Rest.server_errors` and printed. Unknown routes get 404 and are kept in :attr:`Rest.unknown_routes`.

Routes: ``GET /users/@me``, ``GET /oauth2/applications/@me``, ``PUT /applications/{id}/commands``
(bulk overwrite of the global commands, validated), ``POST /channels/{id}/messages``,
``GET``/``PATCH``/``DELETE /channels/{id}/messages/{id}`` (only the bot's own messages can be edited
or deleted),
``POST /channels/{id}/messages/{id}/threads``, and the attachment CDN (``GET /attachments/...``, no
authentication). Creating and editing messages take a slot of the channel's write bucket.
"""

from __future__ import annotations

import json
import re
import sys
import time
import traceback
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import BodyPartReader, web

from tests.fakes.discord.ratelimits import RateLimits
from tests.fakes.discord.state import CH_TEXT, World
from tests.fakes.discord.validation import JSON, ApiError, json_response, validate_commands

API = "/api/v10"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Route = tuple[str, str, Handler]
Files = dict[str, tuple[str, bytes, str]]
EXEMPT_PREFIXES = (f"{API}/interactions/", f"{API}/webhooks/")  # no bot token, no global limit
# The channel whose write bucket a request uses, kept on the request (typed key on aiohttp >= 3.13).
BUCKET: Any = getattr(web, "RequestKey", lambda name, _type: name)("bucket", int)
BUCKETED = {("POST", f"{API}/channels/{{channel_id}}/messages"),
            ("PATCH", f"{API}/channels/{{channel_id}}/messages/{{message_id}}")}


async def read_body(request: web.Request) -> tuple[JSON, Files]:
    """The JSON body (a list comes back as ``{"_list": [...]}``), or multipart ``payload_json`` + files."""
    files: Files = {}
    if request.content_type.startswith("multipart/"):
        payload: JSON = {}
        async for part in await request.multipart():
            if not isinstance(part, BodyPartReader):
                continue
            if part.name == "payload_json":
                payload = json.loads(await part.text() or "{}")
            elif part.name:
                ctype = part.headers.get("Content-Type", "application/octet-stream")
                files[part.name] = (part.filename or part.name, bytes(await part.read(decode=True)), ctype)
        return payload, files
    raw = await request.read()
    try:
        body = json.loads(raw) if raw else {}
    except ValueError:
        raise ApiError(400, 50109, "The request body contains invalid JSON.") from None
    return (body if isinstance(body, dict) else {"_list": body}), files


def int_param(request: web.Request, name: str) -> int:
    return int(request.match_info[name])


class Rest:
    def __init__(self, world: World, limits: RateLimits) -> None:
        self.world = world
        self.limits = limits
        self.request_log: list[tuple[float, str, str, int]] = []  # (monotonic, method, path, status)
        self.unknown_routes: list[tuple[str, str]] = []
        self.server_errors: list[str] = []
        self.outages: list[list[Any]] = []  # [method, compiled path pattern, status, times left]

    def fail(self, method: str, path: str, *, status: int = 503, times: int = 1) -> None:
        """Answer the next `times` requests matching `method` and the `path` regex with `status` (an outage)."""
        self.outages.append([method, re.compile(path), status, times])

    def _outage(self, request: web.Request) -> web.Response | None:
        for outage in self.outages:
            method, pattern, status, left = outage
            if left > 0 and request.method == method and pattern.search(request.path):
                outage[3] -= 1
                return json_response({"message": "Service Unavailable (fake outage)", "code": 0}, status)
        return None

    def routes(self) -> list[Route]:
        cid, mid = f"{API}/channels/{{channel_id:\\d+}}", "{message_id:\\d+}"
        return [
            ("GET", f"{API}/users/@me", self._get_me),
            ("GET", f"{API}/oauth2/applications/@me", self._app_info),
            ("PUT", f"{API}/applications/{{app_id}}/commands", self._put_commands),
            ("POST", f"{cid}/messages", self._create_message),
            ("GET", f"{cid}/messages/{mid}", self._get_message),
            ("PATCH", f"{cid}/messages/{mid}", self._edit_message),
            ("DELETE", f"{cid}/messages/{mid}", self._delete_message),
            ("POST", f"{cid}/messages/{mid}/threads", self._thread_from_message),
            ("GET", "/attachments/{channel_id}/{attachment_id:\\d+}/{filename}", self._attachment),
        ]

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        path = request.path
        resource = request.match_info.route.resource
        if (request.method, resource.canonical if resource else "") in BUCKETED:
            request[BUCKET] = int(request.match_info["channel_id"])
        try:
            if path.startswith(API) and not path.startswith(EXEMPT_PREFIXES):
                token = request.headers.get("Authorization", "")
                if not token.startswith("Bot "):
                    raise ApiError(401, 0, "401: Unauthorized")
                self.limits.take_global(token, int(request.match_info.get("channel_id") or 0))
            response = self._outage(request) or await handler(request)
        except ApiError as exc:
            response = exc.response()
        except web.HTTPException:
            raise
        except Exception as exc:
            text = traceback.format_exc()
            self.server_errors.append(text)
            print(f"[fake-discord] handler crashed for {request.method} {path}:\n{text}", file=sys.stderr)
            response = json_response({"message": f"fake discord server error: {exc!r}", "code": 0}, 400)
        if request.get(BUCKET) is not None and not response.prepared:
            for key, value in self.limits.bucket_headers(request[BUCKET]).items():
                response.headers.setdefault(key, value)
        self.limits.record_response(response.status, response.headers.get("X-RateLimit-Scope"), request.method,
                                    path)
        self.request_log.append((time.monotonic(), request.method, path, response.status))
        return response

    async def unknown(self, request: web.Request) -> web.StreamResponse:
        self.unknown_routes.append((request.method, request.path_qs))
        print(f"[fake-discord] UNKNOWN ROUTE {request.method} {request.path_qs}", file=sys.stderr)
        return json_response({"message": "Unknown", "code": 0}, 404)

    # ------------------------------------------------------------------ identity and commands

    async def _get_me(self, request: web.Request) -> web.StreamResponse:
        return json_response(dict(self.world.users[self.world.bot_user_id]) | {"verified": True, "mfa_enabled": False})

    async def _app_info(self, request: web.Request) -> web.StreamResponse:
        w = self.world
        return json_response({
            "id": str(w.application_id), "name": "FakeBot", "icon": None, "description": "A fake application",
            "bot_public": True, "bot_require_code_grant": False, "verify_key": "0" * 64, "flags": 0, "team": None,
            "owner": dict(w.users[w.owner_id]), "bot": dict(w.users[w.bot_user_id]),
        })

    async def _put_commands(self, request: web.Request) -> web.StreamResponse:
        w = self.world
        if request.match_info["app_id"] != str(w.application_id):
            raise ApiError(403, 50001, "Missing Access")
        commands: list[JSON] = (await read_body(request))[0].get("_list", [])
        validate_commands(commands)
        previous = {(c["name"], c["type"]): c["id"] for c in w.commands}

        def stored(cmd: JSON) -> JSON:
            ctype = cmd.get("type", 1)
            out: JSON = {k: cmd.get(k) for k in ("name", "name_localizations", "description_localizations",
                                                 "default_member_permissions", "contexts")}
            return out | {
                "id": previous.get((cmd["name"], ctype)) or str(w.ids.next()), "type": ctype,
                "application_id": str(w.application_id), "version": str(w.ids.next()),
                "description": cmd.get("description") or "", "dm_permission": cmd.get("dm_permission", True),
                "integration_types": cmd.get("integration_types") or [0], "nsfw": bool(cmd.get("nsfw")),
                "options": cmd.get("options") or [],
            }

        w.commands = [stored(cmd) for cmd in commands]
        w.command_sync_count += 1
        return json_response(w.commands)

    # ------------------------------------------------------------------ messages and threads

    async def _create_message(self, request: web.Request) -> web.StreamResponse:
        channel_id = int_param(request, "channel_id")
        self.world.channel_or_404(channel_id)
        msg = self.world.new_message(channel_id, *await read_body(request))
        self.limits.check_channel(channel_id, "create")
        self.limits.commit_channel(channel_id, "create")
        self.world.store_message(msg)
        return json_response(self.world.message_payload(msg))

    async def _get_message(self, request: web.Request) -> web.StreamResponse:
        msg = self.world.message_or_404(int_param(request, "channel_id"), int_param(request, "message_id"))
        return json_response(self.world.message_payload(msg))

    async def _edit_message(self, request: web.Request) -> web.StreamResponse:
        channel_id = int_param(request, "channel_id")
        msg = self.world.message_or_404(channel_id, int_param(request, "message_id"))
        if msg.author_id != self.world.bot_user_id:
            raise ApiError(403, 50005, "Cannot edit a message authored by another user")
        edited = self.world.prepare_edit(msg, *await read_body(request))
        self.limits.check_channel(channel_id, "edit")
        self.limits.commit_channel(channel_id, "edit")
        self.world.commit_edit(msg, edited)
        return json_response(self.world.message_payload(msg))

    async def _delete_message(self, request: web.Request) -> web.StreamResponse:
        """The bot deletes one of its own messages (deleting others' needs Manage Messages: 403 here)."""
        channel_id = int_param(request, "channel_id")
        msg = self.world.message_or_404(channel_id, int_param(request, "message_id"))
        if msg.author_id != self.world.bot_user_id:
            raise ApiError(403, 50013, "Missing Permissions")
        self.world.delete_message(msg)
        return web.Response(status=204)

    async def _thread_from_message(self, request: web.Request) -> web.StreamResponse:
        channel_id = int_param(request, "channel_id")
        if self.world.channel_or_404(channel_id)["type"] != CH_TEXT:
            raise ApiError(400, 50024, "Cannot execute action on this channel type")
        msg = self.world.message_or_404(channel_id, int_param(request, "message_id"))
        if msg.thread_id is not None:
            raise ApiError(400, 160004, "A thread has already been created for this message")
        body: dict[str, Any] = (await read_body(request))[0]
        thread = self.world.new_thread(channel_id, str(body.get("name") or ""), thread_id=msg.id,
                                       auto_archive_duration=int(body.get("auto_archive_duration") or 4320))
        msg.thread_id = msg.id
        return json_response(thread, 201)

    async def _attachment(self, request: web.Request) -> web.StreamResponse:
        stored = self.world.files.get(int_param(request, "attachment_id"))
        if stored is None:
            return web.Response(status=404, text="Not Found")
        return web.Response(body=stored[1], headers={"Content-Type": stored[2]})
