"""What Discord says about the bot's requests, read from every response (discord.py's `http_trace`).

- Every write to a channel's messages tells the pacer that channel's bucket (`X-RateLimit-Limit`,
  `-Remaining`, `-Reset-After`), so it plans writes by what Discord says rather than a fixed 5 per 5 s.
- A 429 is counted and fed back to the pacer: a global one pauses every write, a per-route one pauses
  that channel, for the `retry_after` Discord asked (discord.py then retries it itself).
- Every 401, 403 and 429 (but a 429 of scope `shared`) is an invalid request: Discord bans a bot's IP
  for an hour after 10,000 in 10 minutes. They are counted in a rolling 10 minutes; at 1,000 a warning
  is logged, and near the ban the pacer slows every write the bot can defer (live edits).
"""

from __future__ import annotations

import collections
import re
import time
from collections.abc import Callable
from typing import Any

import aiohttp

from bot.discord.pacing import ChannelPacer
from bot.logs import get_logger

log = get_logger(__name__)
INVALID_WINDOW = 600.0
INVALID_BAN = 10_000
WARN_AT = 1_000
SLOW_AT = 5_000  # half way to the ban: live edits slow down
CHANNEL_ROUTE = re.compile(r"/channels/(\d+)/")
GLOBAL_LIMITED = re.compile(r"/api/v\d+/(?!interactions/|webhooks/)")  # all but interaction routes
MESSAGE_WRITE = re.compile(r"/channels/(\d+)/messages(?:/\d+)?$")  # a message sent or edited in a channel


class DiscordLimits:
    def __init__(self, pacer: ChannelPacer, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.pacer = pacer
        self._clock = clock
        self._invalid: collections.deque[float] = collections.deque()
        self.rate_limited = {"global": 0, "route": 0, "shared": 0}
        self.warned = False  # the warning was logged (again once the count falls to half)

    def trace_config(self) -> aiohttp.TraceConfig:
        trace = aiohttp.TraceConfig()
        trace.on_request_headers_sent.append(self._on_request_headers_sent)
        trace.on_request_end.append(self._on_request_end)
        trace.on_request_exception.append(self._on_request_exception)
        return trace

    async def _on_request_headers_sent(self, session: aiohttp.ClientSession, context: Any,
                                       params: aiohttp.TraceRequestHeadersSentParams) -> None:
        """The request is on the wire (a new connection, opened under load, can take a while after the
        request started): from now on it counts against the global limit as Discord will count it."""
        if GLOBAL_LIMITED.match(params.url.path):
            context.counted = True  # (aiohttp gives each request its own context)
            self.pacer.sent()

    async def _on_request_end(self, session: aiohttp.ClientSession, context: Any,
                              params: aiohttp.TraceRequestEndParams) -> None:
        self._answered(context)
        response = params.response
        self.observe(response.status, response.headers, params.url.path, params.method)

    async def _on_request_exception(self, session: aiohttp.ClientSession, context: Any,
                                    params: aiohttp.TraceRequestExceptionParams) -> None:
        self._answered(context)  # one that went out may have reached Discord: it counts from now, for a window

    def _answered(self, context: Any) -> None:
        """A request `sent` to the pacer is over; one that failed before it went out never counted."""
        if getattr(context, "counted", False):
            context.counted = False
            self.pacer.answered()

    def observe(self, status: int, headers: Any, path: str, method: str = "") -> None:
        """One response: a channel write's bucket headers plan that channel's writes; a 429 pauses the
        pacer; 401, 403 and 429 count as invalid requests."""
        scope = (headers.get("X-RateLimit-Scope") or "").lower()
        if status == 429:
            self._rate_limited(headers, scope, path)
        elif method in ("POST", "PATCH") and "X-RateLimit-Limit" in headers:
            self._learn_bucket(headers, path)
        if status in (401, 403) or (status == 429 and scope != "shared"):
            self._invalid.append(self._clock())
            self._update()
        elif self.pacer.live_slowdown > 1.0:
            self._update()  # old ones leave the window: live edits speed up again

    def _rate_limited(self, headers: Any, scope: str, path: str) -> None:
        is_global = scope == "global" or (headers.get("X-RateLimit-Global") or "").lower() == "true"
        try:
            # A route's Reset-After is precise; Retry-After is whole seconds, rounded up. A global 429 may
            # still carry the route's bucket headers, whose Reset-After says when that bucket refills
            # (up to 5 s), not when the global limit does: it goes by Retry-After.
            precise = None if is_global else headers.get("X-RateLimit-Reset-After")
            retry_after = float(precise or headers.get("Retry-After") or 1.0)
        except ValueError:
            retry_after = 1.0
        kind = "global" if is_global else "shared" if scope == "shared" else "route"
        self.rate_limited[kind] += 1
        channel = CHANNEL_ROUTE.search(path)
        if is_global:
            self.pacer.pause_global(retry_after)
        elif channel is not None:
            self.pacer.pause_channel(int(channel.group(1)), retry_after)
        log.warning("Discord rate limited a request", scope=kind, retry_after=retry_after, path=_route(path))

    def _learn_bucket(self, headers: Any, path: str) -> None:
        write = MESSAGE_WRITE.search(path)
        if write is None:
            return
        try:
            limit, remaining = int(headers["X-RateLimit-Limit"]), int(headers.get("X-RateLimit-Remaining", 1))
            reset_after = float(headers.get("X-RateLimit-Reset-After") or 0.0)
        except ValueError:
            return
        self.pacer.learn(int(write.group(1)), limit=limit, remaining=remaining, reset_after=reset_after)

    def _update(self) -> None:
        count = self.invalid_in_window()
        if count >= WARN_AT and not self.warned:
            self.warned = True
            log.warning("many invalid Discord requests in 10 minutes; Discord bans at 10,000", count=count)
        elif count < WARN_AT // 2:
            self.warned = False
        self.pacer.live_slowdown = 1.0 + max(0, count - SLOW_AT) / (INVALID_BAN - SLOW_AT) * 9

    def invalid_in_window(self) -> int:
        """Invalid requests (401, 403, 429 but shared ones) in the last 10 minutes."""
        now = self._clock()
        while self._invalid and now - self._invalid[0] >= INVALID_WINDOW:
            self._invalid.popleft()
        return len(self._invalid)


def _route(path: str) -> str:
    """A path for logs without the tokens and ids it carries."""
    return re.sub(r"/\d+", "/{id}", re.sub(r"/(webhooks|interactions)/(\d+)/[^/]+", r"/\1/\2/{token}", path))
