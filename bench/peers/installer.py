"""Installs the peers, pinned, where the repository ignores them: each PyPI peer in a venv of its own, the npm peers
from `package-lock.json`.

The PyPI peers get their own venvs (never the project's `.venv`) because their pins clash with the project's and with
each other's. What is already installed at the pinned version is left alone, so a second run starts at once.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Final

PEERS_DIR: Final = Path(__file__).resolve().parent
VENVS: Final = PEERS_DIR / "venvs"
NODE_BIN: Final = PEERS_DIR / "node_modules" / ".bin"
OVERRIDES: Final = PEERS_DIR / "overrides.txt"


@dataclass(frozen=True)
class PythonPeer:
    name: str
    """The contender key, and the venv's directory under `venvs/`."""
    package: str
    version: str


PYTHON_PEERS: Final = (PythonPeer("mcp-proxy-pypi", "mcp-proxy", "0.13.0"), PythonPeer("fastmcp", "fastmcp", "4.1.6"))
NPM_PEERS: Final = {"supergateway": "supergateway", "mcp-proxy-npm": "mcp-proxy"}
"""Contender key -> npm package; the versions are pinned in package.json and package-lock.json."""


def _run(argv: list[str]) -> None:
    print("  $ " + " ".join(argv), file=sys.stderr)
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)


def venv_dir(peer: PythonPeer) -> Path:
    return VENVS / peer.package


def venv_bin(key: str) -> Path:
    """The `bin/` of the venv holding the PyPI peer with this contender key."""
    return venv_dir(next(peer for peer in PYTHON_PEERS if peer.name == key)) / "bin"


def _python_installed(peer: PythonPeer) -> bool:
    dist = peer.package.replace("-", "_")
    return any(venv_dir(peer).glob(f"lib/python*/site-packages/{dist}-{peer.version}.dist-info"))


def _npm_version(package: str) -> str | None:
    manifest = PEERS_DIR / "node_modules" / package / "package.json"
    if not manifest.exists():
        return None
    found: str = json.loads(manifest.read_text())["version"]
    return found


def _npm_pins() -> dict[str, str]:
    dependencies: dict[str, str] = json.loads((PEERS_DIR / "package.json").read_text())["dependencies"]
    return dependencies


def ensure_installed() -> dict[str, str]:
    """Install what is missing or at another version; return each contender's version (the SDK's from this venv)."""
    started = time.perf_counter()
    for peer in PYTHON_PEERS:
        if not _python_installed(peer):
            print(f"installing {peer.package}=={peer.version} into {venv_dir(peer)}", file=sys.stderr)
            _run(["uv", "venv", "--quiet", "--allow-existing", "--python", sys.executable, str(venv_dir(peer))])
            python = str(venv_dir(peer) / "bin" / "python")
            _run(["uv", "pip", "install", "--quiet", "--python", python, "--override", str(OVERRIDES),
                  f"{peer.package}=={peer.version}"])  # fmt: skip
            if not _python_installed(peer):
                raise RuntimeError(f"{peer.package}=={peer.version} is still missing from {venv_dir(peer)}")
    pins = _npm_pins()
    if any(_npm_version(package) != pins[package] for package in NPM_PEERS.values()):
        print(f"installing {', '.join(f'{p}@{v}' for p, v in pins.items())} into {PEERS_DIR / 'node_modules'}",
              file=sys.stderr)  # fmt: skip
        _run(["npm", "ci", "--prefix", str(PEERS_DIR), "--ignore-scripts", "--no-audit", "--no-fund"])
    versions = {peer.name: peer.version for peer in PYTHON_PEERS}
    for key, package in NPM_PEERS.items():
        installed = _npm_version(package)
        if installed != pins[package]:
            raise RuntimeError(f"npm {package} is at {installed}, package.json pins {pins[package]}")
        versions[key] = installed
    versions["sdk"] = version("mcp")
    print(f"peers ready in {time.perf_counter() - started:.1f} s: {versions}", file=sys.stderr)
    return versions
