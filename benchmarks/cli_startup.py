"""Start-up cost of the read-only commands (`lclab studies`, `lclab trials`, `lclab report`) and of `lclab --help`:
wall time of the real CLI as a subprocess (median of --repeat runs) and whether torch / Lightning got loaded.

    python benchmarks/cli_startup.py --label after [--repeat 5]

Rows of earlier labels in benchmarks/results/cli_startup.json are kept, so a before/after pair sits in one file."""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import optuna

from _common import RESULTS, report
from lclab.testing import planted

optuna.logging.set_verbosity(optuna.logging.WARNING)
PROBE = ("import runpy, sys; sys.argv = ['lclab', *sys.argv[1:]]\n"
         "try:\n    runpy.run_module('lclab', run_name='__main__')\nexcept SystemExit:\n    pass\n"
         "print('LOADED', sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'lightning'}), file=sys.stderr)")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--label", required=True)
    ap.add_argument("--repeat", type=int, default=5)
    a = ap.parse_args()
    lclab = shutil.which("lclab")
    with tempfile.TemporaryDirectory() as tmp:
        planted.write_study(f"sqlite:///{tmp}/lab.db", "planted", seeds=2)
        commands = {"--help": ["--help"], "studies": ["studies", "--lab", tmp],
                    "trials": ["trials", "planted", "--lab", tmp, "--limit", "3"],
                    "report": ["report", "planted", "-o", f"{tmp}/report", "--lab", tmp]}
        rows = []
        for name, args in commands.items():
            times = []
            for _ in range(a.repeat):
                t0 = time.perf_counter()
                out = subprocess.run([lclab, *args], capture_output=True, text=True, env=os.environ)
                times.append(time.perf_counter() - t0)
                assert out.returncode == 0, out.stderr
            probe = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True)
            loaded = probe.stderr.strip().splitlines()[-1].removeprefix("LOADED ")
            rows.append([a.label, f"lclab {name}", statistics.median(times), loaded])
    old = RESULTS / "cli_startup.json"
    kept = [r for r in json.loads(old.read_text())["rows"] if r[0] != a.label] if old.exists() else []
    report("cli_startup", ["code", "command", "median s", "heavy modules loaded"], kept + rows, {"repeat": a.repeat})


if __name__ == "__main__":
    main()
