"""Who may use the engine's SIP: the source allow-list (``[sip] allow``) and digest authentication.

Digest is required when SIP listens off loopback (or ``[sip] auth``): start-up fails without ``[sip] users``.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable

from engine.net.digest import DigestAuth
from engine.net.user_agent import UserAgent
from engine.sip_config import SipSettings


def is_address(host: str) -> bool:
    """True for an IP literal (or ``localhost``): a host that needs no registration to be dialled."""
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return host == "localhost"
    return True


def allow_list(networks: tuple[str, ...]) -> Callable[[tuple[str, int]], bool] | None:
    """``[sip] allow = ["127.0.0.0/8", ...]``: a check of source addresses (None: everyone)."""
    if not networks:
        return None
    parsed = [ipaddress.ip_network(n, strict=False) for n in networks]

    def allowed(source: tuple[str, int]) -> bool:
        address = ipaddress.ip_address(source[0])
        return any(address in network for network in parsed)

    return allowed


def require_auth(agent: UserAgent, host: str, sip: SipSettings) -> None:
    """Turn digest authentication on for ``agent`` when it listens off loopback or ``[sip] auth`` asks."""
    if ipaddress.ip_address(host).is_loopback and not sip.auth:
        return
    if not sip.users:
        raise ValueError("[sip] users (name = password) is required: SIP off loopback needs digest auth")
    timers = agent.timers
    agent.auth = DigestAuth(sip.realm, dict(sip.users), lambda: timers.now)
