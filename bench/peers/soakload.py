"""The long-run load: many sessions held open, each calling at a steady pace, in a load-generator process of its own.

loadgen's sessions call back to back; at 1,000 sessions that is an overload test in which any server slower than
1,000 calls per CALL_TIMEOUT fails every call, and throughput is already measured at 16 and 64 sessions. Here the
question is whether a contender holds many connected clients: sessions arrive SETUP_CONCURRENCY at a time (not all
in one instant) within a set-up deadline, each calling once every `interval` seconds from a random phase as soon as
it is up; the window starts when all are up. Calls are verified as everywhere (`bench_common.check_reply`) and
bounded by loadgen's watchdog.

    run.py --role soak --config '{"url": ..., "sessions": 1000, "seconds": 60, "interval": 2, "watch": {...}}'
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import secrets
import sys
import time
from dataclasses import dataclass
from typing import Any, Final

import orjson
from bench_common import (
    FAILURE_SAMPLES,
    INITIALIZE,
    INITIALIZED,
    WARMUP_SECONDS,
    call_body,
    check_reply,
    cpu_seconds,
    latency_summary,
)
from eraclient import HandshakeClient
from loadgen import SessionResult, watchdog

SETUP_CONCURRENCY: Final = 50
"""Sessions being set up at once: clients arrive over time; a thousand initializes in one instant tests something
else (and makes a peer that spawns a server per session start a thousand at once)."""
SETUP_DEADLINE: Final = 20.0
"""Seconds for every session to be set up; one not set up by then counts as an error and makes no calls."""
END_GRACE: Final = 1.0
"""Seconds calls still in flight when the window ends may take before they are dropped (uncounted either way)."""
DELETE_GRACE: Final = 2.0
"""Seconds for ending the sessions: a courtesy to the server, not measured."""


async def _set_up(client: HandshakeClient, deadline: float, result: SessionResult) -> bool:
    if time.perf_counter() > deadline:
        result.fail(f"session not set up within {SETUP_DEADLINE:g} s")
        return False
    try:
        status, body, session_id = await client.post(orjson.dumps(INITIALIZE))
        if status != 200 or session_id is None:
            result.fail(f"initialize: HTTP {status}, session id {session_id!r}: {body[:200]!r}")
            return False
        client.use_session(session_id)
        status, body, _ = await client.post(INITIALIZED)
        if status not in (200, 202, 204):
            result.fail(f"notifications/initialized: HTTP {status}: {body[:200]!r}")
            return False
    except client.errors as exc:
        result.fail(f"session setup: {type(exc).__name__}: {exc}")
        return False
    return True


@dataclass
class Span:
    """The measured window, known once every session has been set up (until then both ends are infinite)."""

    start: float = math.inf
    end: float = math.inf


async def _paced_calls(
    index: int, client: HandshakeClient, nonce: str, span: Span, interval: float, result: SessionResult
) -> None:
    """Calls from a random phase, one every `interval` s (a late call delays the next), until the window ends.

    A session starts calling as soon as it is set up, so its connection never idles past the 5 s keep-alive timeout
    of uvicorn and Node, as it would while the other sessions are set up; only calls inside the window count.
    """
    planned = time.perf_counter() + random.uniform(0, interval)
    request_id = 0
    while planned < span.end:
        await asyncio.sleep(max(0.0, planned - time.perf_counter()))
        request_id += 1
        message = f"s{index}-c{request_id}-{nonce}"
        sent = time.perf_counter()
        try:
            status, body, _ = await client.post(call_body(request_id, message))
        except client.errors as exc:
            result.fail(f"session {index} call {request_id}: {type(exc).__name__}: {exc}")
        else:
            done = time.perf_counter()
            result.calls += 1
            problem = f"HTTP {status}: {body[:200]!r}" if status != 200 else check_reply(body, request_id, message)
            if problem is not None:
                result.fail(f"session {index} call {request_id}: {problem}")
            elif span.start <= sent and done <= span.end:
                result.latency.append(done - sent)
        planned = max(planned + interval, time.perf_counter())


async def run_soak(config: dict[str, Any]) -> dict[str, Any]:
    sessions: int = config["sessions"]
    seconds: float = config["seconds"]
    interval: float = config["interval"]
    nonce = secrets.token_hex(4)
    clients = [HandshakeClient(config["url"]) for _ in range(sessions)]
    results = [SessionResult() for _ in range(sessions)]
    guard = asyncio.create_task(watchdog(clients))
    gate = asyncio.Semaphore(SETUP_CONCURRENCY)
    span = Span()
    setup_started = time.perf_counter()
    deadline = setup_started + SETUP_DEADLINE

    async def set_up(client: HandshakeClient, result: SessionResult) -> bool:
        async with gate:
            return await _set_up(client, deadline, result)

    async def session(index: int, client: HandshakeClient, result: SessionResult, set_up: asyncio.Task[bool]) -> None:
        if await set_up:
            await _paced_calls(index, client, nonce, span, interval, result)

    setups = [asyncio.create_task(set_up(c, r)) for c, r in zip(clients, results, strict=True)]
    tasks = [asyncio.create_task(session(i, clients[i], results[i], setups[i])) for i in range(sessions)]
    ready = await asyncio.gather(*setups)
    setup_s = time.perf_counter() - setup_started
    span.start = time.perf_counter() + WARMUP_SECONDS
    span.end = span.start + seconds
    server_cpu = cpu_seconds(config["watch"]["server"])
    await asyncio.wait(tasks, timeout=span.end + END_GRACE - time.perf_counter())
    server_cpu = cpu_seconds(config["watch"]["server"]) - server_cpu
    elapsed = time.perf_counter() - span.start
    for task in tasks:
        task.cancel()
    guard.cancel()
    ending = asyncio.gather(*(c.delete() for c, ok in zip(clients, ready, strict=True) if ok), return_exceptions=True)
    await asyncio.wait([ending], timeout=DELETE_GRACE)
    ending.cancel()
    for client in clients:
        await client.close()
    latencies = [lat for r in results for lat in r.latency]
    return {
        "sessions": sessions,
        "sessions_set_up": sum(ready),
        "setup_s": setup_s,
        "interval_s": interval,
        "offered_calls_per_s": sum(ready) / interval,
        "calls_in_window": len(latencies),
        "calls_per_s": len(latencies) / seconds,
        **latency_summary(latencies),
        "server_cpu": server_cpu / elapsed,
        "failures": sum(r.failures for r in results),
        "failure_samples": [s for r in results for s in r.samples][:FAILURE_SAMPLES],
    }


def soak_main(config_json: str) -> None:
    import uvloop

    result = uvloop.run(run_soak(json.loads(config_json)))
    sys.stdout.write(json.dumps(result) + "\n")
