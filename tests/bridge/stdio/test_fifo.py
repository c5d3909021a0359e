"""The FIFO sidecar: a server in "another container" reached through named pipes, and its restart survived."""

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path

import anyio
import httpx2
import pytest

from tests.bridge.wire import WireSession
from tests.conftest import ECHO_SERVER, run_bridge

pytestmark = pytest.mark.anyio


def server_container(directory: Path) -> subprocess.Popen[bytes]:
    """Start the server exactly as the k8s example wraps it: sh -c 'exec SERVER < DIR/in > DIR/out'."""
    command = f"exec {shlex.join(ECHO_SERVER)} < {directory}/in > {directory}/out"
    return subprocess.Popen(["sh", "-c", command])


async def test_fifo_mode_serves_and_recovers_when_the_server_container_restarts(tmp_path: Path) -> None:
    """Calls work through the FIFOs; after the server is killed and started again, calls work again."""
    with run_bridge("--fifo", str(tmp_path), wait=False) as bridge:
        with anyio.fail_after(10):
            while not (tmp_path / "in").exists() or not (tmp_path / "out").exists():
                await anyio.sleep(0.02)
        assert not bridge.ready(), "no server container yet: not ready"
        first = server_container(tmp_path)
        try:
            bridge.wait_ready()
            async with httpx2.AsyncClient(timeout=10) as client:
                session = WireSession(client, bridge.mcp)
                await session.initialize()
                pid = (await session.call(1, "pid", {}))["result"]["content"][0]["text"]
                first.kill()
                first.wait()
                with anyio.fail_after(10):
                    while bridge.ready():  # the bridge lets go of the old pipes, as before a kubelet restart
                        await anyio.sleep(0.01)
                second = server_container(tmp_path)
                try:
                    with anyio.fail_after(20):
                        while True:
                            reply = await session.call(2, "pid", {})
                            if "result" in reply and reply["result"]["content"][0]["text"] != pid:
                                break
                            await anyio.sleep(0.1)
                    echoed = await session.call(3, "echo", {"message": "through the pipes"})
                    assert echoed["result"]["content"][0]["text"] == "through the pipes"
                finally:
                    second.kill()
                    second.wait()
        finally:
            first.kill()
            first.wait()
