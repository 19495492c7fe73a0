"""Start-up cost of the read-only commands (`lclab studies`, `lclab trials`, `lclab report`) and of `lclab --help`,
this checkout against an earlier commit, in one run with the repeats interleaved: wall time of the real CLI as a
subprocess (median of --repeat runs) and which heavy modules it loaded.

    python benchmarks/cli_startup.py --before 31e2ad7 [--repeat 5]

The earlier commit runs from a temporary git worktree, on the same Python, the same packages and the same study."""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

import optuna

from _common import report
from lclab.testing import planted

optuna.logging.set_verbosity(optuna.logging.WARNING)
PROBE = ("import runpy, sys; sys.argv = ['lclab', *sys.argv[1:]]\n"
         "try:\n    runpy.run_module('lclab', run_name='__main__')\nexcept SystemExit:\n    pass\n"
         "print('LOADED', sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'lightning'}), file=sys.stderr)")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--before", required=True, help="the commit to compare with")
    ap.add_argument("--repeat", type=int, default=5)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        old = f"{tmp}/before"
        subprocess.run(["git", "worktree", "add", "-q", "--detach", old, a.before], check=True)
        try:
            planted.write_study(f"sqlite:///{tmp}/lab.db", "planted", seeds=2)
            commands = {"--help": ["--help"], "studies": ["studies", "--lab", tmp],
                        "trials": ["trials", "planted", "--lab", tmp, "--limit", "3"],
                        "report": ["report", "planted", "-o", f"{tmp}/report", "--lab", tmp]}
            # the old code imports its own top-level packages from its worktree (PYTHONPATH), the new one its install
            codes = {f"before ({a.before})": {**os.environ, "PYTHONPATH": old}, "after": {**os.environ, "PYTHONPATH": ""}}
            times = {(c, n): [] for c in codes for n in commands}
            for _ in range(a.repeat):
                for name, args in commands.items():
                    for code, env in codes.items():
                        t0 = time.perf_counter()
                        out = subprocess.run([sys.executable, "-m", "lclab", *args], capture_output=True, text=True,
                                             env=env, cwd=tmp)
                        times[code, name].append(time.perf_counter() - t0)
                        assert out.returncode == 0, out.stderr
            rows = []
            for name, args in commands.items():
                medians = {}
                for code, env in codes.items():
                    probe = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True, env=env,
                                           cwd=tmp)
                    loaded = probe.stderr.strip().splitlines()[-1].removeprefix("LOADED ")
                    medians[code] = statistics.median(times[code, name])
                    rows.append([code, f"lclab {name}", medians[code], loaded])
                rows[-1].append(medians[f"before ({a.before})"] / medians["after"])
                rows[-2].append("")
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", old], check=True)
    report("cli_startup", ["code", "command", "median s", "heavy modules loaded", "before / after"], rows,
           {"repeat": a.repeat, "before": a.before})


if __name__ == "__main__":
    main()
