"""Plexus side by side with the tools users would pick instead: one command installs the peers and runs every scenario.

    .venv/bin/python bench/peers/run.py [--quick] [--soak-seconds N] [--out FILE] [--doc FILE]

Installs the pinned peers where missing (PyPI ones into venvs under bench/peers/venvs/, npm ones with `npm ci
--prefix bench/peers`), runs every scenario (about 14 minutes; `--quick` about 2), and writes the JSON results to
bench/results/ and the tables to docs/benchmarks.md. See bench/README.md, "Peers".
"""

import sys
from pathlib import Path

sys.path.insert(1, str(Path(__file__).resolve().parent.parent))  # bench/: loadgen, contenders, bench_common, ...

from suite import main

if __name__ == "__main__":
    sys.exit(main())
