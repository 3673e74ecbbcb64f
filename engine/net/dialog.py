"""A SIP dialog (RFC 3261 §12): identifiers, sequence numbers, route set and remote target; in-dialog requests."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

from engine.net.sip_message import SipMessage
from engine.net.sip_uri import parse_name_addr


def new_tag() -> str:
    """A fresh tag (From/To)."""
    return secrets.token_hex(6)


def new_branch() -> str:
    """A fresh RFC 3261 branch (the magic cookie first)."""
    return "z9hG4bK" + secrets.token_hex(8)


@dataclass
class Dialog:
    """One dialog from this end's point of view; ``via`` is our sent-by (``host:port``) over ``transport``.

    ``transport``: the Via's token of the connection the dialog uses (``UDP`` or ``TCP``).
    """

    call_id: str
    local_tag: str
    remote_tag: str
    local_uri: str
    remote_uri: str
    remote_target: str
    via: str
    local_seq: int = 1
    remote_seq: int = 0
    route_set: list[str] = field(default_factory=list)
    contact: str = ""
    transport: str = "UDP"

    @property
    def key(self) -> tuple[str, str]:
        """(Call-ID, local tag): how in-dialog requests find it."""
        return self.call_id, self.local_tag

    @classmethod
    def as_uas(cls, request: SipMessage, local_tag: str, via: str, contact: str, transport: str = "UDP") -> Dialog:
        """The dialog an incoming INVITE makes (Record-Route kept in order, Contact as remote target)."""
        contacts = request.get_all("contact")
        target = parse_name_addr(contacts[0]).uri if contacts else parse_name_addr(request.get("from")).uri
        return cls(request.call_id, local_tag, parse_name_addr(request.get("from")).tag,
                   parse_name_addr(request.get("to")).uri, parse_name_addr(request.get("from")).uri, target, via,
                   local_seq=1, remote_seq=request.cseq[0], route_set=request.get_all("record-route"),
                   contact=contact, transport=transport)

    def confirm_as_uac(self, response: SipMessage) -> None:
        """Our INVITE's 2xx: the remote tag, target and route set (Record-Route reversed)."""
        self.remote_tag = parse_name_addr(response.get("to")).tag
        contacts = response.get_all("contact")
        if contacts:
            self.remote_target = parse_name_addr(contacts[0]).uri
        self.route_set = list(reversed(response.get_all("record-route")))

    def request(self, method: str, body: bytes = b"", content_type: str = "", cseq: int | None = None,
                branch: str | None = None, extra: list[tuple[str, str]] | None = None) -> SipMessage:
        """An in-dialog request (a new CSeq unless ``cseq`` is given: ACK and CANCEL reuse the INVITE's)."""
        if cseq is None:
            self.local_seq += 1
            cseq = self.local_seq
        headers = [("via", f"SIP/2.0/{self.transport} {self.via};branch={branch or new_branch()};rport"),
                   ("max-forwards", "70"), ("from", f"<{self.local_uri}>;tag={self.local_tag}"),
                   ("to", f"<{self.remote_uri}>" + (f";tag={self.remote_tag}" if self.remote_tag else "")),
                   ("call-id", self.call_id), ("cseq", f"{cseq} {method}")]
        headers += [("route", route) for route in self.route_set]
        if self.contact and method in ("INVITE", "REFER"):
            headers.append(("contact", self.contact))
        headers += list(extra or [])
        if body:
            headers.append(("content-type", content_type))
        return SipMessage(method=method, uri=self.remote_target, headers=headers, body=body)
