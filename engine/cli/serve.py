"""``ipcc-engine serve``: the HTTP API on uvicorn ."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from engine.cli.console import EXIT_OK, add_media_options, fail


def cmd_serve(args: argparse.Namespace) -> int:
    """Run the server until interrupted."""
    import uvicorn

    from engine.config import ConfigError, load_config
    from engine.server.app import ServerSettings, create_app
    from engine.server.auth import read_credentials, require_auth_off_loopback
    from engine.server.protocol import uvicorn_options

    logging.basicConfig(level=getattr(logging, args.log_level.upper()),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = ServerSettings(config=load_config(args.config), voices=args.voices,
                                  recordings=args.recordings, state_dir=args.state, cache=args.cache,
                                  max_calls=args.max_calls, fsync=args.fsync,
                                  auth=read_credentials(args.config))  # guard: secret / allowIps
        app = create_app(settings)
    except (ConfigError, NotADirectoryError, ValueError) as exc:
        return fail(str(exc))
    try:  # guard: beyond loopback, every application must have a secret or an IP allow-list
        require_auth_off_loopback(args.host, settings.auth, settings.config.applications)
    except ValueError as exc:
        return fail(str(exc))
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level, access_log=args.access_log,
                **uvicorn_options(settings.guard))  # guard: header/body read deadlines, connection cap
    return EXIT_OK


def register(subparsers: Any) -> None:
    """Add the ``serve`` sub-command."""
    serve = subparsers.add_parser("serve", help="run the HTTP API (multOrders, outCall, play, stoPlay, "
                                                "disConnect, events)")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8080, help="port (default: 8080)")
    add_media_options(serve)
    serve.add_argument("--recordings", type=Path, default=Path("recordings"),
                       help="where wav:NAME calls are recorded (default: ./recordings)")
    serve.add_argument("--state", type=Path, default=Path("state"),
                       help="where the event log events.jsonl is kept (default: ./state)")
    serve.add_argument("--max-calls", type=int, default=10_000, help="live calls at most (default: 10000)")
    serve.add_argument("--fsync", action="store_true", help="fsync the event log after every batch")
    serve.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"))
    serve.add_argument("--access-log", action="store_true", help="log every HTTP request")
    serve.set_defaults(func=cmd_serve)
