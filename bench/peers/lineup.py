"""The contenders: how each is started, on loopback, in front of the same upstream, and what its processes hold.

Every contender is a server under load in a process of its own (`contenders.Server`), started with the flags a user
would pass to put it on 127.0.0.1 and nothing more: defaults are what users get. supergateway has no host flag and
listens on every interface, so a node preload (`loopback.cjs`) pins its `listen` to 127.0.0.1; after start-up every
listening socket of every contender's process tree is checked to be on loopback.

Readiness is the same for all: spawn until an `initialize` is answered and a first verified call (or, for an
aggregator, a complete tool list) goes through. Memory is read for the server process alone and for its whole process
tree, because some peers start a server per session.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import orjson
from aggregator_bench import AGGREGATOR_EXE, targets_config
from bench_common import ECHO_SERVER, HOST, INITIALIZE, REPO, free_port
from contenders import BRIDGE_EXE, Processes, Server
from eraclient import HANDSHAKE, McpSession, RequestFailed
from installer import NODE_BIN, PEERS_DIR, venv_bin

SDK_SERVER: Final = PEERS_DIR / "sdk_server.py"
LOOPBACK_PRELOAD: Final = PEERS_DIR / "loopback.cjs"
READY_TIMEOUT: Final = 60.0
"""Seconds a contender has to answer its first verified request after spawn (FastMCP with 50 targets is slow)."""
PROBE_TIMEOUT: Final = 10.0
"""Seconds one readiness or probe request may take once the port accepts connections."""
POLL_INTERVAL: Final = 0.01
"""Seconds between connection attempts while a contender starts (bounds the cold-start error from above)."""
PLEXUS_TIMEOUTS: Final = "timeouts: {list: 2, call: 30}"
"""The aggregator's per-target deadlines in every scenario: lists 2 s, calls 30 s."""

ConfigWriter = Callable[[int, int], str]
"""Config file text for (many_targets port, target count)."""


@dataclass(frozen=True)
class Contender:
    """One server under test: a Plexus command or a peer's, with what it needs besides its flags."""

    key: str
    label: str
    version: str
    argv: tuple[str, ...]
    """The command; `{port}` and `{config}` are filled in at start."""
    env: Mapping[str, str] = field(default_factory=dict)
    config: ConfigWriter | None = None
    config_suffix: str = ".json"
    plexus: bool = False


def _echo_command() -> list[str]:
    return [sys.executable, str(ECHO_SERVER)]


def _fastmcp_bridge_config(port: int, count: int) -> str:
    return json.dumps({"mcpServers": {"echo": {"command": sys.executable, "args": [str(ECHO_SERVER)]}}})


def _fastmcp_targets_config(port: int, count: int) -> str:
    servers = {f"t{i}": {"url": f"http://{HOST}:{port}/t{i}/mcp", "transport": "http"} for i in range(count)}
    return json.dumps({"mcpServers": servers})


def _plexus_targets_config(port: int, count: int) -> str:
    return targets_config(port, count, PLEXUS_TIMEOUTS)


FASTMCP_ARGV: Final = (
    str(venv_bin("fastmcp") / "fastmcp"), "run", "{config}", "--transport", "http", "--host", HOST,
    "--port", "{port}", "--no-banner", "--log-level", "WARNING",
)  # fmt: skip
FASTMCP_ENV: Final = {"FASTMCP_CHECK_FOR_UPDATES": "off", "FASTMCP_SHOW_SERVER_BANNER": "false"}
"""No banner and no update check: nothing leaves the machine."""


def bridges(versions: Mapping[str, str]) -> list[Contender]:
    """The stdio bridges in front of the echo server, and the SDK's own HTTP server (no bridge) as the floor."""
    echo = _echo_command()
    return [
        Contender(
            "plexus", "plexus-bridge", "this tree",
            (str(BRIDGE_EXE), "stdio", "--host", HOST, "--port", "{port}", "--log-level", "warning", "--", *echo),
            plexus=True,
        ),
        Contender(
            "supergateway", "supergateway (npm)", versions["supergateway"],
            (str(NODE_BIN / "supergateway"), "--stdio", shlex.join(echo), "--outputTransport", "streamableHttp",
             "--stateful", "--port", "{port}", "--logLevel", "none"),
            env={"NODE_OPTIONS": f"--require {LOOPBACK_PRELOAD}"},
        ),
        Contender(
            "mcp-proxy-npm", "mcp-proxy (npm)", versions["mcp-proxy-npm"],
            (str(NODE_BIN / "mcp-proxy"), "--host", HOST, "--port", "{port}", "--server", "stream", "--", *echo),
        ),
        Contender(
            "mcp-proxy-pypi", "mcp-proxy (PyPI)", versions["mcp-proxy-pypi"],
            (str(venv_bin("mcp-proxy-pypi") / "mcp-proxy"), "--host", HOST, "--port", "{port}", "--log-level",
             "WARNING", "--", *echo),
        ),
        Contender(
            "fastmcp", "FastMCP proxy", versions["fastmcp"], FASTMCP_ARGV, env=FASTMCP_ENV,
            config=_fastmcp_bridge_config,
        ),
        Contender(
            "sdk", "SDK server (floor, no hop)", versions["sdk"], (sys.executable, str(SDK_SERVER), "{port}")
        ),
    ]  # fmt: skip


def aggregators(versions: Mapping[str, str]) -> list[Contender]:
    """The aggregators, each over the same `many_targets.py` targets."""
    return [
        Contender(
            "plexus-aggregator", "plexus-aggregator", "this tree",
            (str(AGGREGATOR_EXE), "--config", "{config}", "--host", HOST, "--port", "{port}", "--log-level",
             "warning"),
            config=_plexus_targets_config, config_suffix=".yaml", plexus=True,
        ),
        Contender(
            "fastmcp", "FastMCP proxy", versions["fastmcp"], FASTMCP_ARGV, env=FASTMCP_ENV,
            config=_fastmcp_targets_config,
        ),
    ]  # fmt: skip


def command_line(contender: Contender) -> str:
    """The contender's command as the docs show it: paths relative to the repository, this interpreter as `python`."""
    parts = []
    for part in contender.argv:
        for path, short in ((sys.executable, "python"), (f"{REPO}/", ""), ("{port}", "PORT"), ("{config}", "CONFIG")):
            part = part.replace(path, short)
        parts.append(part)
    env = " ".join(f"{name}={value.replace(f'{REPO}/', '')}" for name, value in contender.env.items())
    return " ".join(filter(None, [env, shlex.join(parts)]))


def start(procs: Processes, contender: Contender, workdir: Path, targets: tuple[int, int] = (0, 0)) -> Server:
    """Spawn a contender on a free loopback port; `targets` is (many_targets port, count) for its config."""
    port = free_port()
    config = ""
    if contender.config is not None:
        path = workdir / f"{contender.key}-{port}{contender.config_suffix}"
        path.write_text(contender.config(*targets))
        config = str(path)
    argv = [part.replace("{port}", str(port)).replace("{config}", config) for part in contender.argv]
    log = tempfile.TemporaryFile()
    proc = procs.spawn(argv, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **contender.env})
    return Server(contender.label, proc, port, log, ("POST", "/mcp", orjson.dumps(INITIALIZE)))


def stop(procs: Processes, server: Server) -> None:
    """Stop the server, then whatever it left in its process group (servers it started per session)."""
    server.stop(procs)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(server.proc.pid, signal.SIGKILL)


async def _first_answer(server: Server, deadline: float, check: Callable[[McpSession], Awaitable[None]]) -> None:
    """Open a session and run `check` in it, again every POLL_INTERVAL until it passes or the deadline is reached.

    Any failure is retried: a contender may accept connections before it can answer, or answer before its upstream
    is up.
    """
    while True:
        server.check_alive()
        session = McpSession(server.url, HANDSHAKE, PROBE_TIMEOUT)
        try:
            await session.open()
            await check(session)
            return
        except (RequestFailed, RuntimeError) as exc:
            if time.perf_counter() > deadline:
                raise RuntimeError(f"{server.name} not ready within {READY_TIMEOUT:g} s: {exc}") from exc
        finally:
            await session.close()
        await asyncio.sleep(POLL_INTERVAL)


def wait_serving(server: Server, expected_tools: int = 0) -> float:
    """Seconds from now until the contender answers a verified echo call (or lists `expected_tools` tools)."""
    started = time.perf_counter()

    async def verify(session: McpSession) -> None:
        if expected_tools:
            names = await session.list_tools()
            if len(set(names)) != expected_tools:
                raise RuntimeError(f"{server.name} listed {len(set(names))} tools, expected {expected_tools}")
        else:
            await session.call("echo", "ready?")

    asyncio.run(_first_answer(server, started + READY_TIMEOUT, verify))
    return time.perf_counter() - started


def tree(pid: int) -> list[int]:
    """The process and all its descendants."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                ppid = int((entry / "stat").read_bytes().rsplit(b")", 1)[1].split()[1])
                parents.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo += parents.get(current, [])
    return found


def _status_kb(pid: int, key: str) -> int:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def memory(server: Server) -> dict[str, float]:
    """Peak and current RSS of the server process, current RSS of its whole tree (MB), and the tree's size."""
    pids = tree(server.proc.pid)
    return {
        "vm_hwm_mb": _status_kb(server.proc.pid, "VmHWM") / 1024,
        "vm_rss_mb": _status_kb(server.proc.pid, "VmRSS") / 1024,
        "tree_rss_mb": sum(_status_kb(pid, "VmRSS") for pid in pids) / 1024,
        "processes": len(pids),
    }


def _listening(table: str) -> dict[str, str]:
    """Socket inode -> local address of every listening TCP socket in /proc/net/tcp or tcp6."""
    sockets = {}
    for line in Path(f"/proc/net/{table}").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[3] == "0A":
            raw = bytes.fromhex(fields[1].split(":")[0])
            # /proc shows the address as 32-bit words in host (little-endian) order.
            address = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
            sockets[fields[9]] = str(ipaddress.ip_address(address))
    return sockets


def check_loopback(server: Server) -> None:
    """Fail unless every socket the contender's process tree listens on is bound to a loopback address."""
    listening = {**_listening("tcp"), **_listening("tcp6")}
    for pid in tree(server.proc.pid):
        with contextlib.suppress(OSError):
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                with contextlib.suppress(OSError):
                    target = os.readlink(fd)
                    inode = target[len("socket:[") : -1] if target.startswith("socket:[") else ""
                    address = listening.get(inode)
                    if address is not None and not _is_loopback(address):
                        raise RuntimeError(f"{server.name} (pid {pid}) listens on {address}, not on loopback")


def _is_loopback(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    mapped = ip.ipv4_mapped if isinstance(ip, ipaddress.IPv6Address) else None
    return ip.is_loopback or (mapped is not None and mapped.is_loopback)
