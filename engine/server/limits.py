"""Per-application limits: the settings of the guard and a token bucket per application.

Every limit has a named default; :class:`GuardSettings` is a field of the server's settings. The limits an
application gets are :class:`AppLimits` (``GuardSettings.apps`` overrides them per ``appId``). Refusals are
:class:`~engine.errors.BusyError` (``108102``) naming the limit.

Time is injected: a :class:`TokenBucket` is given the time of each request (monotonic seconds). Preparation
slots (``AppLimits.preparing``) are :mod:`engine.server.slots`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields

from engine.config import Config
from engine.errors import BusyError

DEFAULT_CALLS_PER_APP = 5_000
DEFAULT_REQUESTS_PER_S = 2_000.0
DEFAULT_REQUEST_BURST = 4_000
DEFAULT_PREPARING_PER_APP = 2
DEFAULT_PREPARING_QUEUE = 64
DEFAULT_PREPARING_WAIT_S = 10.0
DEFAULT_CALL_LIFETIME_S = 4 * 3600.0
DEFAULT_CALL_IDLE_S = 3600.0
DEFAULT_MAX_CPU_SHARE = 0.6  # of the one core the GIL gives the process: the rest is for HTTP and speech
DEFAULT_CALL_CPU_SHARE = 1e-4  # a playing call's floor: 2 µs of the media thread per 20 ms frame
DEFAULT_MIN_REAL_TIME = 0.8
DEFAULT_MAX_LATENESS_S = 0.2
DEFAULT_STALL_S = 2.0
DEFAULT_SAMPLE_S = 0.25
DEFAULT_JUDGE_WINDOW_S = 2.0
DEFAULT_HEADER_TIMEOUT_S = 5.0
DEFAULT_BODY_TIMEOUT_S = 10.0
DEFAULT_MAX_CONNECTIONS = 1_000
DEFAULT_MAX_SKEW_S = 300.0


@dataclass(frozen=True)
class AppLimits:
    """What one application may hold.

    ``calls``: live calls (default 5000). ``requests_per_s`` and ``burst``: a token bucket over every POST of the
    application (default 2000/s, bursts of 4000). ``preparing``: requests being prepared (speech synthesis, file
    decoding) at once (default 2, of the server's ``prepare_workers`` threads); ``preparing_queue``: requests
    beyond them that wait for a slot (default 64; 0: refused at once).
    """

    calls: int = DEFAULT_CALLS_PER_APP
    requests_per_s: float = DEFAULT_REQUESTS_PER_S
    burst: int = DEFAULT_REQUEST_BURST
    preparing: int = DEFAULT_PREPARING_PER_APP
    preparing_queue: int = DEFAULT_PREPARING_QUEUE

    def __post_init__(self) -> None:
        for name, least in (("calls", 1), ("burst", 1), ("preparing", 1), ("preparing_queue", 0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise ValueError(f"{name}: must be an integer >= {least}, got {value!r}")
        rate = self.requests_per_s
        if isinstance(rate, bool) or not isinstance(rate, int | float) or not rate > 0:
            raise ValueError(f"requests_per_s: must be a number > 0, got {rate!r}")


@dataclass(frozen=True)
class GuardSettings:
    """The guard's settings (all times in seconds).

    Preparation: a request waits at most ``preparing_wait_s`` (10 s) for one of its application's slots.
    Calls: ``call_lifetime_s`` (default 4 h) and ``call_idle_s`` (default 1 h: no request playing or waiting).
    Admission (new calls get ``108102`` while any is broken), judged over the last ``judge_window_s`` (2 s): the
    media thread's CPU share of one core at most ``max_cpu_share`` (0.6), ticks at least ``min_real_time``
    (0.8) of real time, p90 lateness of the last 5 s at most ``max_lateness_s`` (0.2 s); and projected for one
    more call, every live call costing at least ``call_cpu_share`` of a core (default 1e-4: 2 µs of the media
    thread per 20 ms frame, what a playing call with speech and key detection costs; an idle call costs far
    less, but may start playing at any moment), the CPU share plus the share of time the loop waits inside its ticks
    within ``max_cpu_share``. Watchdog: the loop is
    *stalled* when no tick ran for ``stall_s`` (2 s); sampled every ``sample_s`` (0.25 s). HTTP: headers must
    arrive within ``header_timeout_s`` (5 s) and a body within ``body_timeout_s`` (10 s) of its headers; at
    most ``max_connections`` (1000) open connections. Signatures: timestamps at most ``max_skew_s`` (300 s)
    from now.
    """

    # preparation and calls
    preparing_wait_s: float = DEFAULT_PREPARING_WAIT_S
    call_lifetime_s: float = DEFAULT_CALL_LIFETIME_S
    call_idle_s: float = DEFAULT_CALL_IDLE_S
    # admission
    max_cpu_share: float = DEFAULT_MAX_CPU_SHARE
    call_cpu_share: float = DEFAULT_CALL_CPU_SHARE
    min_real_time: float = DEFAULT_MIN_REAL_TIME
    max_lateness_s: float = DEFAULT_MAX_LATENESS_S
    # the watchdog, and the window admission judges over
    stall_s: float = DEFAULT_STALL_S
    sample_s: float = DEFAULT_SAMPLE_S
    judge_window_s: float = DEFAULT_JUDGE_WINDOW_S
    # HTTP
    header_timeout_s: float = DEFAULT_HEADER_TIMEOUT_S
    body_timeout_s: float = DEFAULT_BODY_TIMEOUT_S
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    # signatures
    max_skew_s: float = DEFAULT_MAX_SKEW_S
    # the applications' limits: each its own, else the defaults
    defaults: AppLimits = field(default_factory=AppLimits)
    apps: dict[str, AppLimits] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in (f.name for f in fields(self) if f.name not in ("defaults", "apps")):  # every figure
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                raise ValueError(f"{name}: must be a number > 0, got {value!r}")

    def limits(self, app_id: str) -> AppLimits:
        """The limits of ``app_id`` (its own, else the defaults)."""
        return self.apps.get(app_id, self.defaults)


class TokenBucket:
    """``rate_per_s`` tokens a second, at most ``burst`` kept; one request takes one token."""

    def __init__(self, rate_per_s: float, burst: int, now_s: float) -> None:
        self.rate_per_s = rate_per_s
        self.burst = burst
        self._tokens = float(burst)
        self._at_s = now_s

    def take(self, now_s: float) -> bool:
        """Take a token at time ``now_s`` (monotonic seconds); False when there is none."""
        elapsed = now_s - self._at_s
        if elapsed > 0:
            self._tokens = min(float(self.burst), self._tokens + elapsed * self.rate_per_s)
            self._at_s = now_s
        if self._tokens >= 1.0 - 1e-9:  # float sums of elapsed time fall short by an ulp
            self._tokens -= 1.0
            return True
        return False


class AppGate:
    """Per-application request rate, thread-safe.

    ``monotonic``: the time source of the token buckets (seconds; default ``time.monotonic``).
    """

    def __init__(self, settings: GuardSettings, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._buckets: dict[str, TokenBucket] = {}

    def take_request(self, app_id: str) -> None:
        """Count one request of ``app_id``; :class:`BusyError` over its rate."""
        now = self._monotonic()
        with self._lock:
            bucket = self._buckets.get(app_id)
            if bucket is None:
                limits = self.settings.limits(app_id)
                bucket = self._buckets[app_id] = TokenBucket(limits.requests_per_s, limits.burst, now)
            if not bucket.take(now):
                raise BusyError(f"appId: over {bucket.rate_per_s:g} requests/s (burst {bucket.burst})")


#: The TOML's names of the guard's settings (:data:`engine.config.GUARD_APP_KEYS`, ``GUARD_LIMIT_KEYS``).
_APP_FIELDS = {"maxCalls": "calls", "requestsPerSecond": "requests_per_s", "requestBurst": "burst",
               "maxPreparing": "preparing", "preparingQueue": "preparing_queue"}
_LIMIT_FIELDS = {"callLifetimeS": "call_lifetime_s", "callIdleS": "call_idle_s", "preparingWaitS": "preparing_wait_s",
                 "headerTimeoutS": "header_timeout_s", "bodyTimeoutS": "body_timeout_s",
                 "maxConnections": "max_connections", "admitCpuShare": "max_cpu_share",
                 "admitRealTime": "min_real_time", "admitLatenessS": "max_lateness_s", "callCpuShare": "call_cpu_share"}


def guard_settings(config: Config) -> GuardSettings:
    """The guard's settings a configuration gives: its ``[limits]`` and each application's own limits."""
    apps = {app_id: AppLimits(**{_APP_FIELDS[key]: value for key, value in app.guard.items()})
            for app_id, app in config.applications.items() if app.guard}
    return GuardSettings(apps=apps, **{_LIMIT_FIELDS[key]: value for key, value in config.limits.guard.items()})
