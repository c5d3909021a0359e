"""`plexus-aggregator`: many MCP targets behind one endpoint.

    plexus-aggregator --config FILE [options]     targets listed in FILE (watched, reloaded on change)
    plexus-aggregator dev FILE [options]          the same, starting a plexus-bridge for each stdio/openapi entry

Every flag can also be set by an environment variable named `PLEXUS_` plus the flag in capitals with dashes as
underscores (`--port` is `PLEXUS_PORT`); a flag on the command line wins.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import uvicorn
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from aggregator.backend import AggregatorBackend
from aggregator.dev import LaunchingSource
from aggregator.discovery import Source
from aggregator.discovery.static import StaticSource
from aggregator.exceptions import ConfigError
from bridge import BridgeSettings, create_app
from bridge import ConfigError as BridgeConfigError

__all__ = ["main"]

logger = logging.getLogger("aggregator")


def _env(name: str, default: Any, convert: Any = str) -> Any:
    raw = os.environ.get("PLEXUS_" + name.upper().replace("-", "_"))
    return convert(raw) if raw is not None else default


def _parser(dev: bool) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="plexus-aggregator dev" if dev else "plexus-aggregator",
        description=(
            "Start a plexus-bridge for each stdio/openapi entry of FILE and aggregate them with its url entries."
            if dev
            else "Serve every MCP target listed in the config file as one MCP endpoint at /mcp."
        ),
        epilog="Every flag also reads PLEXUS_<FLAG> from the environment. /targets shows each target's status.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    if dev:
        parser.add_argument("file", type=Path, help="config file (see examples/aggregator.yaml)")
    else:
        parser.add_argument(
            "--config",
            type=Path,
            default=_env("config", None, Path),
            required=_env("config", None) is None,
            help="config file (see examples/aggregator.yaml); watched and reloaded on change",
        )
    parser.add_argument("--host", default=_env("host", "127.0.0.1"), help="address to listen on (images use 0.0.0.0)")
    parser.add_argument("--port", type=int, default=_env("port", 8080, int), help="port for MCP, health and metrics")
    parser.add_argument("--allowed-hosts", default=_env("allowed-hosts", ""),
                        help="comma-separated Host names clients may use (exact or *.suffix)")  # fmt: skip
    parser.add_argument("--log-level", default=_env("log-level", "info"), choices=["debug", "info", "warning", "error"])
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of `plexus-aggregator`."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    dev = args_list[:1] == ["dev"]
    args = _parser(dev).parse_args(args_list[1:] if dev else args_list)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        static = StaticSource(args.file if dev else args.config, allow_launch=dev)
        source: Source = LaunchingSource(static) if dev else static
        hosts = tuple(host.strip() for host in args.allowed_hosts.split(",") if host.strip())
        settings = BridgeSettings(source=None, host=args.host, port=args.port, allowed_hosts=hosts,
                                  log_level=args.log_level)  # fmt: skip
    except (ConfigError, BridgeConfigError) as exc:
        print(f"plexus-aggregator: error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    backend = AggregatorBackend(static.config, source)

    async def targets(request: Request) -> JSONResponse:
        return JSONResponse(backend.targets())

    app = create_app(settings, backend=backend, routes=[Route("/targets", targets)], collectors=[backend.metrics])
    print(f"Plexus aggregator: MCP endpoint http://{args.host}:{args.port}/mcp (targets: /targets)", file=sys.stderr)
    uvicorn.run(app, host=args.host, port=args.port, loop="uvloop", http="httptools", log_level=args.log_level,
                access_log=False, timeout_graceful_shutdown=10)  # fmt: skip
