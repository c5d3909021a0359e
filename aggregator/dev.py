"""`plexus-aggregator dev FILE`: the cluster's topology on one machine.

Config entries with `stdio:` or `openapi:` instead of `url:` get a `plexus-bridge` subprocess each, on a free
loopback port, exactly as a bridge would run beside the server in a pod; the aggregator then reaches them over
HTTP like any other target. The bridges live as long as their entries: an edit that removes or changes one stops
it, and stopping the aggregator stops them all; if it is killed outright, Linux tells each bridge to stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import dataclasses
import logging
import signal
import socket
import sys
from collections.abc import Mapping
from typing import Any, Final

from aggregator.config import AggregatorConfig
from aggregator.discovery import Publish, Target
from aggregator.discovery.static import StaticSource
from bridge.http1 import ConnectionPool, HTTPError

__all__ = ["LaunchingSource"]

logger = logging.getLogger(__name__)

BRIDGE_READY_TIMEOUT: Final = 60.0
"""Seconds a launched bridge has to turn ready (npx may download its server first)."""

READY_POLL: Final = 0.1
"""Seconds between readiness checks of a launched bridge."""

PR_SET_PDEATHSIG: Final = 1
"""prctl(2) option: the signal a process gets when its parent dies (Linux)."""
STOP_GRACE: Final = 10.0
"""Seconds a launched bridge has to drain and exit after SIGTERM before it is killed."""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclasses.dataclass
class _Bridge:
    launch: Mapping[str, Any]
    process: asyncio.subprocess.Process
    url: str


class LaunchingSource:
    """A static source whose `stdio`/`openapi` entries are served by bridges this process starts."""

    def __init__(self, static: StaticSource) -> None:
        self._static = static
        self._bridges: dict[str, _Bridge] = {}

    @property
    def config(self) -> AggregatorConfig:
        return self._static.config

    async def run(self, publish: Publish) -> None:
        queue: asyncio.Queue[Mapping[str, Target]] = asyncio.Queue()
        static = asyncio.create_task(self._static.run(queue.put_nowait))
        try:
            while True:
                targets = await queue.get()
                publish(await self._launch(targets))
        finally:
            static.cancel()
            for name in list(self._bridges):
                await self._stop(name)

    async def _launch(self, targets: Mapping[str, Target]) -> dict[str, Target]:
        for name in list(self._bridges):
            target = targets.get(name)
            if target is None or target.launch != self._bridges[name].launch:
                await self._stop(name)
        new = [name for name, target in targets.items() if target.launch is not None and name not in self._bridges]
        # Started together: each bridge's own start (and its server's) overlaps the others'.
        started = await asyncio.gather(*(self._start(name, targets[name].launch or {}) for name in new))
        for name, bridge in zip(new, started, strict=True):
            if bridge is not None:
                self._bridges[name] = bridge
        launched: dict[str, Target] = {}
        for name, target in targets.items():
            if target.launch is None:
                launched[name] = target
            elif name in self._bridges:
                launched[name] = dataclasses.replace(target, url=self._bridges[name].url)
        return launched

    async def _start(self, name: str, launch: Mapping[str, Any]) -> _Bridge | None:
        port = _free_port()
        argv = [sys.executable, "-m", "bridge"]
        if "stdio" in launch:
            argv += ["stdio", "--port", str(port), "--", *launch["stdio"]]
        else:
            spec = launch["openapi"]
            argv += ["openapi", "--port", str(port), "--spec", str(spec["spec"])]
            if spec.get("base_url"):
                argv += ["--base-url", str(spec["base_url"])]
        process = await asyncio.create_subprocess_exec(*argv, preexec_fn=_stop_with_parent)
        url = f"http://127.0.0.1:{port}"
        logger.info("Started a bridge for %r on %s (pid %d)", name, url, process.pid)
        if not await self._ready(url, process):
            logger.error(
                "The bridge for %r did not become ready within %.0f s; leaving it out.", name, BRIDGE_READY_TIMEOUT
            )
            process.terminate()
            await process.wait()
            return None
        return _Bridge(launch, process, url + "/mcp")

    async def _ready(self, url: str, process: asyncio.subprocess.Process) -> bool:
        pool = ConnectionPool(url)
        try:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(BRIDGE_READY_TIMEOUT):
                    while process.returncode is None:
                        with contextlib.suppress(HTTPError):
                            response = await pool.request("GET", "/readyz", b"")
                            response.release()
                            if response.status == 200:
                                return True
                        await asyncio.sleep(READY_POLL)
            return False
        finally:
            pool.close()

    async def _stop(self, name: str) -> None:
        bridge = self._bridges.pop(name)
        if bridge.process.returncode is None:
            bridge.process.terminate()
            try:
                await asyncio.wait_for(bridge.process.wait(), STOP_GRACE)
            except TimeoutError:
                bridge.process.kill()
                await bridge.process.wait()
        logger.info("Stopped the bridge for %r", name)


def _stop_with_parent() -> None:
    """Run in each bridge before it starts: Linux sends it SIGTERM when the aggregator dies, even of SIGKILL, so
    no bridge (and no server behind it) outlives a dev session. Elsewhere this does nothing."""
    if sys.platform == "linux":
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
