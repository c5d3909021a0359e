"""Supervision seen from outside: crash loops, SIGTERM draining, stderr in the log."""

from __future__ import annotations

import signal
import subprocess
import threading

import anyio
import httpx2
import pytest

from tests.bridge.wire import WireSession
from tests.conftest import ECHO_SERVER, run_bridge

pytestmark = pytest.mark.anyio


async def test_a_crash_loop_stops_restarts_and_says_why() -> None:
    """A server that dies on every call is restarted --max-restarts times, then the bridge gives up visibly."""
    with run_bridge("--max-restarts", "2", "--", *ECHO_SERVER, "--crash-after", "1") as bridge:
        async with httpx2.AsyncClient(timeout=10) as client:
            session = WireSession(client, bridge.mcp)
            await session.initialize()
            with anyio.fail_after(30):
                while True:
                    reply = await session.call(1, "echo", {"message": "boom"})
                    if "stopped restarting" in reply.get("error", {}).get("message", ""):
                        break
                    await anyio.sleep(0.05)
            assert "exited with code 3" in reply["error"]["message"]
            ready = await client.get(bridge.url + "/readyz")
            assert ready.status_code == 503 and "stopped restarting" in ready.json()["status"]
            live = await client.get(bridge.url + "/livez")
            assert live.status_code == 503


async def test_sigterm_lets_calls_in_flight_finish_then_stops_the_server() -> None:
    """SIGTERM during a slow call: the call still gets its answer, then bridge and server exit."""
    with run_bridge("--", *ECHO_SERVER, "--slow-ms", "800") as bridge:
        async with httpx2.AsyncClient(timeout=10) as client:
            session = WireSession(client, bridge.mcp)
            await session.initialize()
            pid = int((await session.call(1, "pid", {}))["result"]["content"][0]["text"])
            threading.Timer(0.3, bridge.process.send_signal, (signal.SIGTERM,)).start()
            with anyio.fail_after(10):
                reply = await session.call(2, "echo", {"message": "finish me"})
            assert reply["result"]["content"][0]["text"] == "finish me"
        # uvicorn re-raises the signal once it has shut down gracefully, so the exit status is SIGTERM's.
        assert bridge.process.wait(timeout=10) in (0, -signal.SIGTERM)
        exited = subprocess.run(["kill", "-0", str(pid)], capture_output=True)
        assert exited.returncode != 0, "the server must be stopped with the bridge"


async def test_the_servers_stderr_reaches_the_bridge_log() -> None:
    """Each stderr line of the server appears in the bridge's log, tagged with its pid."""
    script = "import sys; print('hello from the server', file=sys.stderr, flush=True); sys.exit(0)"
    with run_bridge("--max-restarts", "0", "--", ECHO_SERVER[0], "-c", script, wait=False) as bridge:
        with anyio.fail_after(10):
            while True:
                async with httpx2.AsyncClient() as client:
                    try:
                        if (await client.get(bridge.url + "/livez")).status_code == 503:
                            break
                    except httpx2.TransportError:
                        pass
                await anyio.sleep(0.05)
        bridge.process.send_signal(signal.SIGTERM)
        bridge.process.wait(timeout=10)
        assert "hello from the server" in bridge.log()
