"""SIP messages framed on a byte stream (RFC 3261 §18.3): the header's end, then Content-Length bytes of body.

Pure: :meth:`StreamFramer.feed` takes what the connection read and returns each complete message. Over a
stream Content-Length is mandatory; a missing or malformed one, a header that does not end within the cap, or a
message larger than the cap raise :class:`FramingError`, after which the connection is closed (the stream can
no longer be split into messages). Leading CRLFs are skipped; a double CRLF is a keep-alive ping (RFC 5626
§3.5.1), counted in :attr:`StreamFramer.pings` so that the transport answers it with a CRLF pong.
"""

from __future__ import annotations

from engine.net.sip_uri import SipError

#: Bytes a connection may buffer (a message's header and body together at most this long).
MAX_STREAM_BYTES = 64 * 1024
_END = b"\r\n\r\n"


class FramingError(SipError):
    """The stream cannot be split into messages; ``head`` is the broken message's header ("" if none ended)."""

    def __init__(self, reason: str, head: bytes = b"") -> None:
        super().__init__(reason)
        self.head = head


def _content_length(head: bytes) -> int:
    """The Content-Length (or compact ``l``) of a header block; :class:`FramingError` when absent or bad."""
    values = []
    for line in head.split(b"\r\n")[1:]:
        name, colon, value = line.partition(b":")
        if colon and name.strip().lower() in (b"content-length", b"l"):
            values.append(value.strip())
    if not values:
        raise FramingError("no Content-Length on a stream transport", head)
    if len(values) > 1 or not values[0].isdigit() or len(values[0]) > 7:
        raise FramingError("malformed Content-Length", head)
    return int(values[0])


class StreamFramer:
    """Splits one connection's bytes into SIP messages, buffering at most ``max_bytes``."""

    def __init__(self, max_bytes: int = MAX_STREAM_BYTES) -> None:
        self.max_bytes = max_bytes
        self.pings = 0
        self._buffer = b""

    @property
    def buffered(self) -> int:
        """Bytes held, waiting for the rest of their message."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[bytes]:
        """Append ``data``; the messages now complete, in order (:class:`FramingError`: see the module)."""
        self._buffer += data
        messages = []
        while True:
            self._skip_crlfs()
            end = self._buffer.find(_END)
            if end < 0:
                if len(self._buffer) > self.max_bytes:
                    raise FramingError(f"a header of more than {self.max_bytes} bytes without its end")
                return messages
            head = self._buffer[:end]
            total = end + len(_END) + _content_length(head)
            if total > self.max_bytes:
                raise FramingError(f"a message of {total} bytes (at most {self.max_bytes})", head)
            if len(self._buffer) < total:
                return messages
            messages.append(self._buffer[:total])
            self._buffer = self._buffer[total:]

    def _skip_crlfs(self) -> None:
        while self._buffer.startswith(b"\r\n"):
            if self._buffer.startswith(_END):
                self.pings += 1
                self._buffer = self._buffer[len(_END):]
            else:
                self._buffer = self._buffer[2:]
