"""`plexus-aggregator`: many MCP targets behind one endpoint.

    plexus-aggregator --config FILE [options]     targets listed in FILE (watched, reloaded on change)
    plexus-aggregator dev FILE [options]          the same, starting a plexus-bridge for each stdio/openapi entry
    plexus-aggregator kubernetes [options]        targets from Services labelled plexus.dev/bridge=true

Every flag can also be set by an environment variable named `PLEXUS_` plus the flag in capitals with dashes as
underscores (`--port` is `PLEXUS_PORT`); a flag on the command line wins.
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import uvicorn
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from aggregator.backend import AggregatorBackend
from aggregator.config import AggregatorConfig, load_config
from aggregator.dev import LaunchingSource
from aggregator.discovery import Source
from aggregator.discovery.kubernetes import DEFAULT_SELECTOR, KubernetesSource
from aggregator.discovery.static import StaticSource
from aggregator.exceptions import ConfigError
from bridge import BridgeSettings, create_app
from bridge import ConfigError as BridgeConfigError
from bridge.sealing import KEY_ENV, SessionSealer, load_key

__all__ = ["main"]

logger = logging.getLogger("aggregator")


def _env(name: str, default: Any, convert: Any = str) -> Any:
    raw = os.environ.get("PLEXUS_" + name.upper().replace("-", "_"))
    return convert(raw) if raw is not None else default


_DESCRIPTIONS = {
    "": "Serve every MCP target listed in the config file as one MCP endpoint at /mcp.",
    "dev": "Start a plexus-bridge for each stdio/openapi entry of FILE and aggregate them with its url entries.",
    "kubernetes": (
        "Serve every MCP port of the Kubernetes Services matching the selector (appProtocol plexus.dev/mcp or "
        "plexus.dev/mcp-sse, or the agentgateway/kgateway values) as one MCP endpoint at /mcp."
    ),
}


def _parser(mode: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=f"plexus-aggregator {mode}".strip(),
        description=_DESCRIPTIONS[mode],
        epilog="Every flag also reads PLEXUS_<FLAG> from the environment. /targets shows each target's status."
        + ("" if mode else " Other modes: 'plexus-aggregator dev FILE' and 'plexus-aggregator kubernetes' (--help)."),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    if mode == "dev":
        parser.add_argument("file", type=Path, help="config file (see examples/aggregator.yaml)")
    else:
        kubernetes = mode == "kubernetes"
        parser.add_argument(
            "--config",
            type=Path,
            default=_env("config", None, Path),
            required=not kubernetes and _env("config", None) is None,
            help="config file (see examples/aggregator.yaml); its settings apply, its targets are served too"
            if kubernetes
            else "config file (see examples/aggregator.yaml); watched and reloaded on change",
        )
    if mode == "kubernetes":
        parser.add_argument("--selector", default=_env("selector", DEFAULT_SELECTOR),
                            help="label selector of the Services to serve")  # fmt: skip
        parser.add_argument("--namespaces", default=_env("namespaces", ""),
                            help="comma-separated namespaces to watch; empty watches all")  # fmt: skip
        parser.add_argument("--namespace-selector", default=_env("namespace-selector", None),
                            help="label selector of the namespaces to watch, instead of --namespaces")  # fmt: skip
        parser.add_argument("--kubeconfig", type=Path, default=_env("kubeconfig", None, Path),
                            help="kubeconfig file; without it the in-cluster account, then ~/.kube/config")  # fmt: skip
    if mode != "dev":
        parser.add_argument("--session-key-file", type=Path, default=_env("session-key-file", None, Path),
                            help="key sealing session ids, shared by every replica so any can serve any session "
                                 f"(or set {KEY_ENV}); without one, sessions live in one process")  # fmt: skip
    parser.add_argument("--host", default=_env("host", "127.0.0.1"), help="address to listen on (images use 0.0.0.0)")
    parser.add_argument("--port", type=int, default=_env("port", 8080, int), help="port for MCP, health and metrics")
    parser.add_argument("--allowed-hosts", default=_env("allowed-hosts", ""),
                        help="comma-separated Host names clients may use (exact or *.suffix)")  # fmt: skip
    parser.add_argument("--log-level", default=_env("log-level", "info"), choices=["debug", "info", "warning", "error"])
    return parser


def _source(mode: str, args: argparse.Namespace) -> tuple[Source, AggregatorConfig]:
    """The discovery source of `mode` and the configuration it starts with."""
    if mode == "kubernetes":
        config = load_config(args.config) if args.config else AggregatorConfig(targets={})
        namespaces = tuple(name.strip() for name in args.namespaces.split(",") if name.strip())
        kubernetes = KubernetesSource(
            selector=args.selector,
            namespaces=namespaces,
            namespace_selector=args.namespace_selector,
            kubeconfig=args.kubeconfig,
            identity=socket.gethostname(),
            static=config.targets,
        )
        return kubernetes, config
    static = StaticSource(args.file if mode == "dev" else args.config, allow_launch=mode == "dev")
    return (LaunchingSource(static) if mode == "dev" else static), static.config


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of `plexus-aggregator`."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    mode = args_list[0] if args_list[:1] in (["dev"], ["kubernetes"]) else ""
    args = _parser(mode).parse_args(args_list[1:] if mode else args_list)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        source, config = _source(mode, args)
        key = load_key(getattr(args, "session_key_file", None))
        hosts = tuple(host.strip() for host in args.allowed_hosts.split(",") if host.strip())
        settings = BridgeSettings(source=None, host=args.host, port=args.port, allowed_hosts=hosts,
                                  log_level=args.log_level)  # fmt: skip
    except (ConfigError, BridgeConfigError) as exc:
        print(f"plexus-aggregator: error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    backend = AggregatorBackend(config, source)

    async def targets(request: Request) -> JSONResponse:
        return JSONResponse(backend.targets())

    app = create_app(
        settings,
        backend=backend,
        routes=[Route("/targets", targets)],
        collectors=[backend.metrics],
        sealer=SessionSealer(key) if key is not None else None,
        adopt=backend.adopt,
    )
    print(f"Plexus aggregator: MCP endpoint http://{args.host}:{args.port}/mcp (targets: /targets)", file=sys.stderr)
    uvicorn.run(app, host=args.host, port=args.port, loop="uvloop", http="httptools", log_level=args.log_level,
                access_log=False, timeout_graceful_shutdown=10)  # fmt: skip
