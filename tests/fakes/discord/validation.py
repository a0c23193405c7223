"""Discord's error shapes, and the checks the fake applies to what the bot sends.

* :class:`ApiError` becomes a Discord-shaped JSON error (``{"message", "code", "errors"}``).
* :func:`validate_message`: content at most 2,000 characters; at most 10 embeds with Discord's field
  limits and 6,000 characters in all; at most 5 action rows of 5 components (not counted for
  components v2); custom ids unique and at most 100 characters; button labels at most 80
  (all 400 code 50035). :func:`check_not_empty`: 400 code 50006.
* :func:`validate_commands`: the command list of a bulk overwrite (names, descriptions, options,
  their nesting and order, choices; 400 code 50035).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

from aiohttp import web

JSON = dict[str, Any]

FLAG_COMPONENTS_V2 = 1 << 15
OPT_SUB_COMMAND, OPT_SUB_COMMAND_GROUP = 1, 2
_COMMAND_NAME = re.compile(r"^[-_'\w]{1,32}$")


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    """A JSON response with exactly ``Content-Type: application/json`` (discord.py needs it verbatim)."""
    return web.Response(status=status, body=json.dumps(data).encode(),
                        headers={"Content-Type": "application/json", **(headers or {})})


class ApiError(Exception):
    """Raised inside handlers; the middleware turns it into the response."""

    def __init__(self, status: int, code: int, message: str, *, errors: JSON | None = None,
                 headers: dict[str, str] | None = None, body: JSON | None = None) -> None:
        super().__init__(f"{status} {code} {message}")
        self.status = status
        self.code = code
        self.headers = headers or {}
        self.body = body if body is not None else {"message": message, "code": code}
        if errors is not None:
            self.body["errors"] = errors

    def response(self) -> web.Response:
        return json_response(self.body, self.status, self.headers)


def invalid_form(path: str, code: str, message: str) -> ApiError:
    """400 code 50035 with Discord's nested ``errors`` object for a field path like ``embeds.0.title``."""
    node: JSON = {"_errors": [{"code": code, "message": message}]}
    for part in reversed(path.split(".")):
        node = {part: node}
    return ApiError(400, 50035, "Invalid Form Body", errors=node)


def too_long(path: str, limit: int) -> ApiError:
    return invalid_form(path, "BASE_TYPE_MAX_LENGTH", f"Must be {limit} or fewer in length.")


def walk_components(components: list[JSON]) -> Iterator[JSON]:
    """Every component, depth first (rows, containers, sections and their accessories)."""
    for comp in components:
        yield comp
        yield from walk_components(comp.get("components") or [])
        if isinstance(comp.get("accessory"), dict):
            yield from walk_components([comp["accessory"]])


def _validate_embeds(embeds: list[JSON]) -> None:
    if len(embeds) > 10:
        raise too_long("embeds", 10)
    total = 0
    for i, embed in enumerate(embeds):
        texts = [(f"embeds.{i}.title", embed.get("title"), 256),
                 (f"embeds.{i}.description", embed.get("description"), 4096),
                 (f"embeds.{i}.footer.text", (embed.get("footer") or {}).get("text"), 2048),
                 (f"embeds.{i}.author.name", (embed.get("author") or {}).get("name"), 256)]
        fields = embed.get("fields") or []
        if len(fields) > 25:
            raise too_long(f"embeds.{i}.fields", 25)
        for j, fld in enumerate(fields):
            for key, limit in (("name", 256), ("value", 1024)):
                if not fld.get(key):
                    raise invalid_form(f"embeds.{i}.fields.{j}.{key}", "BASE_TYPE_REQUIRED", "Required")
                texts.append((f"embeds.{i}.fields.{j}.{key}", fld[key], limit))
        for path, text, limit in texts:
            if len(text or "") > limit:
                raise too_long(path, limit)
            total += len(text or "")
    if total > 6000:
        raise invalid_form("embeds", "MAX_EMBED_SIZE_EXCEEDED", "Embed size exceeds maximum size of 6000")


def validate_message(fields: JSON) -> None:
    """Size limits of a message as it would be after a create or edit (400 code 50035)."""
    if len(fields.get("content") or "") > 2000:
        raise too_long("content", 2000)
    _validate_embeds(fields.get("embeds") or [])
    components = fields.get("components") or []
    if not int(fields.get("flags") or 0) & FLAG_COMPONENTS_V2:
        if len(components) > 5:
            raise too_long("components", 5)
        for i, row in enumerate(components):
            if len(row.get("components") or []) > 5:
                raise too_long(f"components.{i}.components", 5)
    seen: set[str] = set()
    for comp in walk_components(components):
        custom_id = comp.get("custom_id")
        if custom_id is not None:
            if len(custom_id) > 100:
                raise too_long("components.custom_id", 100)
            if custom_id in seen:
                raise invalid_form("components", "COMPONENT_CUSTOM_ID_DUPLICATED",
                                   "Component custom id cannot be duplicated")
            seen.add(custom_id)
        if comp.get("type") == 2 and len(comp.get("label") or "") > 80:
            raise too_long("components.label", 80)


def check_not_empty(content: str, *parts: list[JSON]) -> None:
    if not content and not any(parts):
        raise ApiError(400, 50006, "Cannot send an empty message")


def _check_name_and_description(item: JSON, where: str) -> None:
    name = item.get("name") or ""
    if not _COMMAND_NAME.match(name) or name != name.lower():
        raise invalid_form(f"{where}.name", "APPLICATION_COMMAND_INVALID_NAME", "Command name is invalid")
    if not 1 <= len(item.get("description") or "") <= 100:
        raise invalid_form(f"{where}.description", "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 100")


def _validate_options(options: list[JSON], path: str, depth: int) -> None:
    if len(options) > 25:
        raise too_long(f"{path}.options", 25)
    names: set[str] = set()
    seen_optional = False
    for i, opt in enumerate(options):
        where = f"{path}.options.{i}"
        _check_name_and_description(opt, where)
        if opt["name"] in names:
            raise invalid_form(f"{where}.name", "APPLICATION_COMMAND_OPTIONS_NAME_ALREADY_EXISTS",
                               "Option name already exists")
        names.add(opt["name"])
        if opt.get("type") in (OPT_SUB_COMMAND, OPT_SUB_COMMAND_GROUP):
            if depth >= 2 or (opt.get("type") == OPT_SUB_COMMAND_GROUP and depth >= 1):
                raise invalid_form(f"{where}.type", "APPLICATION_COMMAND_OPTION_TYPE_INVALID", "Bad nesting")
            _validate_options(opt.get("options") or [], where, depth + 1)
            continue
        if opt.get("required") and seen_optional:
            raise invalid_form(f"{where}.required", "APPLICATION_COMMAND_OPTIONS_REQUIRED_INVALID",
                               "Required options must be placed before non-required options")
        seen_optional = seen_optional or not opt.get("required")
        if len(opt.get("choices") or []) > 25:
            raise too_long(f"{where}.choices", 25)
        if opt.get("choices") and opt.get("autocomplete"):
            raise invalid_form(f"{where}.autocomplete", "BASE_TYPE_INVALID", "Autocomplete with choices")


def validate_commands(commands: list[JSON]) -> None:
    """A bulk overwrite of application commands (``PUT .../commands``), as Discord checks it."""
    if len(commands) > 100:
        raise too_long("_root", 100)
    seen: set[tuple[str, int]] = set()
    for i, cmd in enumerate(commands):
        if cmd.get("type", 1) == 1:
            _check_name_and_description(cmd, str(i))
            _validate_options(cmd.get("options") or [], str(i), 0)
        elif not 1 <= len(cmd.get("name") or "") <= 32:
            raise invalid_form(f"{i}.name", "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 32")
        key = (cmd["name"], cmd.get("type", 1))
        if key in seen:
            raise invalid_form(str(i), "APPLICATION_COMMANDS_DUPLICATE_NAME",
                               f"Application command names must be unique: {key[0]}")
        seen.add(key)
