"""From a request body to a checked request: the order of checks every entry point shares.

The envelope first (JSON object, ``appId``/``callId`` strings: ``108100``), then the application
(``108101``), then the orders and their files (``108100``). The server looks the call up (``108105``) between
the application and the orders.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from .config import Application, Config
from .library import VoiceLibrary
from .media import check_files
from .orders import MultOrders
from .request import decode_body, parse_mult_orders, read_ids


def check_request(
    body: bytes | str | Mapping[str, Any],
    config: Config,
    library: VoiceLibrary,
    parse: Callable[[Mapping[str, Any]], MultOrders] = parse_mult_orders,
    check_call: Callable[[str, str], None] | None = None,
) -> tuple[MultOrders, Application]:
    """Check a request body in the contract's order; raises the :class:`EngineError` of the first failure."""
    fields = decode_body(body) if isinstance(body, bytes | str) else body
    app_id, call_id = read_ids(fields)
    application = config.application(app_id)
    if check_call is not None:
        check_call(app_id, call_id)
    request = parse(fields)
    check_files(request, library)
    return request, application
