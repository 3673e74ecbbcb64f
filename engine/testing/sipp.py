"""sipp (Debian ``sip-tester``) as a real SIP peer: scenario files, a run, and its final statistics.

:func:`uac_scenario` writes a caller scenario: INVITE with PCMU + telephone-event, ACK, then optionally a raw
μ-law file streamed as the caller's audio (``rtp_stream``; sipp does not read WAV headers) and RFC 2833 keys
replayed from sipp's own pcaps, a pause, BYE. :func:`ringing_uas_scenario` writes a callee that rings and
waits to be cancelled. :func:`run_sipp` runs sipp to the end and reads the last line of its ``-trace_stat``
file; :class:`Sipp` runs it in the background (a callee). Both scenarios run over UDP or TCP (``-t t1``).
"""

from __future__ import annotations

import csv
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.net import g711
from engine.testing.baresip import free_port, free_sip_port

SIPP = shutil.which("sipp")
PCAP_DIR = Path("/usr/share/sip-tester")

#: An in-dialog request of the caller scenario (ACK, BYE): ``{method}``, ``{cseq}``, ``{retrans}``.
_REQUEST = """  <send{retrans}><![CDATA[
{method} sip:[service]@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
To: <sip:[service]@[remote_ip]:[remote_port]>{to_tag}
Call-ID: [call_id]
CSeq: {cseq} {method}
Contact: <sip:sipp@[local_ip]:[local_port];transport=[transport]>
Max-Forwards: 70
{extra}Content-Length: [len]
{body}]]></send>
"""
_SDP = """
v=0
o=user1 53655765 2353687637 IN IP[local_ip_type] [local_ip]
s=-
c=IN IP[media_ip_type] [media_ip]
t=0 0
m=audio [{port}] RTP/AVP 0 101
a=rtpmap:0 PCMU/8000
a=rtpmap:101 telephone-event/8000
a=ptime:20
"""
_ANSWERS = """  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="200" rtd="true"/>
"""
#: A response of the ringing callee scenario, to the last request received.
_RESPONSE = """  <send><![CDATA[
SIP/2.0 {status}
[last_Via:]
[last_From:]
[last_To:];tag=[pid]SIPpTag01[call_number]
[last_Call-ID:]
CSeq: {cseq}
Contact: <sip:bob@[local_ip]:[local_port];transport=[transport]>
Content-Length: 0
]]></send>
"""


def _request(method: str, cseq: int, retrans: bool = False, extra: str = "", body: str = "") -> str:
    to_tag = "" if method == "INVITE" else "[peer_tag_param]"
    return _REQUEST.format(method=method, cseq=cseq, retrans=' retrans="500"' if retrans else "", to_tag=to_tag,
                           extra=extra, body=body)


def write_ulaw(path: Path, samples: np.ndarray) -> Path:
    """Raw μ-law (no header) of int16 ``samples``, as ``rtp_stream`` wants it."""
    path.write_bytes(g711.encode(samples, g711.PCMU).tobytes())
    return path


def uac_scenario(path: Path, pause_ms: int, stream: Path | None = None, pcap: Path | None = None,
                 pcap_after_ms: int = 0) -> Path:
    """Write a caller scenario to ``path`` (see the module docstring); any transport (``-t u1`` or ``t1``)."""
    port = "auto_media_port" if stream is not None else "media_port"
    parts = ['<?xml version="1.0" encoding="ISO-8859-1" ?>\n<scenario name="ipcc-engine uac">\n',
             _request("INVITE", 1, True, "Content-Type: application/sdp\n", _SDP.replace("[{port}]", f"[{port}]")),
             _ANSWERS, _request("ACK", 1)]
    if stream is not None:
        parts.append(f'  <nop><action><exec rtp_stream="{stream},1,0"/></action></nop>\n')
    if pcap is not None:
        parts.append(f'  <pause milliseconds="{pcap_after_ms}"/>\n')
        parts.append(f'  <nop><action><exec play_pcap_audio="{pcap}"/></action></nop>\n')
    parts += [f'  <pause milliseconds="{pause_ms}"/>\n', _request("BYE", 2, True),
              '  <recv response="200" crlf="true"/>\n</scenario>\n']
    path.write_text("".join(parts))
    return path


def ringing_uas_scenario(path: Path) -> Path:
    """Write a callee scenario that rings (180) and never answers: CANCEL gets 200, the INVITE 487, then ACK."""
    cseq = '<action><ereg regexp="[0-9]+" search_in="hdr" header="CSeq:" assign_to="number"/></action>'
    parts = ['<?xml version="1.0" encoding="ISO-8859-1" ?>\n<scenario name="ipcc-engine ringing uas">\n',
             f'  <recv request="INVITE" crlf="true">{cseq}</recv>\n',
             _RESPONSE.format(status="180 Ringing", cseq="[$number] INVITE"),
             '  <recv request="CANCEL"/>\n',
             _RESPONSE.format(status="200 OK", cseq="[$number] CANCEL"),
             _RESPONSE.format(status="487 Request Terminated", cseq="[$number] INVITE"),
             '  <recv request="ACK"/>\n</scenario>\n']
    path.write_text("".join(parts))
    return path


@dataclass
class SippResult:
    """How a sipp run ended: exit status, calls that succeeded and failed, the last statistics row."""

    returncode: int
    successful: int
    failed: int
    stats: dict[str, str]
    output: str


class Sipp:
    """A sipp run in the background (``sipp ARGS`` in ``workdir``, ``-trace_stat`` added); :meth:`finish` waits."""

    def __init__(self, args: list[str], workdir: Path) -> None:
        assert SIPP is not None
        if "-p" not in args:  # never sipp's default 5060: other tests may hold it
            args = [*args, "-p", str(free_sip_port())]
        self.port = int(args[args.index("-p") + 1])
        self.stat_file = workdir / "sipp-stats.csv"
        command = [SIPP, *args, "-nostdin", "-trace_stat", "-stf", str(self.stat_file), "-fd", "1",
                   "-trace_err", "-error_file", str(workdir / "sipp-errors.log")]
        self.process = subprocess.Popen(command, cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                        text=True, errors="replace")  # its screen may carry a stray byte

    def listening(self, tcp: bool) -> bool:
        """True once sipp's SIP socket is bound (``/proc/net/tcp`` listening, or ``/proc/net/udp``)."""
        table = Path("/proc/net/tcp" if tcp else "/proc/net/udp").read_text().splitlines()[1:]
        wanted = f":{self.port:04X}"
        return any(row.split()[1].endswith(wanted) and (not tcp or row.split()[3] == "0A") for row in table)

    def kill(self) -> None:
        """Stop sipp if it still runs (a test that failed half-way)."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def finish(self, timeout_s: float = 120.0) -> SippResult:
        """Wait for sipp to end (killed after ``timeout_s``); its statistics."""
        try:
            output, _ = self.process.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            output, _ = self.process.communicate()
        rows = (list(csv.DictReader(self.stat_file.read_text(errors="replace").splitlines(), delimiter=";"))
                if self.stat_file.exists() else [])
        last = rows[-1] if rows else {}
        return SippResult(self.process.returncode, int(last.get("SuccessfulCall(C)", 0) or 0),
                          int(last.get("FailedCall(C)", 0) or 0), last, output or "")


def run_sipp(args: list[str], workdir: Path, timeout_s: float = 120.0) -> SippResult:
    """Run ``sipp ARGS`` in ``workdir`` until it ends; its statistics."""
    return Sipp(args, workdir).finish(timeout_s)


def media_port() -> str:
    """A free even port for sipp's media (it counts up from there, a pair per call)."""
    return str(2 * (free_port() // 2))


def rfc2833_call(sip_port: int, workdir: Path) -> SippResult:
    """One sipp call to ``10086`` that replays sipp's RFC 2833 key ``7`` (its shipped pcap) after 500 ms."""
    scenario = uac_scenario(workdir / "uac.xml", pause_ms=3000, pcap=PCAP_DIR / "dtmf_2833_7.pcap", pcap_after_ms=500)
    return run_sipp(["-sf", str(scenario), f"127.0.0.1:{sip_port}", "-s", "10086", "-i", "127.0.0.1", "-m", "1",
                     "-l", "1", "-mp", media_port(), "-timeout", "30"], workdir)
