"""The folders show the architecture: each package imports only what its layer may."""
import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
FORBIDDEN = {
    "models": {"trials", "search_space", "slurm", "analysis", "lclab", "lightning", "pytorch_lightning", "optuna",
               "submitit", "torch.distributed"},
    "trials": {"search_space", "slurm", "analysis", "lclab"},
    "search_space": {"slurm", "analysis", "lclab"},
    "slurm": {"analysis", "lclab"},
    # analysis reads the trial database (trials.db) and run artifacts, never the machinery that made them
    "analysis": {"search_space", "slurm", "lclab", "lightning", "submitit", "torch"},
}


def imported_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_imports_respect_the_layering(package):
    for path in (ROOT / package).rglob("*.py"):
        for name in imported_modules(path):
            for banned in FORBIDDEN[package]:
                assert not (name == banned or name.startswith(banned + ".")), f"{path.relative_to(ROOT)} imports {name}"
