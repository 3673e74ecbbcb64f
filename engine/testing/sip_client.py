"""A scripted SIP client over a real UDP socket, for tests: compose requests, wait for responses."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable

from engine.net.dialog import new_branch, new_tag
from engine.net.sip_message import SipMessage, parse_message, parse_name_addr


class SipClient:
    """Talks to ``server`` (host, port) from a free loopback port, as ``alice``."""

    def __init__(self, server: tuple[str, int]) -> None:
        self.server = server
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.address = self.sock.getsockname()
        self.tag = new_tag()
        self.received: list[SipMessage] = []

    def request(self, method: str, call_id: str, cseq: int, body: bytes = b"", to_tag: str = "",
                content_type: str = "application/sdp", branch: str = "", user: str = "10086") -> str:
        """Send a request; returns its branch."""
        branch = branch or new_branch()
        host, port = self.server
        to = f"<sip:{user}@{host}:{port}>" + (f";tag={to_tag}" if to_tag else "")
        headers = [("via", f"SIP/2.0/UDP {self.address[0]}:{self.address[1]};branch={branch}"),
                   ("max-forwards", "70"), ("from", f"<sip:alice@{self.address[0]}:{self.address[1]}>;tag={self.tag}"),
                   ("to", to), ("call-id", call_id), ("cseq", f"{cseq} {method}"),
                   ("contact", f"<sip:alice@{self.address[0]}:{self.address[1]}>")]
        if body:
            headers.append(("content-type", content_type))
        message = SipMessage(method=method, uri=f"sip:{user}@{host}:{port}", headers=headers, body=body)
        self.sock.sendto(message.to_bytes(), self.server)
        return branch

    def send_info_keys(self, call_id: str, first_cseq: int, keys: str, to_tag: str,
                       before_each: Callable[[], None]) -> None:
        """Each of ``keys`` by SIP INFO (``application/dtmf-relay``, 160 ms) after ``before_each()``, answered 200."""
        for k, key in enumerate(keys):
            before_each()
            self.request("INFO", call_id, first_cseq + k, f"Signal={key}\r\nDuration=160\r\n".encode(), to_tag=to_tag,
                         content_type="application/dtmf-relay")
            assert self.wait(200, "INFO")

    def wait(self, status: int, method: str = "", timeout_s: float = 10.0) -> SipMessage:
        """The first response with ``status`` (to ``method`` when given), reading what arrives meanwhile."""
        deadline = time.monotonic() + timeout_s
        while True:
            for message in self.received:
                if message.status == status and (not method or message.cseq[1] == method):
                    self.received.remove(message)
                    return message
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {status} {method} within {timeout_s} s; got "
                                     f"{[(m.status, m.method) for m in self.received]}")
            self.sock.settimeout(left)
            try:
                self.received.append(parse_message(self.sock.recv(65536)))
            except TimeoutError:
                continue

    @staticmethod
    def to_tag(message: SipMessage) -> str:
        """The To tag of a response."""
        return parse_name_addr(message.get("to")).tag

    def close(self) -> None:
        """Close the socket."""
        self.sock.close()
