"""Batched UDP I/O on one socket: ``recvmmsg``/``sendmmsg`` through ctypes, over preallocated numpy buffers.

One system call moves up to :data:`MAX_BATCH` datagrams. Buffers are fixed at construction: ``send_data``
(rows of packets, each with its IPv4 ``sockaddr_in`` in ``send_names``) and ``recv_data`` (rows of received
datagrams, the sender's address in ``recv_names``; several ``recvmmsg`` calls fill it in one drain, so that
what a tick received is worked on as one batch). Linux only; :func:`available` says whether the calls exist.
"""

from __future__ import annotations

import ctypes
import socket

import numpy as np

MAX_BATCH = 1024  # UIO_MAXIOV: the kernel moves at most this many messages per call
MSG_DONTWAIT = 0x40
_SOCKADDR_BYTES = 16


class _Iovec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]


class _Msghdr(ctypes.Structure):
    _fields_ = [("name", ctypes.c_void_p), ("namelen", ctypes.c_uint32), ("iov", ctypes.c_void_p),
                ("iovlen", ctypes.c_size_t), ("control", ctypes.c_void_p), ("controllen", ctypes.c_size_t),
                ("flags", ctypes.c_int)]


class _Mmsghdr(ctypes.Structure):
    _fields_ = [("hdr", _Msghdr), ("len", ctypes.c_uint)]


LIBC = ctypes.CDLL(None, use_errno=True)
#: ``sendmmsg`` called without releasing the interpreter lock (never blocks: ``MSG_DONTWAIT``). The RTP sender
#: thread shares its core with the media thread: a released lock lets the media thread run Python in the middle
#: of a group's send (the kernel then switches between the two), which only delays the send's completion.
_SENDMMSG_HOLDING_GIL = ctypes.PyDLL(None).sendmmsg


def available() -> bool:
    """True when this libc has ``sendmmsg`` and ``recvmmsg``."""
    return hasattr(LIBC, "sendmmsg") and hasattr(LIBC, "recvmmsg")


def sockaddr(host: str, port: int) -> bytes:
    """The 16 bytes of an IPv4 ``sockaddr_in``."""
    return (socket.AF_INET.to_bytes(2, "little") + port.to_bytes(2, "big") + socket.inet_aton(host) + bytes(8))


def address_key(names: np.ndarray) -> np.ndarray:
    """``sockaddr_in`` rows (uint8, 16 wide) → int64 keys ``ip << 16 | port`` (one per row)."""
    port = names[:, 2].astype(np.int64) << 8 | names[:, 3]
    ip = names[:, 4:8].copy().view(">u4")[:, 0].astype(np.int64)
    return ip << 16 | port


def key_of(host: str, port: int) -> int:
    """The key :func:`address_key` gives for ``host:port``."""
    return int.from_bytes(socket.inet_aton(host), "big") << 16 | port


def message_array(count: int, data: np.ndarray, names: np.ndarray,
                  control: np.ndarray | None = None) -> tuple[ctypes.Array, ctypes.Array, np.ndarray]:
    """``count`` mmsghdr messages over rows of ``data`` (one iovec each) and ``names``: (iovecs, messages, raw).

    ``control``: rows of ancillary data buffers, one per message (received control messages land there; the
    kernel shortens each message's control length to what it wrote: :func:`reset_control` before the next call).
    """
    iovs = (_Iovec * count)()
    msgs = (_Mmsghdr * count)()
    stride = data.shape[1]
    base, name_base = data.ctypes.data, names.ctypes.data
    for i in range(count):
        iovs[i].base = base + i * stride
        iovs[i].len = stride
        msgs[i].hdr.name = name_base + i * _SOCKADDR_BYTES
        msgs[i].hdr.namelen = _SOCKADDR_BYTES
        msgs[i].hdr.iov = ctypes.addressof(iovs[i])
        msgs[i].hdr.iovlen = 1
        if control is not None:
            msgs[i].hdr.control = control.ctypes.data + i * control.shape[1]
            msgs[i].hdr.controllen = control.shape[1]
    lengths = np.frombuffer(msgs, dtype=np.uint8).reshape(count, ctypes.sizeof(_Mmsghdr))
    return iovs, msgs, lengths


def reset_control(raw: np.ndarray, size: int) -> None:
    """Give every message of ``raw`` (from :func:`message_array`) its whole control buffer of ``size`` bytes again."""
    offset = _Mmsghdr.hdr.offset + _Msghdr.controllen.offset
    raw[:, offset : offset + 8] = np.frombuffer(size.to_bytes(8, "little"), dtype=np.uint8)


def received_lengths(raw: np.ndarray, count: int) -> np.ndarray:
    """The lengths of the first ``count`` datagrams a ``recvmmsg`` over ``raw`` received (int64)."""
    meta = raw[:count, _Mmsghdr.len.offset : _Mmsghdr.len.offset + 4]
    return meta.copy().view(np.uint32)[:, 0].astype(np.int64)


def send_batch(fd: int, msgs: ctypes.Array, start: int, count: int) -> tuple[int, int]:
    """Send messages ``[start, start + count)`` of ``msgs`` on ``fd``, :data:`MAX_BATCH` per call: (sent, failed).

    Non-blocking: when the socket buffer is full the rest of a batch is dropped and counted as failed. The
    interpreter lock is held throughout (no other Python thread runs during the calls).
    """
    sent = failed = 0
    size = ctypes.sizeof(_Mmsghdr)
    base = ctypes.addressof(msgs)
    while sent + failed < count:
        batch = min(count - sent - failed, MAX_BATCH)
        n = _SENDMMSG_HOLDING_GIL(fd, ctypes.c_void_p(base + (start + sent + failed) * size), batch, MSG_DONTWAIT)
        if n <= 0:
            return sent, count - sent
        sent += n
        failed += batch - n
    return sent, failed


class BatchSocket:
    """A non-blocking UDP socket with batch send and receive buffers of ``capacity`` rows each.

    ``send_stride``: bytes per outgoing packet row; ``recv_stride``: the largest datagram kept whole (longer
    ones are truncated, and their length says so); ``recv_rows``: datagrams one :meth:`receive` reads at most
    (default :data:`MAX_BATCH`).
    """

    def __init__(self, sock: socket.socket, capacity: int, send_stride: int, recv_stride: int = 2048,
                 recv_rows: int = MAX_BATCH) -> None:
        self.sock = sock
        self.fd = sock.fileno()
        sock.setblocking(False)
        self.capacity = capacity
        self.send_data = np.zeros((capacity, send_stride), dtype=np.uint8)
        self.send_names = np.zeros((capacity, _SOCKADDR_BYTES), dtype=np.uint8)
        self.recv_data = np.zeros((recv_rows, recv_stride), dtype=np.uint8)
        self.recv_names = np.zeros((recv_rows, _SOCKADDR_BYTES), dtype=np.uint8)
        self._send = message_array(capacity, self.send_data, self.send_names)
        self._recv = message_array(recv_rows, self.recv_data, self.recv_names)
        self._send_lengths = np.ndarray((capacity,), dtype=np.uint64, buffer=self._send[0],
                                        offset=_Iovec.len.offset, strides=(ctypes.sizeof(_Iovec),))
        self._recv_meta = self._recv[2]
        self.send_errors = 0

    def set_send_length(self, row: int, length: int) -> None:
        """Packets of row ``row`` are ``length`` bytes long (at most the stride)."""
        self._send_lengths[row] = length

    def send_rows(self, start: int, count: int) -> int:
        """Send rows ``[start, start + count)``; returns how many the kernel took (errors are counted)."""
        sent, errors = send_batch(self.fd, self._send[1], start, count)
        self.send_errors += errors
        return sent

    def receive(self, limit: int = 0) -> tuple[int, np.ndarray]:
        """Drain up to ``limit`` datagrams (0: a buffer full) without blocking: (count, their lengths)."""
        rows = len(self.recv_data)
        limit = min(limit or rows, rows)
        size = ctypes.sizeof(_Mmsghdr)
        base = ctypes.addressof(self._recv[1])
        n = 0
        while n < limit:
            want = min(MAX_BATCH, limit - n)
            got = LIBC.recvmmsg(self.fd, ctypes.c_void_p(base + n * size), want, MSG_DONTWAIT, None)
            if got <= 0:
                break
            n += got
            if got < want:  # the socket is empty
                break
        if not n:
            return 0, np.zeros(0, dtype=np.int64)
        return n, received_lengths(self._recv_meta, n)
