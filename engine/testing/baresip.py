"""baresip (Debian ``baresip-core``) as a real SIP phone: configured in a folder, driven through ``ctrl_tcp``.

:class:`Baresip` starts ``baresip -f FOLDER`` with an account that auto-answers, ``aufile`` playing a WAV as
its microphone (the call hangs up when the file ends: pad it), ``sndfile`` recording what it hears and sends,
``aubridge`` as its loudspeaker with no source paired, so nothing plays it (on ALSA's ``null`` device, which
never blocks, baresip's player thread spun a core), and ``ctrl_tcp`` taking netstring JSON commands
(``dial``, ``hangup``, ``sndcode`` for RFC 4733 keys) and sending events (``CALL_ESTABLISHED``, ...).
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

BARESIP = shutil.which("baresip")

CONFIG = """poll_method		epoll
sip_listen		127.0.0.1:{sip_port}
net_interface		127.0.0.1
audio_player		aubridge,unpaired
audio_source		aufile,{mic}
audio_alert		aubridge,unpaired
ausrc_srate		8000
auplay_srate		8000
rtp_ports		{rtp_first}-{rtp_last}
module_path		/usr/lib/baresip/modules
module			g711.so
module			aufile.so
module			aubridge.so
module			sndfile.so
module			account.so
module_app		menu.so
module_app		ctrl_tcp.so
ctrl_tcp_listen		127.0.0.1:{ctrl_port}
snd_path		{recordings}
"""


def free_port(kind: int = socket.SOCK_DGRAM) -> int:
    """A port free on 127.0.0.1 for ``kind`` right now."""
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def free_sip_port() -> int:
    """A port P free on 127.0.0.1 for UDP and TCP right now, and P + 1 for TCP (baresip's SIP/TLS listens there)."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp, \
                socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp, \
                socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tls:
            udp.bind(("127.0.0.1", 0))
            port = udp.getsockname()[1]
            try:
                tcp.bind(("127.0.0.1", port))
                tls.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
            return port


def _netstring(payload: dict[str, Any]) -> bytes:
    data = json.dumps(payload).encode()
    return f"{len(data)}:".encode() + data + b","


class Baresip:
    """A baresip phone in ``folder`` with ``mic`` (a WAV) as its microphone; user ``bob`` auto-answers."""

    def __init__(self, folder: Path, mic: Path) -> None:
        assert BARESIP is not None
        folder.mkdir(parents=True, exist_ok=True)
        self.recordings = folder / "recordings"
        self.recordings.mkdir(exist_ok=True)
        self.sip_port = free_sip_port()  # baresip listens on UDP and TCP
        ctrl_port = free_port(socket.SOCK_STREAM)
        rtp_first = 2 * (free_port() // 2)
        (folder / "config").write_text(CONFIG.format(sip_port=self.sip_port, mic=mic, ctrl_port=ctrl_port,
                                                     recordings=self.recordings, rtp_first=rtp_first,
                                                     rtp_last=rtp_first + 20))
        (folder / "accounts").write_text(f"<sip:bob@127.0.0.1:{self.sip_port}>;regint=0;answermode=auto\n")
        self.log = (folder / "baresip.log").open("w")
        self.process = subprocess.Popen([BARESIP, "-f", str(folder)], stdout=self.log, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL)
        self.events: list[dict[str, Any]] = []
        self.responses: list[dict[str, Any]] = []
        self._cond = threading.Condition()
        deadline = time.monotonic() + 15
        while True:
            try:
                self.sock = socket.create_connection(("127.0.0.1", ctrl_port), timeout=1)
                break
            except OSError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    log = (folder / "baresip.log").read_text()[-800:]
                    raise RuntimeError(f"baresip did not start: {log}") from None
                time.sleep(0.05)
        self.sock.settimeout(None)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    @property
    def uri(self) -> str:
        """Where to call this phone."""
        return f"sip:bob@127.0.0.1:{self.sip_port}"

    def _read(self) -> None:
        buffer = b""
        while True:
            try:
                chunk = self.sock.recv(65536)
            except OSError:
                return
            if not chunk:
                return
            buffer += chunk
            while b":" in buffer:
                length, _, rest = buffer.partition(b":")
                if not length.isdigit() or len(rest) < int(length) + 1:
                    break
                message = json.loads(rest[: int(length)])
                buffer = rest[int(length) + 1 :]
                with self._cond:
                    (self.events if message.get("event") else self.responses).append(message)
                    self._cond.notify_all()

    def command(self, command: str, params: str = "") -> None:
        """Send a ctrl_tcp command."""
        self.sock.sendall(_netstring({"command": command, "params": params, "token": command}))

    def wait_event(self, kind: str, timeout_s: float = 20.0) -> dict[str, Any]:
        """The first event of ``kind`` (``CALL_ESTABLISHED``, ``CALL_CLOSED``...), waiting for it."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while True:
                for event in self.events:
                    if event.get("type") == kind:
                        return event
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"baresip sent no {kind} within {timeout_s} s: {self.events}")
                self._cond.wait(left)

    def recording(self, which: str = "dec") -> Path:
        """The WAV baresip recorded: ``dec`` what it heard, ``enc`` what it sent."""
        files = sorted(self.recordings.glob(f"*-{which}.wav"))
        if not files:
            raise AssertionError(f"no {which} recording in {self.recordings}: {list(self.recordings.iterdir())}")
        return files[-1]

    def close(self) -> None:
        """Quit baresip."""
        try:
            self.command("quit")
        except OSError:
            pass
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)
        self.sock.close()
        self.log.close()
