"""Shared output for benchmarks: a rich table on stdout and JSON under benchmarks/results/."""
from __future__ import annotations

import json
import os
import platform
import subprocess
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

# elsewhere on a machine whose files are fetched from one folder (benchmarks/mfu_offline.sh)
RESULTS = Path(os.environ.get("LCLAB_BENCH_RESULTS") or Path(__file__).parent / "results")


def machine() -> dict:
    """Where a result came from. LCLAB_BENCH_COMMIT names the commit where the tree is a copy whose git HEAD is not
    the code that ran (a GPU machine sent a copy of the working tree)."""
    commit = os.environ.get("LCLAB_BENCH_COMMIT") or subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=Path(__file__).parent).stdout.strip()
    return {"host": platform.node(), "cpu_threads": torch.get_num_threads(), "torch": torch.__version__,
            "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None, "commit": commit}


def report(name: str, columns: list[str], rows: list[list], extra: dict | None = None) -> Path:
    table = Table(title=name)
    for c in columns:
        table.add_column(c, justify="right")
    for row in rows:
        table.add_row(*(f"{v:.4g}" if isinstance(v, float) else str(v) for v in row))
    Console().print(table)
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"{name}.json"
    payload = {"machine": machine(), "columns": columns, "rows": rows, **(extra or {})}
    out.write_text(json.dumps(payload, indent=1, default=lambda o: o.item() if hasattr(o, "item") else str(o)))  # numpy scalars
    print(f"wrote {out}")
    return out
