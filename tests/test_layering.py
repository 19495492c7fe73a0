"""The folders show the architecture: each package imports only what its layer may, and what a command actually
loads matches (the read-only commands never load torch or Lightning)."""
import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lclab.testing import planted

ROOT = Path(__file__).parents[1]
LAYERS = ("models", "trials", "search_space", "slurm", "analysis")
LEAVES = ("lclab.errors", "lclab.registry", "lclab.schema", "lclab.plugins", "lclab.lazy")  # every layer may import these
FORBIDDEN = {
    "models": {"lclab.trials", "lclab.search_space", "lclab.slurm", "lclab.analysis", "lclab.cli", "lightning",
               "pytorch_lightning", "optuna", "submitit", "torch.distributed"},
    "trials": {"lclab.search_space", "lclab.slurm", "lclab.analysis", "lclab.cli"},
    "search_space": {"lclab.slurm", "lclab.analysis", "lclab.cli"},
    "slurm": {"lclab.analysis", "lclab.cli"},
    # analysis reads the trial database (lclab.trials.db) and run artifacts, never the machinery that made them
    "analysis": {"lclab.search_space", "lclab.slurm", "lclab.cli", "lclab.models", "lightning", "submitit", "torch"},
}
UNPREFIXED = {*LAYERS, "tests"}  # the installed package never imports a bare `models` (nor the tests)


def imported_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def banned(name: str, prefixes: set[str]) -> bool:
    return any(name == b or name.startswith(b + ".") for b in prefixes)


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_imports_respect_the_layering(package):
    for path in (ROOT / package).rglob("*.py"):
        for name in imported_modules(path):
            assert not banned(name, FORBIDDEN[package] | UNPREFIXED), f"{path.relative_to(ROOT)} imports {name}"
    if package == "analysis":  # of trials, only the database
        for path in (ROOT / package).rglob("*.py"):
            for name in imported_modules(path):
                assert not name.startswith("lclab.trials") or name == "lclab.trials.db", f"{path.relative_to(ROOT)} imports {name}"


def test_leaf_modules_import_only_leaves():
    for leaf in LEAVES:
        path = ROOT / (leaf.replace(".", "/") + ".py")
        for name in imported_modules(path):
            assert not name.startswith("lclab") or name in LEAVES, f"{path.relative_to(ROOT)} imports {name}"


def test_benchmarks_do_not_import_the_tests():
    for path in (ROOT / "benchmarks").glob("*.py"):
        assert not any(banned(n, UNPREFIXED) for n in imported_modules(path)), path.name


PROBE = """
import runpy, sys
sys.argv = ["lclab", *sys.argv[1:]]
try:
    runpy.run_module("lclab", run_name="__main__")
except SystemExit as exit:
    assert not exit.code, exit.code
import lclab.analysis.report, lclab.analysis.load, lclab.trials.db, lclab.search_space.study  # what the commands use
heavy = sorted({m.split(".")[0] for m in sys.modules} & {"torch", "lightning", "submitit"})
bare = sorted({m.split(".")[0] for m in sys.modules} & {"models", "trials", "search_space", "slurm", "analysis"})
print("LOADED", heavy, bare)
"""


@pytest.mark.parametrize("command", ["studies", "trials", "report"])
def test_read_only_commands_load_neither_torch_nor_lightning(tmp_path, command):
    """Checked in a fresh interpreter, by what is in sys.modules after the command ran, not by reading imports."""
    planted.write_study(f"sqlite:///{tmp_path}/lab.db", "planted", seeds=2)
    args = {"studies": ["studies"], "trials": ["trials", "planted", "--limit", "2"],
            "report": ["report", "planted", "-o", str(tmp_path / "report")]}[command]
    # run from an unrelated folder: the repository's own folders must not be what gets imported
    out = subprocess.run([sys.executable, "-c", PROBE, *args, "--lab", str(tmp_path)], capture_output=True, text=True,
                         cwd=tmp_path, env={**os.environ, "PYTHONPATH": ""}, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "LOADED [] []", out.stdout[-500:]


REFUSED = """
import runpy, sys
sys.argv = ["lclab", *sys.argv[1:]]
try:
    runpy.run_module("lclab", run_name="__main__")
except SystemExit as exit:
    assert exit.code == 2, exit.code
import lclab.search_space.local  # what a local sweep's parent process runs
print("LIGHTNING", "lightning" in sys.modules)
"""


@pytest.mark.parametrize("command", ["train", "sweep"])
def test_a_refused_config_or_space_and_a_sweeps_parent_never_load_lightning(tmp_path, command):
    """Lightning takes ~5 s to import: a bad trial config or space is refused before it, and a local sweep's parent
    never loads it (its workers do, from their fork server)."""
    (tmp_path / "bad.yaml").write_text("model:\n  poolng: mean\n")
    bad = {"train": tmp_path / "bad.yaml", "sweep": ROOT / "tests/search_space/bad_spaces/bad_kind.yaml"}[command]
    out = subprocess.run([sys.executable, "-c", REFUSED, command, str(bad)], capture_output=True, text=True,
                         cwd=tmp_path, env={**os.environ, "PYTHONPATH": ""}, timeout=300)
    assert out.returncode == 0 and "Fix:" in out.stderr, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "LIGHTNING False", out.stdout[-500:]
