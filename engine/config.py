"""The engine's configuration (TOML): applications, the route table of phone numbers, folders and limits.

Every key is documented in ``apps.example.toml`` (shipped, and loaded by the tests). A key that is not known is
refused at start-up naming it and its nearest valid spelling (``callbackURL`` → ``callbackUrl``); so is a
``voice`` espeak-ng does not have. Without a file the built-in configuration has the contract's demo
application and one route: every number to a recording with a silent caller (:data:`DEFAULT_ROUTES`).
"""

from __future__ import annotations

import fnmatch
import re
import tomllib
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from engine.audio.decode import DEFAULT_MAX_FILE_BYTES, DEFAULT_MAX_FILE_SECONDS, check_decode_limits
from engine.audio.library import DEFAULT_CACHE_BYTES
from engine.audio.silence import DEFAULT_SILENCE_DBM0
from engine.errors import ConfigError, UnknownAppError
from engine.sip_config import Number, SipSettings, parse_numbers, parse_sip
from engine.toml_fields import check_keys, integer, number, string, table
from engine.tts.cache import DEFAULT_MEMORY_BYTES
from engine.tts.disk_cache import DEFAULT_DISK_BYTES
from engine.tts.synthesizer import VoiceSettings
from engine.tts.voices import unknown_voice
from engine.wire.body import DEFAULT_MAX_DEPTH, DEFAULT_MAX_KEYS, JsonLimits

DEMO_APP_ID = "247e35ff320a4142a105024055c367cf"
DEFAULT_QUEUE_LIMIT = 8
#: Seconds of the caller's silence that end a ``message`` (default of ``silenceSeconds``).
DEFAULT_SILENCE_S = 5.0
#: A request body's bytes at most (default of ``[limits] bodyBytes``): 1 MiB.
DEFAULT_BODY_BYTES = 1 << 20
#: An upload's bytes at most (default of ``[limits] uploadBytes``): 10 MiB.
DEFAULT_UPLOAD_BYTES = 10 << 20
#: Live calls at most (default of ``[limits] calls``).
DEFAULT_MAX_CALLS = 10_000
#: A route's ``number`` pattern: digits and ``+ # *`` (``*`` at the end or alone matches any digits).
_PATTERN = re.compile(r"[0-9+#*?]{1,40}")


class Outcome(Enum):
    """How a routed call attempt ends: answered, or one of the failures an application must handle."""

    ANSWER = "answer"
    NO_ANSWER = "noanswer"
    BUSY = "busy"
    REJECT = "reject"
    UNREACHABLE = "unreachable"


@dataclass(frozen=True)
class Route:
    """One row of the route table: numbers matching ``number`` go to ``endpoint``.

    ``number``: an exact number, a prefix pattern (``138*``) or ``*``; ``?`` matches one character.
    ``endpoint``: ``wav:{called}``, ``null``, ``speaker``, ... with ``{called}``, ``{caller}`` and ``{callId}``
    replaced. ``keys`` / ``caller_wav``: the caller's side (a key script / a file of the voice library).
    ``outcome``: the call attempt's outcome (default answered).
    """

    number: str
    endpoint: str
    keys: str = ""
    caller_wav: str = ""
    outcome: Outcome = Outcome.ANSWER

    def matches(self, number: str) -> bool:
        """True when ``number`` matches this route's pattern."""
        return fnmatch.fnmatchcase(number, self.number.replace("[", "[[]"))


#: Every number to a recording named after the number and the call, in the application's recordings folder.
DEFAULT_ROUTES = (Route("*", "wav:{called}-{callId}"),)


@dataclass(frozen=True)
class Application:
    """One application: where its events go, how its calls speak, how many requests a call may queue.

    ``delivery_concurrency``: its events in flight at once (None: ``[limits] deliveryConcurrency``).
    ``silence_s`` / ``silence_dbm0``: a ``message`` ends once the caller has been below ``silence_dbm0`` (default
    −45 dBm0) for ``silence_s`` seconds (default 5; 0: never on silence). ``guard``: the application's own
    limits of the server's guard, by :data:`GUARD_APP_KEYS` name (absent: the guard's defaults). Its ``secret``
    and ``allowIps`` are read by the server's authentication (``engine.server.auth.read_credentials``).
    """

    app_id: str
    callback_url: str | None = None
    voice: VoiceSettings = field(default_factory=VoiceSettings)
    queue_limit: int = DEFAULT_QUEUE_LIMIT
    delivery_concurrency: int | None = None
    silence_s: float = DEFAULT_SILENCE_S
    silence_dbm0: float = DEFAULT_SILENCE_DBM0
    guard: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Limits:
    """The ``[limits]`` table besides the JSON bounds: what each request and each cache may cost.

    ``body_bytes`` / ``upload_bytes``: a request body's / an upload's bytes (default 1 MiB / 10 MiB);
    ``file_seconds`` / ``file_bytes``: one decoded file's seconds of audio / bytes on disk (default 600 s,
    64 MiB); ``library_cache_bytes``: decoded files kept in memory (default 256 MiB); ``speech_memory_bytes`` /
    ``speech_disk_bytes``: the speech cache in memory / on disk (default 128 MiB / 512 MiB);
    ``delivery_concurrency``: each application's events in flight at once (None: the delivery's default, 16);
    ``calls``: live calls at most (default 10,000; ``outCall`` beyond answers ``108102``). ``guard``: the
    server guard's call timeouts and HTTP bounds, by :data:`GUARD_LIMIT_KEYS` name (absent: its defaults).
    """

    body_bytes: int = DEFAULT_BODY_BYTES
    upload_bytes: int = DEFAULT_UPLOAD_BYTES
    file_seconds: float = DEFAULT_MAX_FILE_SECONDS
    file_bytes: int = DEFAULT_MAX_FILE_BYTES
    library_cache_bytes: int = DEFAULT_CACHE_BYTES
    speech_memory_bytes: int = DEFAULT_MEMORY_BYTES
    speech_disk_bytes: int = DEFAULT_DISK_BYTES
    delivery_concurrency: int | None = None
    calls: int = DEFAULT_MAX_CALLS
    guard: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Config:
    """The configured applications by ``appId``, the route table (first match wins), folders and limits.

    ``state_dir`` / ``recordings`` / ``cache_dir``: None means the command line's default (``./state``,
    ``./recordings``, the speech cache's default folder).
    """

    applications: dict[str, Application]
    routes: tuple[Route, ...] = DEFAULT_ROUTES
    json_limits: JsonLimits = field(default_factory=JsonLimits)
    state_dir: Path | None = None
    recordings: Path | None = None
    limits: Limits = field(default_factory=Limits)
    cache_dir: Path | None = None
    numbers: tuple[Number, ...] = ()  # [[numbers]]: inbound SIP numbers (engine.sip_config)
    sip: SipSettings = field(default_factory=lambda: SipSettings())

    def application(self, app_id: str) -> Application:
        """The application ``app_id``; :class:`UnknownAppError` (``108101``) when it is not configured."""
        try:
            return self.applications[app_id]
        except KeyError:
            raise UnknownAppError(f"appId: {app_id[:64]!r} is not a configured application") from None

    def route(self, number: str) -> Route | None:
        """The first route whose pattern matches ``number`` (None: no route)."""
        return next((route for route in self.routes if route.matches(number)), None)


def default_config() -> Config:
    """The built-in configuration: the contract's demo application, events to the event log only."""
    return Config({DEMO_APP_ID: Application(DEMO_APP_ID)})


_TOP_KEYS = ("applications", "routes", "limits", "server", "numbers", "sip")  # numbers, sip: engine.sip_config
#: Per-application keys of the server's guard: the TOML key and the least value (``engine.server.limits``).
GUARD_APP_KEYS = {"maxCalls": 1, "requestsPerSecond": 0.001, "requestBurst": 1, "maxPreparing": 1, "preparingQueue": 0}
#: ``[limits]`` keys of the server's guard: call timeouts, HTTP bounds and admission, in seconds, a count or a share.
GUARD_LIMIT_KEYS = {"callLifetimeS": 0.001, "callIdleS": 0.001, "preparingWaitS": 0.001, "headerTimeoutS": 0.001,
                    "bodyTimeoutS": 0.001, "maxConnections": 1, "admitCpuShare": 0.001, "admitRealTime": 1e-6,
                    "admitLatenessS": 0.001, "callCpuShare": 1e-9}
_APP_KEYS = ("appId", "callbackUrl", "queueLimit", "voice", "rate", "volume", "deliveryConcurrency",
             "silenceSeconds", "silenceLevel", "secret", "allowIps", *GUARD_APP_KEYS)
_ROUTE_KEYS = ("number", "endpoint", "keys", "callerWav", "outcome")
#: ``[limits]`` keys of :class:`Limits`: the field and the least value allowed.
_BOUNDS = {"bodyBytes": ("body_bytes", 64), "uploadBytes": ("upload_bytes", 1024),
           "fileBytes": ("file_bytes", 1), "libraryCacheBytes": ("library_cache_bytes", 0),
           "speechMemoryBytes": ("speech_memory_bytes", 0), "speechDiskBytes": ("speech_disk_bytes", 0),
           "deliveryConcurrency": ("delivery_concurrency", 1), "calls": ("calls", 1)}
_LIMIT_KEYS = ("jsonDepth", "jsonKeys", "fileSeconds", *_BOUNDS, *GUARD_LIMIT_KEYS)
_SERVER_KEYS = ("state", "recordings", "cache")










def _application(raw: Any, where: str) -> Application:
    raw = table(raw, _APP_KEYS, where)
    app_id = string(raw, "appId", where, required=True)
    callback = raw.get("callbackUrl")
    if callback is not None and (not isinstance(callback, str) or not callback.startswith(("http://", "https://"))):
        raise ConfigError(f"{where}.callbackUrl: must be an http:// or https:// URL")
    limit = integer(raw, "queueLimit", DEFAULT_QUEUE_LIMIT, 1, where)
    voice_id = raw.get("voice")
    if isinstance(voice_id, str) and (why := unknown_voice(voice_id)) is not None:
        raise ConfigError(f"{where}.voice: {why}")
    try:
        voice = VoiceSettings(voice=voice_id, rate_wpm=raw.get("rate", VoiceSettings.rate_wpm),
                              volume=raw.get("volume", VoiceSettings.volume))
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: {exc}") from None
    concurrency = integer(raw, "deliveryConcurrency", 1, 1, where) if "deliveryConcurrency" in raw else None
    silence_s = number(raw, "silenceSeconds", DEFAULT_SILENCE_S, (0, 600), where)
    silence_dbm0 = number(raw, "silenceLevel", DEFAULT_SILENCE_DBM0, (-90, 0), where)
    return Application(app_id, callback, voice, limit, concurrency, silence_s, silence_dbm0,
                       _guard(raw, GUARD_APP_KEYS, where))


def _guard(raw: dict[str, Any], keys: dict[str, float], where: str) -> dict[str, float]:
    """The guard's keys present in ``raw``: each a number at least its least value (whole when that is)."""
    values = {}
    for key, least in keys.items():
        if key in raw:
            value = raw[key]
            whole = isinstance(least, int)
            if isinstance(value, bool) or not isinstance(value, int if whole else int | float) or value < least:
                kind = "a whole number" if whole else "a number"
                raise ConfigError(f"{where}.{key}: must be {kind} >= {least}, got {value!r}")
            values[key] = value
    return values




def _route(raw: Any, where: str) -> Route:
    raw = table(raw, _ROUTE_KEYS, where)
    number = string(raw, "number", where, required=True)
    if not _PATTERN.fullmatch(number):
        raise ConfigError(f"{where}.number: must be a number or pattern of 0-9 + # * ? (got {number!r})")
    endpoint = string(raw, "endpoint", where, required=True)
    outcome = raw.get("outcome", Outcome.ANSWER.value)
    try:
        chosen = Outcome(outcome)
    except ValueError:
        raise ConfigError(f"{where}.outcome: must be one of {', '.join(o.value for o in Outcome)}") from None
    try:
        endpoint.format_map({"called": "1", "caller": "2", "callId": "c"})
    except (KeyError, ValueError, IndexError) as exc:
        raise ConfigError(f"{where}.endpoint: {endpoint!r} may use only {{called}}, {{caller}} and {{callId}} "
                          f"({type(exc).__name__}: {exc})") from None
    route = Route(number, endpoint, string(raw, "keys", where), string(raw, "callerWav", where), chosen)
    if route.keys and route.caller_wav:
        raise ConfigError(f"{where}: give keys or callerWav, not both")
    return route


def _folder(raw: dict[str, Any], key: str, where: str, base: Path) -> Path | None:
    if key not in raw:
        return None
    return base / string(raw, key, where, required=True)


def _limits(raw: dict[str, Any], where: str) -> Limits:
    """The ``[limits]`` table's bounds besides the JSON ones (each a whole number, ``fileSeconds`` any number)."""
    values: dict[str, Any] = {name: integer(raw, key, 0, minimum, where)
                              for key, (name, minimum) in _BOUNDS.items() if key in raw}
    if "fileSeconds" in raw:
        values["file_seconds"] = number(raw, "fileSeconds", 0, (0.001, 86_400), where)
    limits = Limits(**values, guard=_guard(raw, GUARD_LIMIT_KEYS, where))
    check_decode_limits(limits.file_seconds, limits.file_bytes)  # the library's own checks, met by the above
    return limits


def parse_config(raw: dict[str, Any], where: str, base: Path = Path(".")) -> Config:
    """A parsed TOML document → :class:`Config`; ``where`` names it in errors, ``base`` anchors relative folders."""
    check_keys(raw, _TOP_KEYS, where)
    apps = raw.get("applications")
    if not isinstance(apps, list) or not apps:
        raise ConfigError(f"{where}: needs at least one [[applications]] table")
    applications: dict[str, Application] = {}
    for i, item in enumerate(apps):
        app = _application(item, f"{where}: applications[{i}]")
        if app.app_id in applications:
            raise ConfigError(f"{where}: applications[{i}].appId {app.app_id!r} appears twice")
        applications[app.app_id] = app
    routes_raw = raw.get("routes", [])
    if not isinstance(routes_raw, list):
        raise ConfigError(f"{where}: routes must be an array of [[routes]] tables")
    routes = tuple(_route(item, f"{where}: routes[{i}]") for i, item in enumerate(routes_raw)) or DEFAULT_ROUTES
    limits = table(raw.get("limits", {}), _LIMIT_KEYS, f"{where}: limits")
    json_limits = JsonLimits(integer(limits, "jsonDepth", DEFAULT_MAX_DEPTH, 2, f"{where}: limits"),
                             integer(limits, "jsonKeys", DEFAULT_MAX_KEYS, 8, f"{where}: limits"))
    server = table(raw.get("server", {}), _SERVER_KEYS, f"{where}: server")
    folders = {key: _folder(server, key, f"{where}: server", base) for key in _SERVER_KEYS}
    return Config(applications, routes, json_limits, folders["state"], folders["recordings"],
                  _limits(limits, f"{where}: limits"), folders["cache"],
                  parse_numbers(raw.get("numbers", []), applications, where, base),
                  parse_sip(raw.get("sip", {}), where))


def load_config(path: str | Path | None) -> Config:
    """Read a TOML configuration; ``None`` gives :func:`default_config`. Folders are relative to the file's."""
    if path is None:
        return default_config()
    try:
        raw = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: {exc}") from None
    return parse_config(raw, str(path), Path(path).parent)
