"""The baseline of :mod:`benchmarks.bench_rtp`: one asyncio datagram endpoint per call (a child process).

Each call has its own socket: ``sendto`` per packet, ``datagram_received`` per packet, ticked by ``call_at``;
the same media loop and load peer as the hub's trials (:mod:`benchmarks.rtp_trials`).
"""

from __future__ import annotations

import asyncio
import gc
import json
import struct
from collections import deque
from typing import Any

from benchmarks.rtp_trials import WARM_TICKS, _calls, _measure, _pin, _realtime


class _Endpoint(asyncio.DatagramProtocol):
    """(Baseline.) One call's socket: packets in (per ``datagram_received``), one out per tick (``sendto``)."""

    def __init__(self, remote: tuple[str, int]) -> None:
        import numpy as np

        from engine.net.g711 import ULAW_DECODE, ULAW_ENCODE

        self.remote = remote
        self.np, self.decode_table, self.encode_table = np, ULAW_DECODE, ULAW_ENCODE
        self.queue: deque[Any] = deque(maxlen=10)
        self.transport: Any = None
        self.seq = self.ts = 0
        self.silence = np.zeros(160, dtype=np.int16)

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: Any) -> None:
        if len(data) >= 12 and data[0] >> 6 == 2:
            self.queue.append(self.decode_table[self.np.frombuffer(data, self.np.uint8, offset=12)])

    def read(self, count: int) -> Any:
        return self.queue.popleft() if self.queue else self.silence

    def request_started(self) -> None:
        pass

    def write(self, played: Any, heard: Any) -> None:
        header = struct.pack("!BBHII", 0x80, 0, self.seq & 0xFFFF, self.ts & 0xFFFFFFFF, 0x1234)
        self.transport.sendto(header + self.encode_table[played.view(self.np.uint16)].tobytes(), self.remote)
        self.seq += 1
        self.ts += 160

    def close(self) -> None:
        pass


def baseline_trial(count: int, seconds: float, peer_port: int) -> dict[str, float]:
    """(Child.) One asyncio datagram endpoint per call, ticked by ``call_at``."""
    _pin(1)
    from engine.testing.rtp_load import stream_address

    aio = asyncio.new_event_loop()
    endpoints: list[_Endpoint] = []
    for i in range(count):
        _, protocol = aio.run_until_complete(aio.create_datagram_endpoint(
            lambda i=i: _Endpoint(stream_address(i, peer_port)), local_addr=("127.0.0.1", 0)))
        endpoints.append(protocol)
    loop, counters = _calls(count, lambda i: (endpoints[i], endpoints[i]))
    ports = [e.transport.get_extra_info("sockname")[1] for e in endpoints]
    print(json.dumps({"targets": [["127.0.0.1", p] for p in ports]}), flush=True)
    gc.freeze()

    def run_ticks(n: int, record: Any) -> None:
        done = aio.create_future()
        origin = aio.time()

        def tick(k: int) -> None:
            loop.tick()
            record(aio.time() - (origin + k * 0.02))
            if k + 1 == n:
                done.set_result(None)
            else:
                aio.call_at(origin + (k + 1) * 0.02, tick, k + 1)

        aio.call_at(origin, tick, 0)
        aio.run_until_complete(done)

    before = counters["keys"]
    fifo = _realtime()
    result = _measure(run_ticks, WARM_TICKS, int(seconds * 50))
    result["fifo"] = fifo
    result.update(calls=count, keys=counters["keys"] - before, engine_lost=0, engine_late=0, wrong=0,
                  send_errors=0)
    return result
