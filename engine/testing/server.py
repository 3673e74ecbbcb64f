"""Server harness: a live uvicorn on a free loopback port, a fake speaker, callback receivers."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import numpy as np
import uvicorn

from engine.config import DEMO_APP_ID
from engine.format import SAMPLE_RATE_HZ
from engine.server.delivery import RetryPolicy
from engine.server.limits import GuardSettings

FIXED_TIME = datetime(2024, 5, 6, 7, 8, 9, 123000)
#: Delivery retries for tests: 10 ms first, doubling up to 50 ms, an answer awaited 0.5 s at most.
FAST_RETRY = RetryPolicy(initial_s=0.01, factor=2, cap_s=0.05, timeout_s=0.5)
#: A guard that admits calls whatever the machine's load: for the servers of tests about something else than
#: admission (a loaded test machine would otherwise refuse their calls with 108102).
CALM_GUARD = GuardSettings(max_cpu_share=100.0, min_real_time=1e-6, max_lateness_s=3600.0)


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now (the kernel's choice)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class FakeSpeaker:
    """Speech without espeak, deterministic, so recordings can be compared sample for sample.

    ``"tone:SECONDS"`` → a 440 Hz tone that long; ``"boom"`` raises; anything else is a 0.5 s tone.
    """

    def synthesize(self, text: str, settings: object = None) -> np.ndarray:
        """Return ``text`` as the read-only int16 tone the class describes, at :data:`SAMPLE_RATE_HZ`."""
        if text == "boom":
            raise RuntimeError("the synthesizer broke")
        seconds = float(text.removeprefix("tone:")) if text.startswith("tone:") else 0.5
        t = np.arange(int(seconds * SAMPLE_RATE_HZ)) / SAMPLE_RATE_HZ
        samples = (8000 * np.sin(2 * np.pi * 440 * t)).astype(np.int16)
        samples.setflags(write=False)
        return samples


class LiveServer:
    """``app`` served by uvicorn in a background thread on a free 127.0.0.1 port; ``options``: uvicorn.Config's."""

    def __init__(self, app: Any, **options: Any) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind(("127.0.0.1", 0))
        sock.listen(256)
        self.port = sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.app = app
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on", **options))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [sock]}, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the server did not start")
            time.sleep(0.01)

    def close(self) -> None:
        """Ask uvicorn to exit and wait for its thread (up to 30 seconds)."""
        self.server.should_exit = True
        self.thread.join(30)


class _Listener(ThreadingHTTPServer):
    """A threading HTTP server whose listen backlog holds the delivery's concurrent connections.

    (The standard library's 5 drops the rest of a burst's SYNs, which TCP sends again only after a second.)
    """

    request_queue_size = 128


class Receiver:
    """A callback receiver on a free loopback port.

    ``answers``: what the n-th POST gets (status, body); after the list, ``(200, ack)``. ``hang_s``: every
    answer waits this long first. ``ack``: the acknowledgement (default ``{"code": "0"}``; platform samples
    answer ``{"code": "0", "message": "0"}``).
    """

    def __init__(self, answers: list[tuple[int, Any]] | None = None, hang_s: float = 0.0,
                 ack: dict[str, Any] | None = None) -> None:
        self.answers = list(answers or [])
        self.ack = ack or {"code": "0"}
        self.hang_s = hang_s
        self.posts: list[dict[str, Any]] = []  # every POST body, in arrival order
        self.acked: list[dict[str, Any]] = []  # the bodies answered {"code": "0"}
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if receiver.hang_s:
                    time.sleep(receiver.hang_s)
                with receiver.lock:
                    receiver.posts.append(body)
                    status, answer = receiver.answers.pop(0) if receiver.answers else (200, receiver.ack)
                    if status == 200 and answer == receiver.ack:
                        receiver.acked.append(body)
                data = json.dumps(answer).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:
                    pass

            def log_message(self, *_args: object) -> None:
                pass

        self.httpd = _Listener(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/events"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        """Stop serving and close the listening socket."""
        self.httpd.shutdown()
        self.httpd.server_close()


def wait_for(predicate: Callable[[], Any], timeout_s: float = 10.0, what: str = "condition",
             interval_s: float = 0.01) -> Any:
    """Poll ``predicate`` every ``interval_s`` until it returns something truthy; fail after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(interval_s)


#: The events of a call's requests (the contract's); the platform's call events are the others.
REQUEST_EVENTS = ("ivrreportdtmf", "multrpt")


def call_events(client: httpx.Client, call_id: str, kinds: tuple[str, ...] | None = REQUEST_EVENTS,
                app_id: str = DEMO_APP_ID) -> list[dict[str, Any]]:
    """The events kept for ``call_id`` (a call of ``app_id``) whose ``event`` is one of ``kinds`` (None: all)."""
    events = client.get("/ipcc/events", params={"callId": call_id, "appId": app_id}).json()["events"]
    return events if kinds is None else [event for event in events if event.get("event") in kinds]


def wait_events(client: httpx.Client, call_id: str, count: int, timeout_s: float = 10.0,
                kinds: tuple[str, ...] | None = REQUEST_EVENTS, app_id: str = DEMO_APP_ID) -> list[dict[str, Any]]:
    """Wait until ``call_id`` has at least ``count`` events of ``kinds`` (default: its requests'); return them."""
    def enough() -> list[dict[str, Any]] | None:
        events = call_events(client, call_id, kinds, app_id)
        return events if len(events) >= count else None

    return wait_for(enough, timeout_s, f"{count} events of {call_id}")
