"""`plexus-aggregator`: not built yet (issue 4); the entry point exists so the console script installs."""

from __future__ import annotations

import sys

__all__ = ["main"]


def main() -> None:
    """Say plainly that the aggregator is not part of this release yet."""
    print("plexus-aggregator: not implemented yet; see the README for plexus-bridge.", file=sys.stderr)
    raise SystemExit(2)
