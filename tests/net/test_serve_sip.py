"""``ipcc-engine serve --sip HOST:PORT`` (or ``[sip] listen``): the command answers SIP (a real process, a socket)."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

from engine.config import DEMO_APP_ID
from engine.testing.baresip import free_port
from engine.testing.sip_client import SipClient


def _serve_answers_options(tmp_path: Path, sip_port: int, options: list[str]) -> None:
    """Run ``serve`` with ``options``; wait for its "SIP on" line; an OPTIONS gets 200 with Allow."""
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
    finally:
        process.terminate()
        process.wait(10)


def test_serve_with_sip_answers_options_and_refuses_a_bad_listen_address(tmp_path: Path) -> None:
    sip_port = free_port()
    _serve_answers_options(tmp_path, sip_port, ["--sip", f"127.0.0.1:{sip_port}"])
    bad = subprocess.run([sys.executable, "-m", "engine.cli", "serve", "--sip", "nowhere"], capture_output=True,
                         text=True, timeout=60)
    assert bad.returncode != 0 and "--sip: expected HOST:PORT" in bad.stderr


def test_sip_listen_in_the_configuration_works_as_the_sip_option(tmp_path: Path) -> None:
    sip_port = free_port()
    config = tmp_path / "engine.toml"
    config.write_text(f'[[applications]]\nappId = "{DEMO_APP_ID}"\n\n[sip]\nlisten = "127.0.0.1:{sip_port}"\n')
    _serve_answers_options(tmp_path, sip_port, ["--config", str(config)])
