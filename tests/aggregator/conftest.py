"""Running an aggregator in tests, and watching its targets."""

from __future__ import annotations

import contextlib
import sys
import time
from pathlib import Path
from typing import Any

import httpx2

from tests.conftest import RunningBridge, run_server

STARTUP = 60.0
"""Seconds for the aggregator and its targets to come up."""


def run_aggregator(*args: str) -> contextlib.AbstractContextManager[RunningBridge]:
    """Run `python -m aggregator ARGS` on a free loopback port."""
    return run_server(lambda port: [sys.executable, "-m", "aggregator", *args, "--port", str(port)])


def targets(aggregator: RunningBridge) -> dict[str, dict[str, Any]]:
    document = httpx2.get(aggregator.url + "/targets", timeout=5).json()
    return {target["name"]: target for target in document["targets"]}


def wait_for(aggregator: RunningBridge, **statuses: str) -> None:
    """Poll /targets until each named target has the given status."""
    deadline = time.monotonic() + STARTUP
    while True:
        current = targets(aggregator)
        if all(current.get(name, {}).get("status") == status for name, status in statuses.items()):
            return
        assert time.monotonic() < deadline, f"targets not {statuses}: {current}"
        time.sleep(0.05)


def write_config(path: Path, entries: dict[str, str], **top: Any) -> None:
    lines = [f"{key}: {value}" for key, value in top.items()] + ["targets:"]
    lines += [f"  - name: {name}\n    url: {url}" for name, url in entries.items()]
    path.write_text("\n".join(lines) + "\n")
