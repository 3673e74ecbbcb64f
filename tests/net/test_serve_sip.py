"""``ipcc-engine serve --sip HOST:PORT``: the command answers SIP (a real process, a real socket)."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

from engine.testing.baresip import free_port
from engine.testing.sip_client import SipClient


def test_serve_with_sip_answers_options_and_refuses_a_bad_listen_address(tmp_path: Path) -> None:
    sip_port, http_port = free_port(), free_port(socket.SOCK_STREAM)
    command = [sys.executable, "-m", "engine.cli", "serve", "--port", str(http_port), "--sip",
               f"127.0.0.1:{sip_port}", "--state", str(tmp_path / "state"), "--recordings", str(tmp_path / "rec"),
               "--cache", str(tmp_path / "cache")]
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
    finally:
        process.terminate()
        process.wait(10)
    bad = subprocess.run([sys.executable, "-m", "engine.cli", "serve", "--sip", "nowhere"], capture_output=True,
                         text=True, timeout=60)
    assert bad.returncode != 0 and "--sip: expected HOST:PORT" in bad.stderr
