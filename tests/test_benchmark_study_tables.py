"""study_tables.py keeps what the report concluded about fidelity and the literature, from a planted lab."""
import json
import subprocess
import sys
from pathlib import Path

from lclab.testing import planted

ROOT = Path(__file__).parents[1]
LEVELS = {"pooling": ["mean", "attention"], "ratio": [4, 8, 16]}


def test_the_fidelity_table_and_each_configuration_are_written(tmp_path):
    url = f"sqlite:///{tmp_path}/lab.db"
    planted.write_study(url, "text", sigma=0.002, seed_sigma=0.3, seeds=5, levels=LEVELS, data_source="embedded")
    planted.write_study(url, "proxy", sigma=0.002, seeds=5, rng_seed=1, levels=LEVELS, data_source="synthetic",
                        fidelity_of="text")
    out = tmp_path / "tables"
    subprocess.run([sys.executable, "benchmarks/study_tables.py", "--lab", url, "--studies", "proxy", "--name", str(out)],
                   cwd=ROOT, check=True, capture_output=True)
    d = json.loads(out.with_suffix(".json").read_text())
    rows = {r[1]: r for r in d["rows"]}
    assert set(rows) == {"all", "pooling", "ratio"} and rows["all"][2] == "strong" and rows["all"][3] == 6
    assert "jointly (5 shared seeds)" in rows["all"][7]
    proxy = d["studies"]["proxy"]
    assert len(proxy["configurations"]) == 6 and proxy["trial_commits"] == ["planted"]
    assert {x["finding"] for x in proxy["literature"]} and len(d["literature_rows"]) == len(proxy["literature"])
