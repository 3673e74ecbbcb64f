"""Shared fixtures and the suite's order.

* The engine's speech cache lives in a temporary folder of the run, never in the home; under pytest-xdist the
  workers share one (its entries are written atomically), so a sentence is synthesised once per run.
* The tests that wait on real processes and real time (SIP peers, Chromium, live servers, PortAudio) are
  collected first, so that pytest-xdist starts them while the small tests fill the other workers, instead of
  finishing the run on one of them.
* The files whose tests share a module-scoped live server (or browser) stay together on one worker
  (``--dist loadgroup``): the server starts once per run, not once per worker.
* The Chromium tests run in :data:`BROWSER_LANES` groups: at most that many browsers (and the servers they talk
  to) at once, whose media loops would otherwise fall behind on a loaded machine and refuse calls.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

#: Test files (relative to tests/) that wait longest on real processes or real time: run first, longest first.
SLOW_FIRST = (
    "web/test_phone_page.py", "net/test_sip_events.py", "net/test_sipp.py", "net/test_baresip.py",
    "net/test_phone.py", "web/test_playout_buffer.py", "local/test_speaker.py", "server/test_speaker_endpoint.py",
    "test_benchmarks.py", "server/test_fuzz.py", "server/test_guard_health.py", "server/test_faults_restart.py",
    "server/test_faults_disk.py", "web/test_socket.py", "server/test_platform_calls.py",
    "server/test_guard_access.py", "server/test_platform_sweep.py", "server/test_platform_messages.py",
    "local/test_mic.py", "server/test_guard_fairness.py", "web/test_docs.py", "dtmf/test_rules.py",
    "server/test_faults_delivery.py", "server/test_delivery.py", "dtmf/test_detector.py",
)


#: Test files whose tests share a module-scoped server or browser: one xdist group each.
TOGETHER = (
    "test_admission.py", "server/test_app.py", "server/test_platform_wire.py", "server/test_platform_sweep.py",
    "server/test_guard_access.py", "server/test_guard_fairness.py", "server/test_guard_files.py",
    "server/test_guard_health.py", "server/test_fuzz.py", "server/test_platform_calls.py",
    "server/test_platform_messages.py",
    "server/test_file_limits.py", "web/test_playout_buffer.py",
)
#: Test files that drive Chromium, and how many of them may run at once.
CHROMIUM = ("web/test_phone_page.py", "web/test_playout_buffer.py", "web/test_docs.py")
BROWSER_LANES = 2


def _relative(item: pytest.Item, tests_dir: Path) -> str:
    try:
        return Path(str(item.path)).resolve().relative_to(tests_dir).as_posix()
    except ValueError:
        return ""


def _rank(relative: str) -> int:
    return SLOW_FIRST.index(relative) if relative in SLOW_FIRST else len(SLOW_FIRST)


def _group(relative: str, nodeid: str, lanes: dict[str, int]) -> str | None:
    """The xdist group of a test: its file's, its browser lane's (round robin over units), or None."""
    unit = relative if relative in TOGETHER else nodeid
    if relative in CHROMIUM:
        lane = lanes.setdefault(unit, len(lanes) % BROWSER_LANES)
        return f"chromium-{lane}"
    return relative if relative in TOGETHER else None


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    tests_dir = Path(__file__).resolve().parent
    relative = {item.nodeid: _relative(item, tests_dir) for item in items}
    items.sort(key=lambda item: _rank(relative[item.nodeid]))  # stable: the order inside a file is kept
    lanes: dict[str, int] = {}
    for item in items:
        group = _group(relative[item.nodeid], item.nodeid, lanes)
        if group is not None:
            item.add_marker(pytest.mark.xdist_group(group))


@pytest.fixture(scope="session", autouse=True)
def _speech_cache_in_tmp(tmp_path_factory: pytest.TempPathFactory) -> None:
    if os.environ.get("PYTEST_XDIST_WORKER"):
        # every worker's base folder is a child of the run's: the cache beside them is the run's
        folder = tmp_path_factory.getbasetemp().parent / "ipcc-cache"
        folder.mkdir(mode=0o700, exist_ok=True)
    else:
        folder = tmp_path_factory.mktemp("ipcc-cache")
    os.environ["IPCC_CACHE_DIR"] = str(folder)


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent
