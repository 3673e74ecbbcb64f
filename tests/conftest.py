"""Shared fixtures and the suite's order, and how pytest-xdist shares the run out.

* The engine's speech cache lives in a temporary folder of the run, never in the home; under pytest-xdist the
  workers share one (its entries are written atomically), so a sentence is synthesised once per run.
* The tests that wait on real processes and real time (SIP peers, Chromium, live servers, PortAudio) are
  collected first, so that pytest-xdist starts them while the small tests fill the other workers, instead of
  finishing the run on one of them.
* The files whose tests share a module-scoped live server (or browser) stay together on one worker: the server
  starts once per run, not once per worker. The unit of work is computed from the test's id
  (:class:`UnitScheduling`), not by ``xdist_group`` marks: pytest 9 ignores the id those marks rewrite.
* The Chromium tests run in :data:`BROWSER_LANES` units: at most that many browsers (and the servers they talk
  to) at once, whose media loops would otherwise fall behind on a loaded machine and refuse calls.
* Every test runs in a lane (:mod:`engine.testing.lanes`, the machine's: every run of the suite on it takes part):
  at most :data:`engine.testing.lanes.SLOTS` tests at once, however many runs share the machine; the tests in
  :data:`SOLO` measure real time under load of their own (a sipp load, the media loop's guard) and run with the
  machine to themselves: the other tests running end first, and none starts meanwhile.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from engine.testing.lanes import Lanes, lanes_folder

#: Test files (relative to tests/) that wait longest on real processes or real time: run first, longest first
#: (after :data:`SOLO`).
SLOW_FIRST = (
    "server/test_sip_workers.py", "web/test_phone_page.py", "net/test_sipp.py", "net/test_baresip.py",
    "web/test_calls_rtp.py", "server/test_worker_calls.py", "web/test_calls_api.py", "net/test_sip_events.py",
    "server/test_fuzz.py", "net/test_phone.py", "local/test_speaker.py", "web/test_playout_buffer.py",
    "server/test_platform_sweep.py", "server/test_faults_restart.py", "web/test_socket.py", "test_benchmarks.py",
    "server/test_guard_access.py", "net/test_serve_sip.py", "server/test_guard_fairness.py",
    "server/test_platform_calls.py", "server/test_fast_path.py", "server/test_delivery.py", "dtmf/test_detector.py",
    "web/test_docs.py", "server/test_guard_realtime.py", "server/test_platform_messages.py", "dtmf/test_rules.py",
    "server/test_faults_disk.py", "server/test_speaker_endpoint.py", "local/test_mic.py",
    "server/test_faults_delivery.py",
)


#: Test files whose tests share a module-scoped server or browser: one unit of work each.
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


#: Tests (a file, or one test by its id without parameters) that need the machine to themselves (a solo lane).
SOLO = (
    "net/test_sipp.py::test_load_200_concurrent_calls_with_media_and_keys", "server/test_guard_health.py",
)
def _relative(nodeid: str) -> str:
    """The test file of ``nodeid``, relative to tests/."""
    return nodeid.split("::", 1)[0].removeprefix("tests/")


def _rank(nodeid: str) -> int:
    relative = _relative(nodeid)
    if _is_solo(nodeid):
        return -1
    return SLOW_FIRST.index(relative) if relative in SLOW_FIRST else len(SLOW_FIRST)


def _is_solo(nodeid: str) -> bool:
    relative = _relative(nodeid)
    name = nodeid.split("::", 1)[-1].split("[", 1)[0]
    return relative in SOLO or f"{relative}::{name}" in SOLO


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    items.sort(key=lambda item: _rank(item.nodeid))  # stable: the order inside a file is kept


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """pytest-xdist's scheduler (on the controller): load scheduling over :class:`UnitScheduling`'s units."""
    from xdist.scheduler import LoadScopeScheduling

    class UnitScheduling(LoadScopeScheduling):
        """Load scheduling over units: a file of :data:`TOGETHER`, a browser lane, or one test."""

        def __init__(self, config: pytest.Config, log: Any = None) -> None:
            super().__init__(config, log)
            self.lanes: dict[str, int] = {}

        def _split_scope(self, nodeid: str) -> str:
            relative = _relative(nodeid)
            unit = relative if relative in TOGETHER else nodeid
            if relative in CHROMIUM:  # round robin over the browser units, in collection order
                return f"chromium-{self.lanes.setdefault(unit, len(self.lanes) % BROWSER_LANES)}"
            return unit

    return UnitScheduling(config, log)


_LANES: Lanes | None = None  # made at the first test


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Any:
    global _LANES
    lanes = _LANES = _LANES or Lanes(lanes_folder())
    lanes.enter(_is_solo(item.nodeid))  # set-up, call and tear-down (a module's server too) in the lane
    try:
        return (yield)
    finally:
        lanes.leave(nextitem is not None and _is_solo(nextitem.nodeid))


@pytest.fixture(scope="session", autouse=True)
def _speech_cache_in_tmp(tmp_path_factory: pytest.TempPathFactory) -> None:
    if os.environ.get("PYTEST_XDIST_WORKER"):
        # every worker's base folder is a child of the run's: the cache beside them is the run's
        folder = tmp_path_factory.getbasetemp().parent / "ipcc-cache"
        folder.mkdir(mode=0o700, exist_ok=True)
    else:
        folder = tmp_path_factory.mktemp("ipcc-cache")
    os.environ["IPCC_CACHE_DIR"] = str(folder)


@pytest.fixture(scope="session", autouse=True)
def _one_tls_context() -> Iterator[None]:
    """The tests' HTTP clients share one default TLS context.

    httpx builds one per client (``httpx.create_ssl_context``: the CA bundle read and parsed, tens of ms of CPU), and
    the tests make thousands of clients (``httpx.get`` in a polling loop is one per call), all for plain HTTP to
    loopback. The same context, made once, is what each would have made.
    """
    import httpx._transports.default as transports

    made = transports.create_ssl_context
    shared = functools.lru_cache(maxsize=None)(made)

    def create(verify: Any = True, cert: Any = None, trust_env: bool = True) -> Any:
        if verify is True and cert is None:
            return shared(verify, cert, trust_env)
        return made(verify=verify, cert=cert, trust_env=trust_env)

    transports.create_ssl_context = create
    yield
    transports.create_ssl_context = made


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent
