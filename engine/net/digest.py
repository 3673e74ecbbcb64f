"""HTTP digest authentication for SIP (RFC 3261 §22, RFC 8760: SHA-256 and MD5): challenges and checks.

Nonces are stateless: ``time:HMAC(secret, time)``, valid for ``nonce_ttl_s`` seconds of the injected clock.
Users are a mapping user name → password (the realm is ours).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable, Mapping

from engine.net.sip_message import SipMessage

ALGORITHMS = {"SHA-256": hashlib.sha256, "MD5": hashlib.md5}
NONCE_TTL_S = 300.0


def _h(algorithm: str, text: str) -> str:
    return ALGORITHMS[algorithm](text.encode()).hexdigest()


def parse_authorization(value: str) -> dict[str, str]:
    """``Digest username="a", realm="r", ...`` → its parameters (names lower-case); {} when not Digest."""
    scheme, _, rest = value.strip().partition(" ")
    if scheme.lower() != "digest":
        return {}
    params: dict[str, str] = {}
    for part in rest.split(","):
        name, _, val = part.strip().partition("=")
        if name:
            params[name.strip().lower()] = val.strip().strip('"')
    return params


class DigestAuth:
    """Challenges and verifies requests for ``users`` in ``realm``; ``now()`` is the injected clock (seconds)."""

    def __init__(self, realm: str, users: Mapping[str, str], now: Callable[[], float],
                 nonce_ttl_s: float = NONCE_TTL_S) -> None:
        self.realm = realm
        self.users = dict(users)
        self.now = now
        self.nonce_ttl_s = nonce_ttl_s
        self._secret = secrets.token_bytes(32)

    def _nonce(self, at: int) -> str:
        return f"{at}:{hmac.new(self._secret, str(at).encode(), hashlib.sha256).hexdigest()[:32]}"

    def challenges(self) -> list[tuple[str, str]]:
        """``WWW-Authenticate`` headers for a 401: SHA-256 first, then MD5 (RFC 8760 §2.4)."""
        nonce = self._nonce(int(self.now()))
        return [("www-authenticate", f'Digest realm="{self.realm}", nonce="{nonce}", algorithm={name}, qop="auth"')
                for name in ALGORITHMS]

    def _fresh(self, nonce: str) -> bool:
        at, _, _ = nonce.partition(":")
        if not at.isdigit() or not hmac.compare_digest(nonce, self._nonce(int(at))):
            return False
        return 0 <= self.now() - int(at) <= self.nonce_ttl_s

    def check(self, request: SipMessage) -> str | None:
        """The authenticated user name, or None (wrong, stale, missing credentials)."""
        for header in ("authorization", "proxy-authorization"):
            params = parse_authorization(request.get(header))
            if params:
                return self._verify(request, params)
        return None

    def _verify(self, request: SipMessage, p: dict[str, str]) -> str | None:
        user, algorithm = p.get("username", ""), p.get("algorithm", "MD5").upper()
        password = self.users.get(user)
        if password is None or algorithm not in ALGORITHMS or p.get("realm") != self.realm:
            return None
        if not self._fresh(p.get("nonce", "")):
            return None
        ha1 = _h(algorithm, f"{user}:{self.realm}:{password}")
        ha2 = _h(algorithm, f"{request.method}:{p.get('uri', '')}")
        if p.get("qop") == "auth":
            expected = _h(algorithm, f"{ha1}:{p['nonce']}:{p.get('nc', '')}:{p.get('cnonce', '')}:auth:{ha2}")
        else:
            expected = _h(algorithm, f"{ha1}:{p['nonce']}:{ha2}")
        return user if hmac.compare_digest(expected, p.get("response", "")) else None


def authorization(user: str, password: str, realm: str, nonce: str, method: str, uri: str,
                  algorithm: str = "SHA-256", cnonce: str = "0a4f113b", nc: str = "00000001") -> str:
    """The ``Authorization`` value a client sends (qop=auth); for our own outgoing requests and tests."""
    ha1 = _h(algorithm, f"{user}:{realm}:{password}")
    ha2 = _h(algorithm, f"{method}:{uri}")
    response = _h(algorithm, f"{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}")
    return (f'Digest username="{user}", realm="{realm}", nonce="{nonce}", uri="{uri}", response="{response}", '
            f'algorithm={algorithm}, qop=auth, nc={nc}, cnonce="{cnonce}"')
