"""`plexus-bridge`: serve one stdio MCP server, or one REST API described by OpenAPI, over HTTP.

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
from bridge.settings import BridgeSettings, OpenAPISource, StdioSource
from bridge.state import BridgeState
from bridge.stdio.supervisor import RestartPolicy

__all__ = ["main", "settings_from_args"]

logger = logging.getLogger("bridge")


def _env(name: str, default: Any, convert: Callable[[str], Any] = str) -> Any:
    variable = "PLEXUS_" + name.upper().replace("-", "_")
    raw = os.environ.get(variable)
    if raw is None:
        return default
    try:
        return convert(raw)
    except ValueError:
        raise ConfigError(f"{variable}={raw!r} is not a valid value for --{name}.") from None


def _csv(raw: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in raw.split(",") if part.strip())


class _Options:
    """Adds flags that also read their PLEXUS_* variable, so each is declared once with its default and help."""

    def __init__(self, group: Any) -> None:
        self.group = group

    def add(self, flag: str, default: Any, help: str, convert: Callable[[str], Any] = str, **kwargs: Any) -> None:
        name = flag.lstrip("-")
        if convert is not str:
            kwargs.setdefault("type", convert)
        self.group.add_argument(flag, default=_env(name, default, convert), help=help, **kwargs)


def _add_front(parser: argparse.ArgumentParser) -> None:
    http = _Options(parser.add_argument_group("HTTP"))
    http.add("--host", "127.0.0.1", "address to listen on (images use 0.0.0.0)")
    http.add("--port", 8080, "port for MCP, health and metrics", int)
    http.add(
        "--allowed-hosts",
        (),
        "comma-separated Host names clients may use (exact or *.suffix); empty: localhost names when listening on "
        "loopback, any host otherwise",
        _csv,
    )
    http.add(
        "--allowed-origins",
        (),
        "comma-separated browser origins allowed besides those on an allowed host; *: any",
        _csv,
    )
    limits = _Options(parser.add_argument_group("limits"))
    limits.add("--max-sessions", 1000, "most client sessions at once", int)
    limits.add("--session-idle-timeout", 1800.0, "seconds without traffic after which a session is closed", float)
    limits.add("--max-inflight-per-session", 64, "most requests one session may have in flight", int)
    limits.add("--max-body-bytes", 4 * 1024 * 1024, "largest HTTP request body accepted", int)
    limits.add("--request-timeout", 300.0, "seconds to wait for the reply to a request", float)
    limits.add("--startup-timeout", 30.0, "seconds a session's initialize waits for the server to be ready", float)
    limits.add("--drain-timeout", 30.0, "seconds SIGTERM waits for requests in flight before stopping", float)
    _Options(parser).add("--log-level", "info", "bridge log level", choices=["debug", "info", "warning", "error"])


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="plexus-bridge",
        description="Serve an MCP server (stdio) or a REST API (OpenAPI) over streamable HTTP and legacy SSE.",
        epilog="Every flag also reads PLEXUS_<FLAG> from the environment, e.g. PLEXUS_PORT=9000.",
    )
    parser.add_argument("--version", action="version", version=f"plexus-bridge {__version__}")
    commands = parser.add_subparsers(dest="mode", required=True)
    formatter = argparse.ArgumentDefaultsHelpFormatter
    stdio = commands.add_parser(
        "stdio",
        help="bridge a stdio MCP server process",
        description=(
            "Bridge a stdio MCP server: plexus-bridge stdio [options] -- COMMAND [ARGS...], or --fifo DIR for a "
            "server in another container of the pod. MCP is served at /mcp (streamable HTTP) and /sse (legacy), "
            "with /livez, /readyz and /metrics on the same port. Flags also read PLEXUS_<FLAG> variables."
        ),
        formatter_class=formatter,
    )
    _add_front(stdio)
    server = _Options(stdio.add_argument_group("MCP server"))
    server.add(
        "--fifo",
        None,
        "talk to a server in another container through DIR/in and DIR/out (named pipes on a shared volume) instead "
        "of starting COMMAND; wrap the server as: sh -c 'exec SERVER < DIR/in > DIR/out'",
        Path,
    )
    server.add(
        "--session-mode",
        "shared",
        "shared: one server for every client session; per-session: one server per session (forwards sampling, "
        "elicitation and roots; needs the 2025 handshake)",
        choices=["shared", "per-session"],
    )
    server.add("--max-children", 16, "per-session mode: most servers running at once", int)
    server.add("--max-restarts", 5, "restarts allowed within --restart-window before the bridge gives up", int)
    server.add("--restart-window", 60.0, "seconds over which --max-restarts is counted", float)
    server.add("--max-backoff", 30.0, "longest wait in seconds between restarts (the wait doubles from 0.1 s)", float)
    server.add("--max-message-bytes", 16 * 1024 * 1024, "largest message accepted from the server (one line)", int)
    stdio.add_argument("command", nargs=argparse.REMAINDER, help="the server command, after --")

    openapi = commands.add_parser(
        "openapi",
        help="serve a REST API described by OpenAPI as MCP tools",
        description=(
            "Serve a REST API as MCP tools, one per operation: plexus-bridge openapi --spec FILE|URL [options]. "
            "OpenAPI 3.0, 3.1 and Swagger 2.0, JSON or YAML. Credentials come only from PLEXUS_AUTH_<SCHEME> "
            "variables or their _FILE variants (see docs/openapi.md). Flags also read PLEXUS_<FLAG> variables."
        ),
        formatter_class=formatter,
    )
    _add_front(openapi)
    api = _Options(openapi.add_argument_group("REST API"))
    api.add("--spec", "", "path or http(s) URL of the OpenAPI document")
    api.add("--base-url", None, "the API's address (default: the spec's first server)")
    api.add(
        "--include",
        (),
        "comma-separated filters; only matching operations become tools: tag:NAME, op:OPERATION_ID, path:GLOB, "
        "method:METHOD (globs allowed)",
        _csv,
    )
    api.add("--exclude", (), "comma-separated filters (as --include) of operations to leave out", _csv)
    api.add("--overrides", None, "YAML file renaming, redescribing or hiding tools (see docs/openapi.md)", Path)
    api.add(
        "--forward-headers",
        (),
        "comma-separated client request headers passed on to the API (e.g. Authorization)",
        _csv,
    )
    api.add("--max-response-bytes", 8 * 1024 * 1024, "largest API response accepted", int)
    api.add("--page-size", 100, "tools per tools/list page", int)
    openapi.add_argument("--check", action="store_true", help="validate the spec fully, print its problems, and exit")
    return parser


def settings_from_args(argv: Sequence[str] | None = None) -> BridgeSettings:
    """Parse flags (and PLEXUS_* variables) into validated settings."""
    return _settings(_parser().parse_args(argv))


def _settings(args: argparse.Namespace) -> BridgeSettings:
    source: StdioSource | OpenAPISource
    if args.mode == "stdio":
        command = list(args.command)
        if command[:1] == ["--"]:
            command = command[1:]
        source = StdioSource(
            command=tuple(command),
            fifo=args.fifo,
            session_mode=args.session_mode,
            max_children=args.max_children,
            max_message_bytes=args.max_message_bytes,
            restart=RestartPolicy(
                max_backoff=args.max_backoff,
                crash_loop_restarts=args.max_restarts,
                crash_loop_window=args.restart_window,
                handshake_timeout=args.startup_timeout,
            ),
        )
    else:
        source = OpenAPISource(
            spec=args.spec,
            base_url=args.base_url,
            include=args.include,
            exclude=args.exclude,
            overrides=args.overrides,
            max_response_bytes=args.max_response_bytes,
            forward_headers=args.forward_headers,
            page_size=args.page_size,
        )
    return BridgeSettings(
        source=source,
        host=args.host,
        port=args.port,
        max_sessions=args.max_sessions,
        session_idle_timeout=args.session_idle_timeout,
        max_inflight_per_session=args.max_inflight_per_session,
        max_body_bytes=args.max_body_bytes,
        request_timeout=args.request_timeout,
        startup_timeout=args.startup_timeout,
        drain_timeout=args.drain_timeout,
        allowed_hosts=args.allowed_hosts,
        allowed_origins=args.allowed_origins,
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


def _check(source: OpenAPISource) -> int:
    from bridge.openapi.loader import load_spec, validate_spec

    problems = validate_spec(load_spec(source.spec))
    for problem in problems:
        print(f"plexus-bridge: {problem}", file=sys.stderr)
    if not problems:
        print(f"{source.spec}: valid", file=sys.stderr)
    return 1 if problems else 0


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of `plexus-bridge`."""
    try:
        args = _parser().parse_args(argv)
        settings = _settings(args)
        logging.basicConfig(
            level=settings.log_level.upper(),
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
            stream=sys.stderr,
        )
        if isinstance(settings.source, OpenAPISource) and args.check:
            raise SystemExit(_check(settings.source))
        app = create_app(settings)
    except ConfigError as exc:
        print(f"plexus-bridge: error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
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
