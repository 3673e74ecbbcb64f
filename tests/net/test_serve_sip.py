"""``ipcc-engine serve --sip HOST:PORT`` (or ``[sip] listen``): the command answers SIP (a real process, a socket)."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine.config import DEMO_APP_ID
from engine.net.dialog import new_branch
from engine.net.sip_message import SipMessage, parse_message
from engine.net.sip_stream import StreamFramer
from engine.testing.baresip import free_port, free_sip_port
from engine.testing.sip_client import SipClient


def _options_over_tcp(sip_port: int) -> SipMessage:
    """An OPTIONS on a new TCP connection; the response read from the stream."""
    with socket.create_connection(("127.0.0.1", sip_port), timeout=30) as sock:
        local = sock.getsockname()
        request = (f"OPTIONS sip:10086@127.0.0.1:{sip_port} SIP/2.0\r\n"
                   f"Via: SIP/2.0/TCP {local[0]}:{local[1]};branch={new_branch()}\r\nMax-Forwards: 70\r\n"
                   "From: <sip:alice@127.0.0.1>;tag=1\r\nTo: <sip:10086@127.0.0.1>\r\nCall-ID: c-tcp\r\n"
                   "CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n")
        sock.sendall(request.encode())
        framer, messages = StreamFramer(), []
        while not messages:
            data = sock.recv(65536)
            assert data, "the engine closed the connection"
            messages = framer.feed(data)
        return parse_message(messages[0])


def _serve_answers_options(tmp_path: Path, sip_port: int, options: list[str], tcp: bool = True) -> None:
    """Run ``serve`` with ``options``; wait for its "SIP on" line; an OPTIONS gets 200 with Allow (UDP, TCP)."""
    command = [sys.executable, "-m", "engine.cli", "serve", "--port", str(free_port(socket.SOCK_STREAM)),
               "--state", str(tmp_path / "state"), "--recordings", str(tmp_path / "rec"),
               "--cache", str(tmp_path / "cache"), *options]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert process.stdout is not None
        deadline = time.monotonic() + 60
        for line in process.stdout:  # wait for what the program says
            if "SIP on 127.0.0.1" in line or time.monotonic() > deadline:
                break
        assert f"SIP on 127.0.0.1:{sip_port}" in line, line
        client = SipClient(("127.0.0.1", sip_port))
        try:
            client.request("OPTIONS", "c-serve", 1)
            assert "INVITE" in client.wait(200, "OPTIONS").get("allow")
        finally:
            client.close()
        if tcp:
            assert _options_over_tcp(sip_port).status == 200
        else:
            with pytest.raises(ConnectionRefusedError):
                _options_over_tcp(sip_port)
    finally:
        process.terminate()
        process.wait(10)


def test_serve_with_sip_answers_options_and_refuses_a_bad_listen_address(tmp_path: Path) -> None:
    sip_port = free_sip_port()
    _serve_answers_options(tmp_path, sip_port, ["--sip", f"127.0.0.1:{sip_port}"])
    bad = subprocess.run([sys.executable, "-m", "engine.cli", "serve", "--sip", "nowhere"], capture_output=True,
                         text=True, timeout=60)
    assert bad.returncode != 0 and "--sip: expected HOST:PORT" in bad.stderr


def test_sip_listen_in_the_configuration_works_as_the_sip_option(tmp_path: Path) -> None:
    sip_port = free_sip_port()
    config = tmp_path / "engine.toml"
    config.write_text(f'[[applications]]\nappId = "{DEMO_APP_ID}"\n\n[sip]\nlisten = "127.0.0.1:{sip_port}"\n'
                      "tcp = false\ntcpIdleS = 5\ntcpMaxConnections = 2\n")
    _serve_answers_options(tmp_path, sip_port, ["--config", str(config)], tcp=False)
