"""The configuration cannot silently mislead: unknown keys and voices refused, the shipped example loads."""

from __future__ import annotations

import re
import tomllib
from dataclasses import replace
from pathlib import Path

import pytest

from engine.config import (
    _APP_KEYS,
    _LIMIT_KEYS,
    _ROUTE_KEYS,
    _SERVER_KEYS,
    _TOP_KEYS,
    DEFAULT_ROUTES,
    ConfigError,
    Limits,
    Outcome,
    load_config,
    parse_config,
)
from engine.errors import MediaError
from engine.format import SAMPLE_RATE_HZ
from engine.server.app import Engine, ServerSettings, delivery_concurrency
from engine.server.auth import read_credentials
from engine.server.delivery import DEFAULT_CONCURRENCY
from engine.server.limits import AppLimits, GuardSettings, guard_settings
from engine.sip_config import _NUMBER_KEYS, _SIP_KEYS

APP = {"appId": "a"}


def _config(**tables: object) -> dict[str, object]:
    return {"applications": [APP], **tables}


@pytest.mark.parametrize(("raw", "words"), [
    ({"applications": [{"appId": "a", "callbackURL": "http://127.0.0.1/"}]},
     "'callbackURL'; did you mean 'callbackUrl'"),
    ({"applications": [{"appId": "a", "queuelimit": 3}]}, "did you mean 'queueLimit'"),
    (_config(route=[{}]), "did you mean 'routes'"),
    (_config(routes=[{"number": "1", "endpoint": "null", "callerwav": "x"}]), "did you mean 'callerWav'"),
    (_config(limits={"jsonDepht": 3}), "did you mean 'jsonDepth'"),
    (_config(server={"stat": "s"}), "did you mean 'state'"),
    ({"applications": [{"appId": "a", "voice": "sit/klingon"}]}, "voice: 'sit/klingon' is not an espeak-ng voice"),
    ({"applications": [{"appId": "a", "voice": "gmw/en-us+nobody"}]}, "the variant 'nobody'"),
    (_config(routes=[{"number": "12ab", "endpoint": "null"}]), "routes[0].number"),
    (_config(routes=[{"number": "1", "endpoint": "wav:{number}"}]), "routes[0].endpoint"),
    (_config(routes=[{"number": "1", "endpoint": "null", "outcome": "maybe"}]), "routes[0].outcome"),
    (_config(limits={"jsonDepth": 1}), "limits.jsonDepth: must be an integer >= 2"),
    (_config(limits={"fileSecond": 3}), "did you mean 'fileSeconds'"),
    (_config(limits={"bodybytes": 3}), "did you mean 'bodyBytes'"),
    (_config(limits={"fileSeconds": 0}), "limits.fileSeconds: must be a number from 0.001 to 86400"),
    ({"applications": [{"appId": "a", "silenceSeconds": -1}]}, "silenceSeconds: must be a number from 0 to 600"),
    ({"applications": [{"appId": "a", "silenceLevel": "-45"}]}, "silenceLevel: must be a number from -90 to 0"),
    ({"applications": [{"appId": "a", "silencelevel": -40}]}, "did you mean 'silenceLevel'"),
    (_config(limits={"fileSeconds": "600"}), "limits.fileSeconds"),
    (_config(limits={"fileBytes": 0}), "limits.fileBytes: must be an integer >= 1"),
    (_config(limits={"libraryCacheBytes": -1}), "limits.libraryCacheBytes: must be an integer >= 0"),
    (_config(limits={"speechMemoryBytes": 1.5}), "limits.speechMemoryBytes"),
    (_config(limits={"speechDiskBytes": True}), "limits.speechDiskBytes"),
    (_config(limits={"deliveryConcurrency": 0}), "limits.deliveryConcurrency: must be an integer >= 1"),
    (_config(limits={"bodyBytes": 10}), "limits.bodyBytes: must be an integer >= 64"),
    (_config(limits={"calls": 0}), "limits.calls: must be an integer >= 1"),
    (_config(server={"cahce": "c"}), "did you mean 'cache'"),
    ({"applications": [{"appId": "a", "deliveryconcurrency": 2}]}, "did you mean 'deliveryConcurrency'"),
    ({"applications": [{"appId": "a", "deliveryConcurrency": 0}]}, "deliveryConcurrency: must be an integer >= 1"),
])
def test_a_bad_configuration_is_refused_naming_the_key(raw: dict[str, object], words: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(raw, "apps.toml")
    assert words in str(caught.value) and str(caught.value).startswith("apps.toml")


def test_routes_first_match_wins_and_the_default_routes_every_number() -> None:
    config = parse_config(_config(routes=[{"number": "138*", "endpoint": "null", "outcome": "busy"},
                                          {"number": "13800138000", "endpoint": "wav:{called}"},
                                          {"number": "1?0", "endpoint": "null"}]), "x")
    assert config.route("13800138000").outcome is Outcome.BUSY  # the pattern comes first
    assert config.route("150").endpoint == "null" and config.route("1500") is None
    assert parse_config(_config(), "x").routes == DEFAULT_ROUTES and DEFAULT_ROUTES[0].matches("+8613800138000")


def test_the_shipped_example_loads_and_uses_every_key(repo_root: Path) -> None:
    path = repo_root / "apps.example.toml"
    config = load_config(path)
    raw = tomllib.loads(path.read_text(encoding="utf-8"))
    assert set(raw) == set(_TOP_KEYS)
    assert set().union(*raw["applications"]) == set(_APP_KEYS)
    assert set().union(*raw["routes"]) == set(_ROUTE_KEYS)
    assert set(raw["limits"]) == set(_LIMIT_KEYS) and set(raw["server"]) == set(_SERVER_KEYS)
    assert config.state_dir == repo_root / "state" and config.recordings == repo_root / "recordings"
    assert [route.outcome for route in config.routes][:2] == [Outcome.ANSWER, Outcome.BUSY]
    assert config.applications["247e35ff320a4142a105024055c367cf"].voice.voice == "sit/cmn"
    assert config.cache_dir == repo_root / "cache"
    assert replace(config.limits, guard={}) == Limits(delivery_concurrency=DEFAULT_CONCURRENCY), "the defaults"
    assert config.applications["247e35ff320a4142a105024055c367cf"].delivery_concurrency == 4
    guard = guard_settings(config)  # the example shows the guard's defaults too
    assert guard.limits("signed-app") == AppLimits() and guard == GuardSettings(apps={"signed-app": AppLimits()})
    assert read_credentials(path).apps["signed-app"].secret == b"change-me-to-32-random-characters"
    assert set().union(*raw["numbers"]) == set(_NUMBER_KEYS) and set(raw["sip"]) == set(_SIP_KEYS)
    assert config.numbers[0].welcome == repo_root / "engine/data/vendor-example.json"
    assert config.sip.listen == "127.0.0.1:5080" and config.sip.rtp_ports == (20000, 30000)
    assert config.sip.users == {"alice": "secret"} and config.sip.allow == ("127.0.0.0/8",)


def test_every_limit_reaches_the_part_it_bounds(tmp_path: Path, repo_root: Path) -> None:
    raw = _config(limits={"bodyBytes": 4096, "uploadBytes": 2048, "fileSeconds": 1.5, "fileBytes": 30000,
                          "libraryCacheBytes": 12345, "speechMemoryBytes": 777, "speechDiskBytes": 888,
                          "deliveryConcurrency": 3, "calls": 2},
                  server={"cache": "speech"})
    raw["applications"] = [{"appId": "a"}, {"appId": "b", "deliveryConcurrency": 7}]
    config = parse_config(raw, "x", tmp_path)
    engine = Engine(ServerSettings(config=config, voices=repo_root / "voices", recordings=tmp_path / "rec",
                                   state_dir=tmp_path / "state"))
    try:
        assert engine.library.stats()["cache_bytes"] == 12345
        assert len(engine.library.load("beep.wav")) == SAMPLE_RATE_HZ // 2  # 0.5 s, 4058 bytes: within
        with pytest.raises(MediaError, match="max_file_seconds = 1.5 s"):
            engine.library.load("goodbye.ogg")  # 2.0 s, 14996 bytes
        with pytest.raises(MediaError, match="max_file_bytes = 30000 bytes"):
            engine.library.load("welcome.wav")  # 51300 bytes
        speech = engine.speaker.synthesize("configured bounds")
        assert len(speech) * 2 > 888 and engine.speaker.cached("configured bounds") is None  # memory: 777 bytes
        assert sum(f.stat().st_size for f in (tmp_path / "speech" / "tts").glob("*.wav")) <= 888
        assert (engine.max_body_bytes, engine.max_upload_bytes) == (4096, 2048)
        assert engine.delivery.concurrency == {"a": 3, "b": 7}
        assert engine.board.max_calls == 2
    finally:
        engine.close()
    assert delivery_concurrency(config, 5) == 5  # the command line's (or a test's) number wins
    plain = parse_config(_config(), "x")
    assert delivery_concurrency(plain) == {"a": 16} and plain.limits == Limits() and plain.cache_dir is None


@pytest.mark.parametrize(("raw", "words"), [
    (_config(numbers=[{"number": "1", "autoanswer": True}]), "did you mean 'autoAnswer'"),
    (_config(numbers=[{"number": "1", "welcome": "missing.json"}]), "numbers[0].welcome: no such file"),
    (_config(numbers=[{"number": "1", "appId": "nobody"}]), "numbers[0].appId"),
    (_config(numbers=[{"number": "1 2"}]), "numbers[0].number"),
    (_config(numbers=[{"number": "1"}, {"number": "1"}]), "numbers[1].number '1' appears twice"),
    (_config(numbers=[{"number": "1", "autoAnswer": "yes"}]), "numbers[0].autoAnswer: must be true or false"),
    (_config(sip={"listne": "127.0.0.1:5080"}), "did you mean 'listen'"),
    (_config(sip={"listen": "nowhere"}), "sip.listen: expected HOST:PORT"),
    (_config(sip={"rtpPorts": [30000, 20000]}), "sip.rtpPorts"),
    (_config(sip={"inactivityS": 0}), "sip.inactivityS: must be seconds"),
    (_config(sip={"allow": ["10.0.0.0/33"]}), "sip.allow"),
    (_config(sip={"users": {"alice": 1}}), "sip.users"),
    (_config(sip={"mediaProcesses": -1}), "sip.mediaProcesses: must be an integer >= 0"),
    (_config(sip={"mediaProcesses": 65}), "sip.mediaProcesses: must be 0-64"),
    (_config(sip={"mediaprocesses": 2}), "did you mean 'mediaProcesses'"),
    (_config(sip={"mediaPriority": 100}), "sip.mediaPriority: must be 0 (none) or 1-99"),
])
def test_a_bad_numbers_or_sip_table_is_refused_naming_the_key(raw: dict[str, object], words: str,
                                                              tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(raw, "apps.toml", tmp_path)
    assert words in str(caught.value) and str(caught.value).startswith("apps.toml")


def test_numbers_default_to_the_first_application_answered_and_welcome_is_relative(tmp_path: Path) -> None:
    (tmp_path / "hello.json").write_text("{}")
    config = parse_config(_config(numbers=[{"number": "10086", "welcome": "hello.json"}],
                                  sip={"rtpPorts": "shared"}), "x", tmp_path)
    assert config.numbers[0].app_id == "a" and config.numbers[0].auto_answer
    assert config.numbers[0].welcome == tmp_path / "hello.json"
    assert config.sip.rtp_ports is None and config.sip.inactivity_s == 30.0
    assert config.sip.media_processes == 0
    assert parse_config(_config(sip={"mediaProcesses": 2}), "x").sip.media_processes == 2
    assert parse_config(_config(sip={"mediaPriority": 10}), "x").sip.media_priority == 10
    assert parse_config(_config(), "x").numbers == ()


def test_the_guards_limits_come_from_the_configuration() -> None:
    raw = _config(limits={"callIdleS": 90, "maxConnections": 50, "admitCpuShare": 0.9, "admitRealTime": 0.5,
                          "admitLatenessS": 2, "callCpuShare": 0.001})
    raw["applications"] = [{"appId": "a", "maxCalls": 3, "requestsPerSecond": 0.5, "preparingQueue": 0}]
    guard = guard_settings(parse_config(raw, "x"))
    assert (guard.call_idle_s, guard.max_connections) == (90, 50)
    assert (guard.max_cpu_share, guard.min_real_time, guard.max_lateness_s, guard.call_cpu_share) == \
        (0.9, 0.5, 2, 0.001)
    assert guard.call_lifetime_s == GuardSettings().call_lifetime_s
    assert guard.limits("a") == AppLimits(calls=3, requests_per_s=0.5, preparing_queue=0)
    assert guard.limits("other") == AppLimits()
    for table, words in (({"maxCalls": 0}, "maxCalls: must be a whole number >= 1"),
                         ({"requestsPerSecond": "fast"}, "requestsPerSecond: must be a number"),
                         ({"secret": "s", "maxcalls": 3}, "did you mean 'maxCalls'")):
        with pytest.raises(ConfigError, match=re.escape(words)):
            parse_config({"applications": [{"appId": "a", **table}]}, "x")
