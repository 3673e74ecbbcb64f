"""The batched UDP calls through ctypes: ``sendmmsg`` and ``recvmmsg`` on loopback, bit-exact and in order."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import numpy as np
import pytest

from engine.net.mmsg import (
    MAX_BATCH,
    BatchSocket,
    address_key,
    available,
    key_of,
    message_array,
    send_batch,
    sockaddr,
)
from engine.testing.harness import wait_for

pytestmark = pytest.mark.skipif(not available(), reason="no sendmmsg/recvmmsg in this libc")


@pytest.fixture
def receiver() -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    yield sock
    sock.close()


def _drain(sock: socket.socket, want: int) -> list[bytes]:
    got: list[bytes] = []

    def more() -> bool:
        while True:
            try:
                got.append(sock.recv(4096))
            except BlockingIOError:
                return len(got) >= want

    wait_for(more, 10, f"{want} datagrams")
    return got


def test_send_batch_delivers_every_row_in_order_bit_exact_across_batches(receiver: socket.socket) -> None:
    count, stride = MAX_BATCH + 300, 172  # more than one sendmmsg call
    rng = np.random.default_rng(7)
    data = rng.integers(0, 256, (count, stride), dtype=np.uint8)
    data[:, :4] = np.arange(count, dtype=">u4").view(np.uint8).reshape(count, 4)  # the row number first
    names = np.tile(np.frombuffer(sockaddr(*receiver.getsockname()), np.uint8), (count, 1))
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        _iovs, msgs, _ = message_array(count, data, names)
        sent, failed = send_batch(sender.fileno(), msgs, 10, count - 10)  # rows 10.. only
        assert (sent, failed) == (count - 10, 0)
        got = _drain(receiver, count - 10)
    finally:
        sender.close()
    assert len(got) == count - 10
    assert [int.from_bytes(g[:4], "big") for g in got] == list(range(10, count))
    for i, packet in enumerate(got, 10):
        assert packet == data[i].tobytes()


def test_batch_socket_receives_each_datagram_with_its_length_and_sender(receiver: socket.socket) -> None:
    io = BatchSocket(receiver, 1, 16)
    peers = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(3)]
    try:
        for i, peer in enumerate(peers):
            peer.bind(("127.0.0.1", 0))
            peer.sendto(bytes([i + 1]) * (10 + i), receiver.getsockname())
        got: list[tuple[bytes, int, int]] = []

        def more() -> bool:
            count, lengths = io.receive()
            keys = address_key(io.recv_names[:count])
            got.extend((io.recv_data[j, : lengths[j]].tobytes(), int(lengths[j]), int(keys[j])) for j in range(count))
            return len(got) >= 3

        wait_for(more, 10, "three datagrams")
        assert got == [(bytes([i + 1]) * (10 + i), 10 + i, key_of(*peer.getsockname())) for i, peer in enumerate(peers)]
    finally:
        for peer in peers:
            peer.close()
