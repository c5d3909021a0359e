"""`plexus-bridge`: serve one stdio MCP server over HTTP.

Every flag can also be set by an environment variable named `PLEXUS_` plus the flag in capitals with dashes as
underscores (`--max-sessions` is `PLEXUS_MAX_SESSIONS`); a flag on the command line wins.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType
from typing import Any

import uvicorn

from bridge._uvicorn import CoalescingHttpToolsProtocol
from bridge._version import __version__
from bridge.exceptions import ConfigError
from bridge.http import create_app
from bridge.settings import BridgeSettings
from bridge.state import BridgeState
from bridge.stdio.supervisor import RestartPolicy

__all__ = ["main"]

logger = logging.getLogger("bridge")


def _env(name: str, default: Any, convert: Callable[[str], Any] = str) -> Any:
    raw = os.environ.get("PLEXUS_" + name.upper().replace("-", "_"))
    if raw is None:
        return default
    try:
        return convert(raw)
    except ValueError:
        raise ConfigError(
            f"PLEXUS_{name.upper().replace('-', '_')}={raw!r} is not a valid value for --{name}."
        ) from None


def _csv(raw: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in raw.split(",") if part.strip())


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="plexus-bridge",
        description="Serve an MCP server over streamable HTTP (both protocol eras) and legacy SSE.",
        epilog="Every flag also reads PLEXUS_<FLAG> from the environment, e.g. PLEXUS_PORT=9000.",
    )
    parser.add_argument("--version", action="version", version=f"plexus-bridge {__version__}")
    commands = parser.add_subparsers(dest="mode", required=True)
    stdio = commands.add_parser(
        "stdio",
        help="bridge a stdio MCP server process",
        description=(
            "Bridge a stdio MCP server: plexus-bridge stdio [options] -- COMMAND [ARGS...], or --fifo DIR for a "
            "server in another container of the pod. MCP is served at /mcp (streamable HTTP) and /sse (legacy), "
            "with /livez, /readyz and /metrics on the same port. Flags also read PLEXUS_<FLAG> variables."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    http = stdio.add_argument_group("HTTP")
    http.add_argument("--host", default=_env("host", "127.0.0.1"), help="address to listen on (images use 0.0.0.0)")
    http.add_argument("--port", type=int, default=_env("port", 8080, int), help="port for MCP, health and metrics")
    http.add_argument(
        "--allowed-hosts",
        type=_csv,
        default=_env("allowed-hosts", (), _csv),
        help="comma-separated Host names clients may use (exact or *.suffix); empty: localhost names when listening "
        "on loopback, any host otherwise",
    )
    http.add_argument(
        "--allowed-origins",
        type=_csv,
        default=_env("allowed-origins", (), _csv),
        help="comma-separated browser origins allowed besides those on an allowed host; * allows any",
    )
    server = stdio.add_argument_group("MCP server")
    server.add_argument(
        "--fifo",
        type=Path,
        default=_env("fifo", None, Path),
        help="talk to a server in another container through DIR/in and DIR/out (named pipes on a shared volume) "
        "instead of starting COMMAND; wrap the server as: sh -c 'exec SERVER < DIR/in > DIR/out'",
    )
    server.add_argument(
        "--session-mode",
        choices=["shared", "per-session"],
        default=_env("session-mode", "shared"),
        help="shared: one server for every client session; per-session: one server per session "
        "(forwards sampling, elicitation and roots; needs the 2025 handshake)",
    )
    server.add_argument(
        "--max-children",
        type=int,
        default=_env("max-children", 16, int),
        help="per-session mode: most servers running at once",
    )
    server.add_argument(
        "--max-restarts",
        type=int,
        default=_env("max-restarts", 5, int),
        help="restarts allowed within --restart-window before the bridge gives up (crash loop)",
    )
    server.add_argument(
        "--restart-window",
        type=float,
        default=_env("restart-window", 60.0, float),
        help="seconds over which --max-restarts is counted",
    )
    server.add_argument(
        "--max-backoff",
        type=float,
        default=_env("max-backoff", 30.0, float),
        help="longest wait in seconds between restarts (the wait doubles from 0.1 s)",
    )
    server.add_argument(
        "--startup-timeout",
        type=float,
        default=_env("startup-timeout", 30.0, float),
        help="seconds a server has to answer initialize after it starts",
    )
    limits = stdio.add_argument_group("limits")
    limits.add_argument(
        "--max-sessions", type=int, default=_env("max-sessions", 1000, int), help="most client sessions at once"
    )
    limits.add_argument(
        "--session-idle-timeout",
        type=float,
        default=_env("session-idle-timeout", 1800.0, float),
        help="seconds without traffic after which a session is closed",
    )
    limits.add_argument(
        "--max-inflight-per-session",
        type=int,
        default=_env("max-inflight-per-session", 64, int),
        help="most requests one session may have in flight",
    )
    limits.add_argument(
        "--max-body-bytes",
        type=int,
        default=_env("max-body-bytes", 4 * 1024 * 1024, int),
        help="largest HTTP request body accepted",
    )
    limits.add_argument(
        "--max-message-bytes",
        type=int,
        default=_env("max-message-bytes", 16 * 1024 * 1024, int),
        help="largest message accepted from the server (one stdout line)",
    )
    limits.add_argument(
        "--request-timeout",
        type=float,
        default=_env("request-timeout", 300.0, float),
        help="seconds to wait for the server's reply to a request",
    )
    limits.add_argument(
        "--drain-timeout",
        type=float,
        default=_env("drain-timeout", 30.0, float),
        help="seconds SIGTERM waits for requests in flight before stopping the server",
    )
    stdio.add_argument(
        "--log-level",
        default=_env("log-level", "info"),
        choices=["debug", "info", "warning", "error"],
        help="bridge log level",
    )
    stdio.add_argument("command", nargs=argparse.REMAINDER, help="the server command, after --")
    return parser


def settings_from_args(argv: Sequence[str] | None = None) -> BridgeSettings:
    """Parse flags (and PLEXUS_* variables) into validated settings."""
    args = _parser().parse_args(argv)
    command = list(args.command)
    if command[:1] == ["--"]:
        command = command[1:]
    return BridgeSettings(
        command=tuple(command),
        fifo=args.fifo,
        host=args.host,
        port=args.port,
        session_mode=args.session_mode,
        max_sessions=args.max_sessions,
        max_children=args.max_children,
        session_idle_timeout=args.session_idle_timeout,
        max_inflight_per_session=args.max_inflight_per_session,
        max_body_bytes=args.max_body_bytes,
        max_message_bytes=args.max_message_bytes,
        request_timeout=args.request_timeout,
        drain_timeout=args.drain_timeout,
        allowed_hosts=args.allowed_hosts,
        allowed_origins=args.allowed_origins,
        restart=RestartPolicy(
            max_backoff=args.max_backoff,
            crash_loop_restarts=args.max_restarts,
            crash_loop_window=args.restart_window,
            handshake_timeout=args.startup_timeout,
        ),
        log_level=args.log_level,
    )


class _DrainingServer(uvicorn.Server):
    """uvicorn, plus: on SIGTERM/SIGINT the bridge turns unready and ends idle streams before uvicorn drains."""

    def __init__(self, config: uvicorn.Config, state: BridgeState) -> None:
        super().__init__(config)
        self.state = state

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if not self.state.draining:
            logger.info(
                "Received %s: draining requests in flight (up to %.0f s).",
                signal.Signals(sig).name,
                self.state.settings.drain_timeout,
            )
            self.state.drain.set()
            for session in self.state.sessions:
                session.push(None)
        super().handle_exit(sig, frame)


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of `plexus-bridge`."""
    try:
        settings = settings_from_args(argv)
    except ConfigError as exc:
        print(f"plexus-bridge: error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        loop="uvloop",
        http=CoalescingHttpToolsProtocol,
        lifespan="on",
        access_log=False,
        proxy_headers=False,
        server_header=False,
        date_header=False,
        log_level=settings.log_level,
        timeout_graceful_shutdown=int(settings.drain_timeout),
    )
    server = _DrainingServer(config, app.state.bridge)
    server.run()
    if app.state.bridge.backend.gave_up:
        raise SystemExit(1)
