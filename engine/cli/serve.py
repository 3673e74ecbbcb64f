"""``ipcc-engine serve``: the HTTP API on uvicorn; ``check-config``: a configuration checked without serving."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from engine.cli.console import EXIT_OK, add_media_options, fail, print_json

SERVE_EXAMPLE = """example:
  ipcc-engine serve --port 8080 --config apps.toml
  curl -s localhost:8080/ipcc/call/outCall -d '{"appId":"247e35ff320a4142a105024055c367cf","called":"13800138000"}'
"""
CHECK_EXAMPLE = """example:
  ipcc-engine check-config apps.toml     # prints a summary line, exit 0; or the first problem, exit 2
"""


def cmd_serve(args: argparse.Namespace) -> int:
    """Run the server until interrupted."""
    import uvicorn

    from engine.config import ConfigError, load_config
    from engine.server.app import ServerSettings, create_app
    from engine.server.auth import read_credentials, require_auth_off_loopback
    from engine.server.limits import guard_settings
    from engine.server.protocol import uvicorn_options

    logging.basicConfig(level=getattr(logging, args.log_level.upper()),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        config = load_config(args.config)
        settings = ServerSettings(config=config, voices=args.voices,
                                  recordings=args.recordings or config.recordings or Path("recordings"),
                                  state_dir=args.state or config.state_dir or Path("state"), cache=args.cache,
                                  max_calls=args.max_calls, fsync=args.fsync,
                                  auth=read_credentials(args.config),  # guard: secret / allowIps
                                  guard=guard_settings(config))  # its [limits] and per-application limits
        app = create_app(settings)
    except (ConfigError, OSError, ValueError) as exc:  # OSError: an unusable state folder (delivery)
        return fail(str(exc))
    if args.sip or config.sip.listen:  # --sip wins over [sip] listen
        from engine.server.sip_glue import attach_sip

        try:
            attach_sip(app.state.engine, args.sip, args.media_processes)
        except (OSError, ValueError) as exc:
            return fail(str(exc))
    elif (count := config.sip.media_processes if args.media_processes is None else args.media_processes):
        from engine.server.worker_pool import start_workers

        try:  # no SIP: the portable calls' media (null) in the workers
            start_workers(app.state.engine, count)
        except OSError as exc:
            return fail(str(exc))
    try:  # guard: beyond loopback, every application must have a secret or an IP allow-list
        require_auth_off_loopback(args.host, settings.auth, settings.config.applications)
    except ValueError as exc:
        return fail(str(exc))
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level, access_log=args.access_log,
                **uvicorn_options(settings.guard))  # guard: header/body read deadlines, connection cap
    return EXIT_OK


def cmd_check_config(args: argparse.Namespace) -> int:
    """``check-config FILE``: load the configuration as ``serve`` would; print a summary or the first problem."""
    from engine.config import ConfigError, load_config

    try:
        config = load_config(args.file)
    except ConfigError as exc:
        return fail(str(exc))
    print_json({"ok": True, "file": str(args.file), "applications": sorted(config.applications),
                "routes": [f"{route.number} -> {route.endpoint}" + ("" if route.outcome.value == "answer"
                                                                    else f" ({route.outcome.value})")
                           for route in config.routes],
                "jsonDepth": config.json_limits.max_depth, "jsonKeys": config.json_limits.max_keys})
    return EXIT_OK


def _media_processes(text: str) -> int:
    """``--media-processes N``: 0-64 worker processes."""
    from engine.sip_config import MAX_MEDIA_PROCESSES

    if not text.isdigit() or int(text) > MAX_MEDIA_PROCESSES:
        raise argparse.ArgumentTypeError(f"must be 0-{MAX_MEDIA_PROCESSES}, got {text!r}")
    return int(text)


def register(subparsers: Any) -> None:
    """Add the ``serve`` and ``check-config`` sub-commands."""
    formatter = argparse.RawDescriptionHelpFormatter
    serve = subparsers.add_parser(
        "serve", help="run the HTTP API (the call API, events, status, /docs)", formatter_class=formatter,
        description="Serve the IPCC call API over HTTP (FastAPI on uvicorn, loopback by default): outCall, "
                    "multOrders, play, stoPlay, disConnect, callNotifyV2, transfer, reply, message, the file "
                    "upload, GET /ipcc/events and /ipcc/status; /docs works offline.", epilog=SERVE_EXAMPLE)
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8080, help="port (default: 8080)")
    add_media_options(serve)
    serve.add_argument("--recordings", type=Path, default=None,
                       help="where calls are recorded (default: the configuration's [server] recordings, "
                            "else ./recordings)")
    serve.add_argument("--state", type=Path, default=None,
                       help="the event log, journal and acknowledgements (default: the configuration's "
                            "[server] state, else ./state)")
    serve.add_argument("--max-calls", type=int, default=None,
                       help="live calls at most (default: the configuration's [limits] calls, else 10000)")
    serve.add_argument("--fsync", action="store_true",
                       help="fsync the event log, journal and acknowledgements after every batch (survives a "
                            "power cut; default: written to the kernel at once, survives kill -9)")
    serve.add_argument("--sip", metavar="HOST:PORT", help="also answer SIP calls here (UDP), e.g. 127.0.0.1:5080")
    serve.add_argument("--media-processes", type=_media_processes, default=None, metavar="N",
                       help="calls' media (SIP, null, wav:) in N worker processes (default: [sip] mediaProcesses, "
                            "0: in-process)")
    serve.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"))
    serve.add_argument("--access-log", action="store_true", help="log every HTTP request")
    serve.set_defaults(func=cmd_serve)

    check = subparsers.add_parser(
        "check-config", help="check a configuration file (TOML) without serving", formatter_class=formatter,
        description="Load a configuration as `serve` does: unknown keys (with their nearest valid spelling), "
                    "unknown voices, bad routes and limits are reported, exit 2; a valid file prints a "
                    "summary line (JSON), exit 0.", epilog=CHECK_EXAMPLE)
    check.add_argument("file", type=Path, help="the configuration file (see apps.example.toml)")
    check.set_defaults(func=cmd_check_config)
