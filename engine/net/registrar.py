"""A registrar for local softphones (RFC 3261 §10): address-of-record → contact bindings with expiry.

Times are seconds of an injected clock (the ``now`` given to each call). A binding remembers where its
REGISTER came from: over TCP that is the phone's connection, which requests to the phone reuse while it is
open (connection reuse as in RFC 5626 §5.3 and RFC 5923: a softphone behind NAT or a firewall cannot be
reached by a new connection to its Contact).
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.net.sip_message import SipMessage
from engine.net.sip_peer import Peer
from engine.net.sip_uri import SipError, parse_name_addr, parse_uri, split_commas

DEFAULT_EXPIRES_S = 3600
MIN_EXPIRES_S = 60
MAX_EXPIRES_S = 86400
MAX_BINDINGS = 10_000


class RegistrationError(SipError):
    """A REGISTER this registrar refuses; ``status`` is the response code (400, 423, 503)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status


@dataclass(frozen=True)
class Binding:
    """A registered contact: where the user part ``user`` can be reached, until ``expires_at``.

    ``source``: where the REGISTER came from (None: not known).
    """

    user: str
    contact: str
    expires_at: float
    source: Peer | None = None


class Registrar:
    """Bindings by user part (the softphone's number)."""

    def __init__(self) -> None:
        self._bindings: dict[str, dict[str, Binding]] = {}

    def register(self, request: SipMessage, now: float, source: Peer | None = None) -> list[Binding]:
        """Apply a REGISTER from ``source``; the user's bindings after it (:class:`RegistrationError` to refuse)."""
        user = parse_uri(parse_name_addr(request.get("to")).uri).user
        if not user:
            raise RegistrationError(400, "To has no user part")
        header_expires = request.get("expires")
        if header_expires and not header_expires.isdigit():
            raise RegistrationError(400, "malformed Expires")
        default = int(header_expires) if header_expires else DEFAULT_EXPIRES_S
        bindings = self._bindings.setdefault(user, {})
        contacts = [c for value in request.get_all("contact") for c in split_commas(value)]
        if contacts == ["*"]:
            if default != 0:
                raise RegistrationError(400, "Contact * needs Expires: 0")
            bindings.clear()
        for contact in contacts if contacts != ["*"] else []:
            address = parse_name_addr(contact)
            parse_uri(address.uri)
            expires_text = address.params.get("expires", "")
            expires = int(expires_text) if expires_text.isdigit() else default
            if expires == 0:
                bindings.pop(address.uri, None)
                continue
            if expires < MIN_EXPIRES_S:
                raise RegistrationError(423, f"Interval Too Brief (at least {MIN_EXPIRES_S} s)")
            if sum(len(b) for b in self._bindings.values()) >= MAX_BINDINGS and address.uri not in bindings:
                raise RegistrationError(503, "registrar full")
            bindings[address.uri] = Binding(user, address.uri, now + min(expires, MAX_EXPIRES_S), source)
        return self.lookup(user, now)

    def lookup(self, user: str, now: float) -> list[Binding]:
        """The user's live bindings (expired ones are forgotten)."""
        bindings = self._bindings.get(user, {})
        for uri in [uri for uri, b in bindings.items() if b.expires_at <= now]:
            del bindings[uri]
        return list(bindings.values())


    def flow(self, contact: str, now: float) -> Peer | None:
        """The connection a live binding of ``contact`` was registered over (None: none, or not over TCP)."""
        for bindings in self._bindings.values():
            binding = bindings.get(contact)
            if binding is not None and binding.expires_at > now and binding.source is not None:
                return binding.source if binding.source.reliable else None
        return None


    def flows(self, now: float) -> set[Peer]:
        """The connections of every live binding registered over TCP."""
        return {b.source for bindings in self._bindings.values() for b in bindings.values()
                if b.expires_at > now and b.source is not None and b.source.reliable}


def contact_params(binding: Binding, now: float) -> str:
    """A Contact value for a 200 to REGISTER: ``<uri>;expires=N``."""
    return f"<{binding.contact}>;expires={max(int(binding.expires_at - now), 0)}"

