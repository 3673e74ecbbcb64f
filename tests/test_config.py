"""The configuration cannot silently mislead: unknown keys and voices refused, the shipped example loads."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from engine.config import (
    _APP_KEYS,
    _LIMIT_KEYS,
    _NUMBER_KEYS,
    _ROUTE_KEYS,
    _SERVER_KEYS,
    _SIP_KEYS,
    _TOP_KEYS,
    DEFAULT_ROUTES,
    ConfigError,
    Outcome,
    load_config,
    parse_config,
)

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
    assert set().union(*raw["numbers"]) == set(_NUMBER_KEYS) and set(raw["sip"]) == set(_SIP_KEYS)
    assert config.numbers[0].welcome == repo_root / "engine/data/vendor-example.json"
    assert config.sip.listen == "127.0.0.1:5080" and config.sip.rtp_ports == (20000, 30000)
    assert config.sip.users == {"alice": "secret"} and config.sip.allow == ("127.0.0.0/8",)


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
    assert parse_config(_config(), "x").numbers == ()
