"""Authentication per application: an IP allow-list and a signature header.

An application with neither (the default) is not checked: that is only allowed on a loopback address
(:func:`require_auth_off_loopback`, used by ``serve``). An application with an allow-list accepts requests from
those networks only; one with a secret needs two headers on every request:

* ``X-Ipcc-Timestamp``: Unix time in whole seconds, at most ``max_skew_s`` (default 300 s) from the server's clock;
* ``X-Ipcc-Signature``: ``hex(HMAC-SHA256(secret, timestamp + "." + signed))``, where ``signed`` is the raw
  body of a POST, and the raw query string of a GET (``appId=...&callId=...``).

Signatures are compared in constant time (``hmac.compare_digest``). A refusal is
:class:`~engine.errors.AuthError` (``108101``) naming the header or the address rule, never the secret.
Time is injected: ``wall`` gives Unix seconds (default ``time.time``).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import time
import tomllib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from engine.errors import AuthError

SIGNATURE_HEADER = "x-ipcc-signature"
TIMESTAMP_HEADER = "x-ipcc-timestamp"
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class Credential:
    """How one application proves itself: ``secret`` (bytes; None: no signature) and ``allow`` (networks)."""

    secret: bytes | None = None
    allow: tuple[IpNetwork, ...] = ()

    @classmethod
    def of(cls, secret: str | bytes | None = None, allow: Iterable[str] = ()) -> Credential:
        """From configuration values: a secret (at least 16 bytes) and CIDR strings (``"10.0.0.0/8"``)."""
        raw = secret.encode() if isinstance(secret, str) else secret
        if raw is not None and len(raw) < 16:
            raise ValueError("secret: must be at least 16 bytes")
        try:
            networks = tuple(ipaddress.ip_network(item, strict=False) for item in allow)
        except ValueError as exc:
            raise ValueError(f"allowIps: {exc}") from None
        return cls(raw, networks)

    @property
    def checked(self) -> bool:
        """True when the application is authenticated at all."""
        return self.secret is not None or bool(self.allow)


@dataclass(frozen=True)
class AuthSettings:
    """The credentials by ``appId``; ``max_skew_s``: how far a timestamp may be from now (s)."""

    apps: dict[str, Credential] = field(default_factory=dict)
    max_skew_s: float = 300.0

    @property
    def enabled(self) -> bool:
        """True when some application is authenticated."""
        return any(c.checked for c in self.apps.values())


def signature(secret: bytes, timestamp: str, signed: bytes) -> str:
    """The signature header's value for ``signed`` bytes at ``timestamp`` (hex HMAC-SHA256)."""
    return hmac.new(secret, timestamp.encode("ascii") + b"." + signed, hashlib.sha256).hexdigest()


def signed_headers(secret: bytes, signed: bytes, now_s: float | None = None) -> dict[str, str]:
    """The two headers a client sends with ``signed`` (the body, or a GET's query string)."""
    timestamp = str(int(time.time() if now_s is None else now_s))
    return {TIMESTAMP_HEADER: timestamp, SIGNATURE_HEADER: signature(secret, timestamp, signed)}


class Authenticator:
    """Checks requests against :class:`AuthSettings`; ``wall``: Unix seconds (default ``time.time``)."""

    def __init__(self, settings: AuthSettings, wall: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self._wall = wall

    @property
    def enabled(self) -> bool:
        """True when some application is authenticated (else :meth:`check` is never needed)."""
        return self.settings.enabled

    def check(self, app_id: str, client_ip: str | None, headers: Mapping[str, str], signed: bytes) -> None:
        """Refuse (:class:`AuthError`) a request of ``app_id`` from ``client_ip`` that is not the application's."""
        credential = self.settings.apps.get(app_id)
        if credential is None or not credential.checked:
            return
        if credential.allow:
            try:
                address = ipaddress.ip_address(client_ip or "")
            except ValueError:
                raise AuthError("client address: unknown; this application has an IP allow-list") from None
            if not any(address in network for network in credential.allow):
                raise AuthError(f"client address: {address} is not in this application's IP allow-list")
        if credential.secret is not None:
            self._check_signature(credential.secret, headers, signed)

    def _check_signature(self, secret: bytes, headers: Mapping[str, str], signed: bytes) -> None:
        timestamp = headers.get(TIMESTAMP_HEADER)
        given = headers.get(SIGNATURE_HEADER)
        if not timestamp or not given:
            raise AuthError(f"{TIMESTAMP_HEADER} and {SIGNATURE_HEADER}: required by this application")
        if not (timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= 12):
            raise AuthError(f"{TIMESTAMP_HEADER}: must be Unix seconds")
        skew = abs(self._wall() - int(timestamp))
        if skew > self.settings.max_skew_s:
            raise AuthError(f"{TIMESTAMP_HEADER}: {skew:.0f} s from the server's clock; at most "
                            f"{self.settings.max_skew_s:g} s")
        expected = signature(secret, timestamp, signed)
        if not hmac.compare_digest(expected.encode("ascii"), given.strip().lower().encode("utf-8", "replace")):
            raise AuthError(f"{SIGNATURE_HEADER}: does not match the body and timestamp")


def require_auth_off_loopback(host: str, settings: AuthSettings, applications: Iterable[str]) -> None:
    """Refuse (``ValueError``) to serve on ``host`` beyond loopback unless every application is authenticated."""
    if host in LOOPBACK_HOSTS:
        return
    try:
        if ipaddress.ip_address(host).is_loopback:
            return
    except ValueError:
        pass
    open_apps = sorted(app for app in applications if not settings.apps.get(app, Credential()).checked)
    if open_apps:
        raise ValueError(f"--host {host}: not a loopback address, and these applications have no secret or "
                         f"allowIps: {', '.join(open_apps)[:300]}")


def read_credentials(path: str | Path | None) -> AuthSettings:
    """The ``secret`` and ``allowIps`` of each ``[[applications]]`` table of a TOML configuration (None: none).

    The rest of the file is the configuration's (:mod:`engine.config`); a bad value is a ``ValueError`` naming it.
    """
    if path is None:
        return AuthSettings()
    raw = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    apps: dict[str, Credential] = {}
    for i, item in enumerate(raw.get("applications") or []):
        if not isinstance(item, dict) or not isinstance(item.get("appId"), str):
            continue  # the configuration's own reader names these
        secret, allow = item.get("secret"), item.get("allowIps", [])
        if secret is not None and not isinstance(secret, str):
            raise ValueError(f"{Path(path).name}: applications[{i}].secret: must be a string")
        if not isinstance(allow, list) or not all(isinstance(a, str) for a in allow):
            raise ValueError(f"{Path(path).name}: applications[{i}].allowIps: must be a list of strings")
        try:
            apps[item["appId"]] = Credential.of(secret, allow)
        except ValueError as exc:
            raise ValueError(f"{Path(path).name}: applications[{i}].{exc}") from None
    return AuthSettings(apps)
