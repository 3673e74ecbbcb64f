"""sipp (Debian ``sip-tester``) as a real SIP peer: scenario files, a run, and its final statistics.

:func:`uac_scenario` writes a caller scenario: INVITE with PCMU + telephone-event, ACK, then optionally a raw
μ-law file streamed as the caller's audio (``rtp_stream``; sipp does not read WAV headers) and RFC 2833 keys
replayed from sipp's own pcaps, a pause, BYE. :func:`run_sipp` runs sipp to the end and reads the last line
of its ``-trace_stat`` file.
"""

from __future__ import annotations

import csv
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.net import g711
from engine.testing.baresip import free_port

SIPP = shutil.which("sipp")
PCAP_DIR = Path("/usr/share/sip-tester")

_HEAD = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="ipcc-engine uac">
  <send retrans="500"><![CDATA[
INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
To: <sip:[service]@[remote_ip]:[remote_port]>
Call-ID: [call_id]
CSeq: 1 INVITE
Contact: sip:sipp@[local_ip]:[local_port]
Max-Forwards: 70
Content-Type: application/sdp
Content-Length: [len]

v=0
o=user1 53655765 2353687637 IN IP[local_ip_type] [local_ip]
s=-
c=IN IP[media_ip_type] [media_ip]
t=0 0
m=audio [{port}] RTP/AVP 0 101
a=rtpmap:0 PCMU/8000
a=rtpmap:101 telephone-event/8000
a=ptime:20
]]></send>
  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="200" rtd="true"/>
  <send><![CDATA[
ACK sip:[service]@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
Call-ID: [call_id]
CSeq: 1 ACK
Contact: sip:sipp@[local_ip]:[local_port]
Max-Forwards: 70
Content-Length: 0
]]></send>
"""
_TAIL = """  <pause milliseconds="{pause_ms}"/>
  <send retrans="500"><![CDATA[
BYE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
Call-ID: [call_id]
CSeq: 2 BYE
Contact: sip:sipp@[local_ip]:[local_port]
Max-Forwards: 70
Content-Length: 0
]]></send>
  <recv response="200" crlf="true"/>
</scenario>
"""


def write_ulaw(path: Path, samples: np.ndarray) -> Path:
    """Raw μ-law (no header) of int16 ``samples``, as ``rtp_stream`` wants it."""
    path.write_bytes(g711.encode(samples, g711.PCMU).tobytes())
    return path


def uac_scenario(path: Path, pause_ms: int, stream: Path | None = None, pcap: Path | None = None,
                 pcap_after_ms: int = 0) -> Path:
    """Write a caller scenario to ``path`` (see the module docstring)."""
    actions = ""
    if stream is not None:
        actions += f'  <nop><action><exec rtp_stream="{stream},1,0"/></action></nop>\n'
    if pcap is not None:
        actions += f'  <pause milliseconds="{pcap_after_ms}"/>\n'
        actions += f'  <nop><action><exec play_pcap_audio="{pcap}"/></action></nop>\n'
    port = "auto_media_port" if stream is not None else "media_port"
    path.write_text(_HEAD.replace("[{port}]", f"[{port}]") + actions + _TAIL.format(pause_ms=pause_ms))
    return path


@dataclass
class SippResult:
    """How a sipp run ended: exit status, calls that succeeded and failed, the last statistics row."""

    returncode: int
    successful: int
    failed: int
    stats: dict[str, str]
    output: str


def run_sipp(args: list[str], workdir: Path, timeout_s: float = 120.0) -> SippResult:
    """Run ``sipp ARGS`` in ``workdir`` until it ends (``-trace_stat`` is added); its statistics."""
    assert SIPP is not None
    if "-p" not in args:  # never sipp's default 5060: other tests may hold it
        args = [*args, "-p", str(free_port())]
    stat_file = workdir / "sipp-stats.csv"
    command = [SIPP, *args, "-nostdin", "-trace_stat", "-stf", str(stat_file), "-fd", "1",
               "-trace_err", "-error_file", str(workdir / "sipp-errors.log")]
    done = subprocess.run(command, cwd=workdir, capture_output=True, text=True, timeout=timeout_s)
    rows = list(csv.DictReader(stat_file.read_text().splitlines(), delimiter=";")) if stat_file.exists() else []
    last = rows[-1] if rows else {}
    return SippResult(done.returncode, int(last.get("SuccessfulCall(C)", 0) or 0),
                      int(last.get("FailedCall(C)", 0) or 0), last, done.stdout + done.stderr)
