"""SIP addresses (RFC 3261 §19, §20.10): URIs, name-addr values, header parameters, comma-separated lists.

Every malformed input raises :class:`SipParseError` (a ``ValueError``) with the reason; nothing else escapes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

_URI = re.compile(r"(?P<scheme>sips?|tel):(?:(?P<user>[^@;?]+)@)?(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)"
                  r"(?::(?P<port>\d{1,5}))?(?P<params>(?:;[^;?]*)*)(?:\?.*)?")
_TEL = re.compile(r"tel:(?P<user>[+0-9*#().-]+)(?P<params>(?:;[^;?]*)*)")


class SipError(ValueError):
    """A SIP-level refusal or parse failure; ``reason`` is the human-readable cause."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class SipParseError(SipError):
    """A malformed SIP message; ``partial`` is the request when it can still be answered (``400``)."""

    def __init__(self, reason: str, partial: Any = None) -> None:
        super().__init__(reason)
        self.partial: Any = partial  # a SipMessage (engine.net.sip_message) or None


@dataclass(frozen=True)
class SipUri:
    """A SIP URI: ``sip:user@host:port;params`` (``port`` None when absent)."""

    scheme: str
    user: str
    host: str
    port: int | None = None
    params: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        user = f"{self.user}@" if self.user else ""
        port = f":{self.port}" if self.port is not None else ""
        params = "".join(f";{k}={v}" if v else f";{k}" for k, v in self.params.items())
        return f"{self.scheme}:{user}{self.host}{port}{params}"


def parse_params(text: str) -> dict[str, str]:
    """``;a=1;lr`` → ``{"a": "1", "lr": ""}`` (names lower-case)."""
    params: dict[str, str] = {}
    for item in text.split(";"):
        item = item.strip()
        if item:
            name, _, value = item.partition("=")
            params[name.strip().lower()] = value.strip().strip('"')
    return params


def parse_uri(text: str) -> SipUri:
    """Parse a ``sip:``/``sips:``/``tel:`` URI; :class:`SipParseError` when it is not one."""
    text = text.strip()
    if text.startswith("tel:"):
        tel = _TEL.fullmatch(text)
        if tel is None:
            raise SipParseError(f"invalid URI {text[:60]!r}")
        return SipUri("tel", tel["user"], "", None, parse_params(tel["params"]))
    match = _URI.fullmatch(text)
    if match is None:
        raise SipParseError(f"invalid URI {text[:60]!r}")
    port = int(match["port"]) if match["port"] else None
    if port is not None and not 0 < port < 65536:
        raise SipParseError(f"invalid port in URI {text[:60]!r}")
    return SipUri(match["scheme"], match["user"] or "", match["host"].lower(), port, parse_params(match["params"]))


@dataclass(frozen=True)
class NameAddr:
    """A From/To/Contact/Route value: ``"Name" <uri>;params``."""

    display: str
    uri: str
    params: dict[str, str]

    @property
    def tag(self) -> str:
        """The ``tag`` parameter ("" when absent)."""
        return self.params.get("tag", "")

    def __str__(self) -> str:
        display = f'"{self.display}" ' if self.display else ""
        params = "".join(f";{k}={v}" if v else f";{k}" for k, v in self.params.items())
        return f"{display}<{self.uri}>{params}"


def parse_name_addr(text: str) -> NameAddr:
    """Parse ``"Name" <sip:u@h>;tag=x`` or ``sip:u@h;tag=x``; :class:`SipParseError` when malformed."""
    text = text.strip()
    if "<" in text:
        display, _, rest = text.partition("<")
        uri, close, params = rest.partition(">")
        if not close:
            raise SipParseError(f"unclosed '<' in {text[:60]!r}")
        return NameAddr(display.strip().strip('"'), uri.strip(), parse_params(params))
    uri, _, params = text.partition(";")
    if not uri:
        raise SipParseError("empty address")
    return NameAddr("", uri.strip(), parse_params(params))


def via_sent_by(value: str) -> tuple[str, int | None]:
    """A Via value's sent-by: ``SIP/2.0/TCP [::1]:5062;branch=x`` → (``::1``, 5062); port None when absent."""
    sent_by = value.split(None, 1)[-1].split(";")[0].strip()
    if sent_by.startswith("["):
        host, _, rest = sent_by[1:].partition("]")
        port = rest.removeprefix(":")
    else:
        host, _, port = sent_by.partition(":")
    return host, int(port) if port.isdigit() and 0 < int(port) < 65536 else None


def split_commas(value: str) -> list[str]:
    """Split a header value at commas outside quotes and angle brackets (Via, Contact, Route)."""
    parts, depth, quoted, start = [], 0, False, 0
    for i, ch in enumerate(value):
        if ch == '"':
            quoted = not quoted
        elif not quoted and ch == "<":
            depth += 1
        elif not quoted and ch == ">":
            depth -= 1
        elif ch == "," and not quoted and depth == 0:
            parts.append(value[start:i].strip())
            start = i + 1
    parts.append(value[start:].strip())
    return [p for p in parts if p]
