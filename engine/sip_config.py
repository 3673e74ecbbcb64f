"""The SIP tables of the configuration: ``[[numbers]]`` (inbound numbers) and ``[sip]`` (read by the SIP glue)."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.errors import ConfigError
from engine.toml_fields import flag, integer, seconds, string, table

if TYPE_CHECKING:
    from engine.config import Application

_NUMBER_KEYS = ("number", "appId", "autoAnswer", "welcome")
_SIP_KEYS = ("listen", "rtpPorts", "rtpPort", "maxCalls", "record", "inactivityS", "ringTimeoutS", "allow", "users",
             "realm", "auth", "tcp", "tcpIdleS", "tcpMaxConnections", "mediaProcesses",
             "mediaPriority")
#: A dialled user part: digits and the few characters numbers and SIP user names use.
_DIALLED = re.compile(r"[A-Za-z0-9+*#._-]{1,64}")


@dataclass(frozen=True)
class Number:
    """An inbound number (``[[numbers]]``): which application gets its calls, whether the engine answers.

    ``welcome``: a multOrders JSON file (absolute: resolved against the configuration's folder) played on answer.
    """

    number: str
    app_id: str
    auto_answer: bool = True
    welcome: Path | None = None


@dataclass(frozen=True)
class SipSettings:
    """``[sip]``: where SIP listens (``listen``: ``HOST:PORT``, "" for none) and how its calls behave.

    ``rtp_ports``: ``(first, last)`` a port pair per call from this range, or None: one shared port
    (``rtp_port``, 0 for any). ``inactivity_s``: seconds without RTP before a call is hung up (default 30).
    ``ring_timeout_s``: an ``outCall`` without ``timeout`` rings this long, and an incoming call without
    ``autoAnswer`` waits this long for ``reply`` (default 30). ``allow``: source
    networks that may send SIP (empty: any). ``users``: name → password for digest authentication, required
    when ``auth`` or when SIP listens off loopback. ``tcp``: a TCP listener on ``listen`` too (default on);
    ``tcp_idle_s``: seconds a connection no call needs may stay silent (default 300); ``tcp_max_connections``:
    connections at most (default 1024). ``media_processes``: media worker processes (default 0: the calls' media
    in the server's own media thread); N > 0: N processes, each its own media loop and one shared RTP port
    (``rtp_port`` + 2·i when ``rtp_port`` is set, else any free one; ``rtp_ports`` is not used then), every SIP
    call placed on the least loaded one (:mod:`engine.server.media_workers`). ``media_priority``: 0 (default:
    ordinary scheduling) or 1-99, the workers' RTP sender threads ``SCHED_FIFO`` at that priority (needs
    CAP_SYS_NICE, else logged and ignored; their work is bounded: one ``sendmmsg`` per group per tick).
    """

    listen: str = ""
    rtp_ports: tuple[int, int] | None = (20000, 30000)
    rtp_port: int = 0
    max_calls: int = 4096
    record: bool = False
    inactivity_s: float = 30.0
    ring_timeout_s: float = 30.0
    allow: tuple[str, ...] = ()
    users: dict[str, str] = field(default_factory=dict)
    realm: str = "ipcc-engine"
    auth: bool = False
    tcp: bool = True
    tcp_idle_s: float = 300.0
    tcp_max_connections: int = 1024
    media_processes: int = 0
    media_priority: int = 0


def parse_listen(text: str, where: str = "--sip") -> tuple[str, int]:
    """``HOST:PORT`` → (host, port); ``ValueError`` naming ``where``."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ValueError(f"{where}: expected HOST:PORT, got {text!r}")
    return host, int(port)


def _number_entry(raw: Any, applications: dict[str, Application], where: str, base: Path) -> Number:
    raw = table(raw, _NUMBER_KEYS, where)
    number = string(raw, "number", where, required=True)
    if not _DIALLED.fullmatch(number):
        raise ConfigError(f"{where}.number: must be 1-64 of A-Z a-z 0-9 + * # . _ - (got {number[:70]!r})")
    app_id = raw.get("appId", next(iter(applications)))
    if not isinstance(app_id, str) or app_id not in applications:
        raise ConfigError(f"{where}.appId: must be the appId of one of the [[applications]]")
    welcome = None
    if "welcome" in raw:
        welcome = base / string(raw, "welcome", where, required=True)
        if not welcome.is_file():
            raise ConfigError(f"{where}.welcome: no such file {raw['welcome']!r} (relative to the configuration)")
    return Number(number, app_id, flag(raw, "autoAnswer", True, where), welcome)


def parse_numbers(raw: Any, applications: dict[str, Application], where: str, base: Path) -> tuple[Number, ...]:
    """The ``[[numbers]]`` tables (``welcome`` relative to ``base``; ``appId`` one of ``applications``)."""
    if not isinstance(raw, list):
        raise ConfigError(f"{where}: numbers must be an array of [[numbers]] tables")
    numbers = tuple(_number_entry(item, applications, f"{where}: numbers[{i}]", base) for i, item in enumerate(raw))
    seen: set[str] = set()
    for i, entry in enumerate(numbers):
        if entry.number in seen:
            raise ConfigError(f"{where}: numbers[{i}].number {entry.number!r} appears twice")
        seen.add(entry.number)
    return numbers


def _port_range(value: Any, where: str) -> tuple[int, int] | None:
    if value == "shared":
        return None
    if (not isinstance(value, list) or len(value) != 2 or not all(isinstance(v, int) and not isinstance(v, bool)
                                                                  for v in value)
            or not 1024 <= value[0] < value[1] <= 65535):
        raise ConfigError(f'{where}.rtpPorts: must be [first, last] (1024 <= first < last <= 65535) or "shared"')
    return value[0], value[1]


def _allow(raw: dict[str, Any], where: str) -> tuple[str, ...]:
    allow = raw.get("allow", [])
    try:
        if not isinstance(allow, list) or not all(isinstance(n, str) for n in allow):
            raise ValueError("not a list of strings")
        for network in allow:
            ipaddress.ip_network(network, strict=False)
    except ValueError as exc:
        raise ConfigError(f'{where}.allow: must be a list of networks such as "127.0.0.0/8" ({exc})') from None
    return tuple(allow)


def parse_sip(raw: Any, where: str) -> SipSettings:
    """The ``[sip]`` table."""
    where = f"{where}: sip"
    raw = table(raw, _SIP_KEYS, where)
    listen = string(raw, "listen", where)
    if listen:
        try:
            parse_listen(listen, f"{where}.listen")
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
    users = raw.get("users", {})
    if not isinstance(users, dict) or not all(isinstance(v, str) and v for v in users.values()):
        raise ConfigError(f"{where}.users: must be a table of name = \"password\" (non-empty strings)")
    port = integer(raw, "rtpPort", 0, 0, where)
    if port > 65535:
        raise ConfigError(f"{where}.rtpPort: must be a port, 0-65535")
    return SipSettings(listen, _port_range(raw.get("rtpPorts", [20000, 30000]), where), port,
                       integer(raw, "maxCalls", 4096, 1, where), flag(raw, "record", False, where),
                       seconds(raw, "inactivityS", 30.0, where), seconds(raw, "ringTimeoutS", 30.0, where),
                       _allow(raw, where), dict(users), string(raw, "realm", where) or "ipcc-engine",
                       flag(raw, "auth", False, where), flag(raw, "tcp", True, where),
                       seconds(raw, "tcpIdleS", 300.0, where), integer(raw, "tcpMaxConnections", 1024, 1, where),
                       _media_processes(raw, where), _media_priority(raw, where))


#: ``[sip] mediaProcesses`` at most.
MAX_MEDIA_PROCESSES = 64


def _media_processes(raw: dict[str, Any], where: str) -> int:
    count = integer(raw, "mediaProcesses", 0, 0, where)
    if count > MAX_MEDIA_PROCESSES:
        raise ConfigError(f"{where}.mediaProcesses: must be 0-{MAX_MEDIA_PROCESSES} (got {count})")
    return count


def _media_priority(raw: dict[str, Any], where: str) -> int:
    priority = integer(raw, "mediaPriority", 0, 0, where)
    if priority > 99:
        raise ConfigError(f"{where}.mediaPriority: must be 0 (none) or 1-99 (got {priority})")
    return priority
