"""Discord's REST rate limits and its count of invalid requests, as the fake enforces them.

Defaults are Discord's values (see the shared note ``discord-rate-limits-and-sharding.md``).

Global limit: at most ``global_limit`` (50) requests per ``global_window`` (1 s) per bot token
(``Authorization`` header), over every authenticated route under ``/api/v10``, GETs included, except
the interaction callback (``POST /interactions/{id}/{token}/callback``) and the interaction webhook
routes (``/webhooks/{application_id}/{token}...``), which Discord exempts. It is a rolling window: a
request is refused while ``global_limit`` requests of that token were accepted in the
``global_window`` seconds before it. That holds for every 1-second span, not only for aligned ones,
so it is the strictest reading of "50 per second": a client that never meets it would not meet a
fixed window either. Refused requests take no slot. The 429 has the body ``{"message": ...,
"retry_after": <seconds until the oldest request leaves the window>, "global": true}`` and the headers
``X-RateLimit-Global: true``, ``X-RateLimit-Scope: global``, ``Retry-After`` (whole seconds, rounded
up) and ``Via`` (without ``Via`` discord.py takes a 429 for a Cloudflare ban).

Per-channel writes: ``channel_write_limit`` (5) per ``channel_write_window`` (5 s), also a rolling
window, shared by creating and editing messages in a channel. Interaction follow-ups and edits of
interaction messages take the same limit in a bucket of their own per interaction token, as Discord
keys a webhook's buckets by its token (the key is the interaction's id). Interaction callbacks are
not limited. Every
response of these routes whose channel is known carries ``X-RateLimit-Limit``, ``-Remaining``,
``-Reset`` (epoch seconds), ``-Reset-After`` (seconds until the oldest write leaves the window, i.e.
until ``Remaining`` rises; the full window when it is empty) and ``-Bucket`` (one stable opaque hash
for this bucket; discord.py adds the channel or webhook as the major parameter). Their 429 adds
``X-RateLimit-Scope: user``, ``Retry-After`` and ``Via``, with ``"global": false`` in the body.

Invalid requests: every 401, 403 and 429 response (a 429 with scope ``shared`` excepted) is recorded
with its time (:attr:`RateLimits.invalid_requests`, :meth:`RateLimits.invalid_requests_in`); Discord
bans the IP for about an hour after 10,000 of them in 10 minutes.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections import deque

from tests.fakes.discord.validation import ApiError

BUCKET_HASH = hashlib.sha256(b"fake-discord/channel-message-writes").hexdigest()[:32]
VIA = "1.1 google"
RATE_LIMITED = "You are being rate limited."


def _round_up(seconds: float) -> float:
    """Up to the millisecond plus 2 ms: asyncio may wake a timer ~1 ms early, and a retry that
    arrives a hair too soon would draw another 429."""
    return math.ceil((max(seconds, 0.0) + 0.002) * 1000) / 1000


def most_in_window(times: list[float], span: float) -> int:
    """The most of the (sorted) `times` inside any `span`-second stretch."""
    best = start = 0
    for end, t in enumerate(times):
        while t - times[start] >= span:
            start += 1
        best = max(best, end - start + 1)
    return best


class RateLimits:
    """The global and per-channel limits, and the records tests and benchmarks read."""

    def __init__(self, *, global_limit: int = 50, global_window: float = 1.0, channel_write_limit: int = 5,
                 channel_write_window: float = 5.0, enforce: bool = True) -> None:
        self.global_limit = global_limit
        self.global_window = global_window
        self.channel_write_limit = channel_write_limit
        self.channel_write_window = channel_write_window
        self.enforce = enforce  # False: no 429s at all (records and headers stay)
        self.write_log: list[tuple[float, int, str]] = []  # accepted writes: (monotonic, channel, kind)
        self.rate_limit_log: list[tuple[float, int, str]] = []  # 429s: (monotonic, channel or 0, kind)
        self.invalid_requests: list[tuple[float, int, str, str]] = []  # (monotonic, status, method, path)
        self.global_429_count = 0
        self.route_429_count = 0
        self._global: dict[str, deque[float]] = {}
        self._channels: dict[int, deque[float]] = {}

    @property
    def rate_limited_count(self) -> int:
        """All 429s: global and per route."""
        return self.global_429_count + self.route_429_count

    @staticmethod
    def _trim(window: deque[float], now: float, span: float) -> deque[float]:
        while window and window[0] <= now - span:
            window.popleft()
        return window

    def take_global(self, token: str, channel_id: int = 0) -> None:
        """Count one request of ``token`` against the global limit, or raise the global 429."""
        now = time.monotonic()
        window = self._trim(self._global.setdefault(token, deque()), now, self.global_window)
        if self.enforce and len(window) >= self.global_limit:
            retry_after = _round_up(window[0] + self.global_window - now)
            self.global_429_count += 1
            self.rate_limit_log.append((now, channel_id, "global"))
            headers = {"Via": VIA, "Retry-After": str(math.ceil(retry_after)), "X-RateLimit-Global": "true",
                       "X-RateLimit-Scope": "global"}
            raise ApiError(429, 0, RATE_LIMITED, headers=headers,
                           body={"message": RATE_LIMITED, "retry_after": retry_after, "global": True})
        window.append(now)

    def _channel(self, channel_id: int, now: float) -> deque[float]:
        return self._trim(self._channels.setdefault(channel_id, deque()), now, self.channel_write_window)

    def bucket_headers(self, channel_id: int) -> dict[str, str]:
        """The ``X-RateLimit-*`` headers of the channel's write bucket as it stands now."""
        now = time.monotonic()
        window = self._channel(channel_id, now)
        reset_after = (_round_up(window[0] + self.channel_write_window - now) if window
                       else self.channel_write_window)
        return {
            "X-RateLimit-Limit": str(self.channel_write_limit),
            "X-RateLimit-Remaining": str(max(self.channel_write_limit - len(window), 0)),
            "X-RateLimit-Reset": f"{time.time() + reset_after:.3f}",
            "X-RateLimit-Reset-After": f"{reset_after:.3f}",
            "X-RateLimit-Bucket": BUCKET_HASH,
        }

    def check_channel(self, channel_id: int, kind: str) -> None:
        """Raise the per-route 429 if the channel has no write slot free (takes none)."""
        now = time.monotonic()
        window = self._channel(channel_id, now)
        if not self.enforce or len(window) < self.channel_write_limit:
            return
        retry_after = _round_up(window[0] + self.channel_write_window - now)
        self.route_429_count += 1
        self.rate_limit_log.append((now, channel_id, kind))
        headers = {**self.bucket_headers(channel_id), "Via": VIA, "Retry-After": str(math.ceil(retry_after)),
                   "X-RateLimit-Scope": "user"}
        raise ApiError(429, 0, RATE_LIMITED, headers=headers,
                       body={"message": RATE_LIMITED, "retry_after": retry_after, "global": False})

    def commit_channel(self, channel_id: int, kind: str) -> None:
        """Record an accepted write (it takes a slot)."""
        now = time.monotonic()
        self.write_log.append((now, channel_id, kind))
        self._channel(channel_id, now).append(now)

    def record_response(self, status: int, scope: str | None, method: str, path: str) -> None:
        if status in (401, 403) or (status == 429 and scope != "shared"):
            self.invalid_requests.append((time.monotonic(), status, method, path))

    def invalid_requests_in(self, seconds: float = 600.0) -> int:
        """How many 401/403/429 responses (429s of scope ``shared`` excepted) the last ``seconds`` saw."""
        since = time.monotonic() - seconds
        return sum(1 for t, *_ in self.invalid_requests if t > since)

    def max_writes_in_window(self, channel_id: int, window: float | None = None, *,
                             include_callbacks: bool = False) -> int:
        """The most writes to ``channel_id`` inside any ``window``-second span of :attr:`write_log`
        (by default only the rate-limited kinds, i.e. without interaction callbacks)."""
        span = self.channel_write_window if window is None else window
        times = [t for t, c, k in self.write_log if c == channel_id and (include_callbacks or k != "callback")]
        return most_in_window(times, span)
