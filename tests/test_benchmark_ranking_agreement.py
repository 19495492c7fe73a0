"""ranking_agreement.py tells a proxy that orders designs like the target from one that reverses them, and leaves
runs that did not learn out, from planted measurability results."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).parents[1]
DESIGNS = ["tiny", "model.pooling=last", "model.pooling=concat"]


def _write(path: Path, means: dict[str, float], overrides: list[str], unlearned: tuple = ()) -> str:
    rng = np.random.default_rng(len(str(path)))
    runs = []
    for seed in range(6):
        shift = rng.normal(0, 0.05)  # a seed moves every design alike
        for design, mean in means.items():
            learned = (design, seed) not in unlearned
            acc = mean + shift + rng.normal(0, 0.005) if learned else 0.016
            runs.append({"task": "reconstruction", "design": design, "seed": seed, "acc": acc, "learned": learned})
    path.write_text(json.dumps({"runs": runs, "overrides": overrides, "threads": 0}))
    return str(path)


def _run(tmp_path, *args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "benchmarks/ranking_agreement.py", *args, "--name", str(tmp_path / "out")],
                          cwd=ROOT, capture_output=True, text=True)


def test_a_proxy_that_orders_like_the_target_agrees_and_a_reversed_one_does_not(tmp_path):
    target = _write(tmp_path / "long.json", dict(zip(DESIGNS, [0.8, 0.9, 1.0])), ["train.steps=1600"])
    # the reversed proxy's one failed seed, were it averaged in, would not change its ordering; left out, it must
    # also leave the pair count one short
    alike = _write(tmp_path / "alike.json", dict(zip(DESIGNS, [0.2, 0.25, 0.3])), [])
    reversed_ = _write(tmp_path / "rev.json", dict(zip(DESIGNS, [0.3, 0.25, 0.2])), ["x=1"],
                       unlearned={("model.pooling=concat", 3)})
    done = _run(tmp_path, "--target", target, "--proxy", f"alike={alike}", "--proxy", f"reversed={reversed_}")
    assert done.returncode == 0, done.stderr
    summary = {r[0]: r for r in json.loads((tmp_path / "out.json").read_text())["rows"]}
    assert summary["alike"][5] == "3/3" and summary["alike"][6] == "3/3"
    assert summary["reversed"][5] == "0/3" and summary["reversed"][6] == "0/3"
    assert summary["alike"][4].startswith("1.00 [1.00,") and summary["reversed"][4].startswith("0.00 [0.00,")
    pairs = json.loads((tmp_path / "out_pairs.json").read_text())["rows"]
    assert all(row[2] for row in pairs)  # 6 seeds at 10x the seed noise: the target settles every pair
    assert {row[0]: row[5].endswith("(5)") for row in pairs}["concat − tiny"]


def test_files_of_different_recipes_cannot_make_one_side(tmp_path):
    a = _write(tmp_path / "a.json", dict(zip(DESIGNS, [0.2, 0.25, 0.3])), [])
    b = _write(tmp_path / "b.json", dict(zip(DESIGNS, [0.2, 0.25, 0.3])), ["train.embedding_skip_frac=0.2"])
    done = _run(tmp_path, "--target", a, "--proxy", f"mixed={a},{b}")
    assert done.returncode != 0 and "different (overrides, threads)" in done.stderr


def test_a_pair_without_a_seed_both_designs_learned_on_is_left_out_of_the_counts(tmp_path):
    designs = dict(zip(DESIGNS, [0.8, 0.9, 1.0]))
    # the target's tiny config learned on seeds 0-3 only and concat on 4-5 only: that pair has no matched seed
    gaps = {("tiny", 4), ("tiny", 5)} | {("model.pooling=concat", s) for s in range(4)}
    target = _write(tmp_path / "long.json", designs, ["train.steps=1600"], unlearned=gaps)
    proxy = _write(tmp_path / "short.json", designs, [])
    done = _run(tmp_path, "--target", target, "--proxy", f"short={proxy}")
    assert done.returncode == 0, done.stderr
    pairs = {r[0]: r for r in json.loads((tmp_path / "out_pairs.json").read_text())["rows"]}
    assert pairs["concat − tiny"][2] is False and pairs["concat − tiny"][4] is None
    summary = json.loads((tmp_path / "out.json").read_text())["rows"][0]
    assert summary[5] == "2/2"  # the two pairs with matched seeds, not three
