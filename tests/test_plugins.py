"""A researcher's own parts, from a file outside lclab (tests/plugins/my_parts.py): swept by local workers and by
submitit workers, recorded with their origin and content hash, named in the report; and refused clearly when
broken, missing or taking a name already registered. Installed packages register through entry points."""
import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from lclab.search_space.local import run_sweep
from lclab.search_space.space import load_space
from lclab.testing import MINI_BASE, mini_space
from lclab.trials.db import load_frame, storage_url

ROOT = Path(__file__).parents[1]
PLUGIN = ROOT / "tests" / "plugins" / "my_parts.py"
AXES = {"pooling": {"values": ["mean", "softmax_gate"]}, "adapter": {"values": ["mlp", "linear"]}}


def lclab(*args, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", "lclab", *map(str, args)], capture_output=True, text=True, cwd=cwd,
                          env={**os.environ, "COLUMNS": "250"}, timeout=900)


def plugin_space(tmp_path: Path) -> Path:
    """The plugin named relative to the space, as a researcher names their own code. (The same file, not a copy: this
    test process may have loaded it already, and a copy would register its names a second time, which is refused.)"""
    return mini_space(tmp_path, axes=AXES, plugins=[os.path.relpath(PLUGIN, tmp_path)], seeds=[0], budget={"steps": 4})


def test_plugin_parts_sweep_on_local_workers_with_provenance_and_the_report_names_them(tmp_path):
    space = load_space(plugin_space(tmp_path))
    run_sweep(space, tmp_path / "lab", workers=2)  # spawned workers load the plugin from the space they read
    frame = load_frame(storage_url(None, tmp_path / "lab"), ["mini"])
    assert (frame.state == "COMPLETE").sum() == 4 and set(frame["param.pooling"]) == {"mean", "softmax_gate"}
    path = str(PLUGIN.resolve())
    assert frame[f"plugins.{path}"].nunique() == 1 and len(frame[f"plugins.{path}"].iloc[0]) == 16  # its sha256
    assert path in frame["parts.model.pooling=softmax_gate"].dropna().iloc[0]
    assert path in frame["parts.model.adapter.kind=linear"].dropna().iloc[0]
    r = lclab("report", "mini", "-o", tmp_path / "report", "--lab", tmp_path / "lab")
    assert r.returncode == 0, r.stderr[-2000:]
    md = (tmp_path / "report" / "report.md").read_text()
    assert "softmax_gate" in md and "A learned score per token" in md and f"plugins: {path}" in md


def test_plugin_parts_sweep_through_submitit_workers(tmp_path):
    r = lclab("sweep", plugin_space(tmp_path), "--cluster", "local", "--jobs", 1, "--threads", 1, "--lab", tmp_path / "lab")
    assert r.returncode == 0, r.stderr[-2000:]
    frame = load_frame(storage_url(None, tmp_path / "lab"), ["mini"])
    assert (frame.state == "COMPLETE").sum() == 4 and frame.slurm_job.notna().all()


def trial_config(tmp_path: Path, plugin_source: str | None, **model) -> Path:
    data = {**MINI_BASE, "output_dir": str(tmp_path / "runs"), "train": {**MINI_BASE["train"], "steps": 2},
            "model": {**MINI_BASE["model"], **model}}
    if plugin_source is not None:
        (tmp_path / "plugin.py").write_text(textwrap.dedent(plugin_source))
        data["plugins"] = ["plugin.py"]
    path = tmp_path / "trial.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize("source,message", [
    ("import nonexistent_package_xyz\n", "plugin {path} failed to import: ModuleNotFoundError"),
    ("raise RuntimeError('half written')\n", "plugin {path} failed to import: RuntimeError: half written"),
    ("""
     from lclab.models import POOLINGS, Pooling

     @POOLINGS.register("mean")
     class Mine(Pooling):
         '''Not the mean.'''
     """, "pooling 'mean' from {path} is already registered by lclab.models.pooling"),
    ("""
     from lclab.models import POOLINGS

     @POOLINGS.register("loose")
     class Loose:
         '''Not derived from Pooling.'''
     """, "pooling 'loose' from {path} is class Loose, not a subclass of lclab.models.Pooling"),
    ("""
     from lclab.models import POOLINGS, Pooling

     @POOLINGS.register("undocumented")
     class Undocumented(Pooling):
         def forward(self, states, valid):
             return self.groups(states, valid)[0].mean(2)
     """, "pooling 'undocumented' from {path} has no description"),
    (None, "plugin file {path} does not exist"),
    ("folder", "plugin {path} is a folder"),  # said 'does not exist' of a folder that does
])
def test_a_broken_missing_or_clashing_plugin_is_one_clear_error(tmp_path, source, message):
    cfg = trial_config(tmp_path, None if source == "folder" else source)
    if source in (None, "folder"):
        cfg.write_text(cfg.read_text() + "plugins: [plugin.py]\n")
    if source == "folder":
        (tmp_path / "plugin.py").mkdir()
    r = lclab("train", cfg)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr[-2000:]
    assert message.format(path=tmp_path / "plugin.py") in " ".join(r.stderr.split()), r.stderr
    assert str(cfg) in r.stderr  # the config that named it


@pytest.mark.parametrize("source,model,message", [
    ("""
     from lclab.models import POOLINGS, Pooling

     @POOLINGS.register("every_state")
     class EveryState(Pooling):
         '''Every window state, not one per group.'''
         def forward(self, states, valid):
             return states
     """, {"pooling": "every_state"}, "'every_state' from {path} returned a tensor of shape (#, 16, 32) where a "
                                      "pooling must return one latent per r = 4 new tokens of each window, "
                                      "(N, S / r, D) = (#, 4, 32)"),
    ("""
     import torch.nn as nn
     from lclab.models import ADAPTERS, Adapter

     @ADAPTERS.register("every_other")
     class EveryOther(Adapter):
         '''Every other latent.'''
         def __init__(self, cfg):
             super().__init__(cfg)
             self.proj = nn.Linear(cfg.encoder.d_model, cfg.decoder.d_model)

         def forward(self, latents):
             return self.proj(latents[:, ::2])
     """, {"adapter": {"kind": "every_other"}}, "'every_other' from {path} returned a tensor of shape (#, 2, 32) "
                                                 "where an adapter must map each latent to the decoder's width, "
                                                 "(B, L, D_dec) = (#, 4, 32)"),
])
def test_a_part_of_the_wrong_shape_is_named_not_sliced_into_a_model_that_trains(tmp_path, source, model, message):
    # without the check the encoder kept the first ceil(T / r) window states, and the decoder read half the latents
    r = lclab("train", trial_config(tmp_path, source, **model))
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr[-2000:]
    expected = re.escape(message.format(path=tmp_path / "plugin.py")).replace(r"\#", r"\d+")  # any batch
    assert re.search(expected, " ".join(r.stderr.split())), r.stderr
    assert not list((tmp_path / "runs").glob("*/metrics.json"))


TASK = """
import numpy as np
from lclab.trials.synthetic import TASKS, Task

@TASKS.register("mine")
class Mine(Task):
    '''A task of my own.'''
    @staticmethod
    def generate(rng, B, d):
        context = rng.integers({low}, {high}, size=(B, d.context_len))
        text = context[:, :{text_len}].copy()
        return context, text, np.ones(text.shape, bool)
"""


@pytest.mark.parametrize("low,high,text_len,message", [
    (10, 20, 3, "returned text of shape (8, 3) (expected (8, 16)), loss_mask of shape (8, 3) (expected (8, 16))"),
    (10, 10_000, "d.text_len", "returned context ids that are not integers in [0, 90) (the layout's vocabulary)"),
])
def test_a_task_returning_what_the_model_cannot_read_is_named(tmp_path, low, high, text_len, message):
    # before: a short text trained silently on 3 of 16 positions; ids past the vocabulary were an IndexError traceback
    cfg = trial_config(tmp_path, TASK.format(low=low, high=high, text_len=text_len))
    data = yaml.safe_load(cfg.read_text())
    data["data"]["tasks"] = ["mine"]
    cfg.write_text(yaml.safe_dump(data))
    r = lclab("train", cfg)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr[-2000:]
    assert f"synthetic task 'mine' from {tmp_path / 'plugin.py'} {message}" in " ".join(r.stderr.split()), r.stderr


def test_a_broken_plugin_in_a_space_names_the_space_line(tmp_path):
    (tmp_path / "bad.py").write_text("1 / 0\n")
    space = mini_space(tmp_path, plugins=["bad.py"])
    r = lclab("sweep", space, "--lab", tmp_path / "lab")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert f"{space}:" in r.stderr and "ZeroDivisionError" in r.stderr and not (tmp_path / "lab" / "lab.db").exists()


def test_plugin_options_are_validated_by_the_plugin_and_its_code_enters_the_config_hash(tmp_path):
    source = PLUGIN.read_text()
    required = source.replace("temperature: float = 1.0", "temperature: float")  # an option without a default
    r = lclab("train", trial_config(tmp_path, required, pooling="softmax_gate"))
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr[-2000:]  # was a TypeError from Options()
    assert "field 'model.pooling_options.temperature': is required and not set" in " ".join(r.stderr.split())
    cfg = trial_config(tmp_path, source, pooling="softmax_gate", pooling_options={"temprature": 2.0})
    r = lclab("train", cfg)
    assert r.returncode == 2 and "model.pooling_options.temprature" in r.stderr and "temperature" in r.stderr
    cfg = trial_config(tmp_path, source, pooling="softmax_gate", pooling_options={"temperature": 2.0})
    code = "import sys; from lclab.trials import load_config; print(load_config(sys.argv[1]).hash())"
    hashes = []
    for text in (source, source + "\n# edited\n"):
        (tmp_path / "plugin.py").write_text(text)
        hashes.append(subprocess.run([sys.executable, "-c", code, str(cfg)], capture_output=True, text=True, check=True).stdout)
    assert hashes[0] != hashes[1]  # changed plugin code: a different configuration, never deduplicated with the old
    r = lclab("train", cfg)
    assert r.returncode == 0, r.stderr[-2000:]
    metrics = json.loads(next((tmp_path / "runs").glob("*/metrics.json")).read_text())
    assert metrics["params/encoder"] > 0 and "val/loss_compressed" in metrics


def test_an_installed_package_registers_through_entry_points(tmp_path):
    site = tmp_path / "site"
    dist = site / "lclab_demo_parts-0.1.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: lclab-demo-parts\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[lclab.pooling]\nfirst = demo_parts:FirstPooling\n")
    (site / "demo_parts.py").write_text(textwrap.dedent('''
        from lclab.models import Pooling

        class FirstPooling(Pooling):
            """State of the group's first token."""

            def forward(self, states, valid):
                return self.groups(states, valid)[0][:, :, 0]
    '''))
    code = ("import torch; from lclab.models import LCLM, POOLINGS, ModelConfig; "
            "print(POOLINGS.origin('first')); "
            "print(tuple(LCLM(ModelConfig(vocab_size=64, pooling='first')).encoder(torch.randint(8, 64, (2, 30))).shape))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path,
                         env={**os.environ, "PYTHONPATH": str(site)})
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split("\n")[:2] == ["entry point 'first = demo_parts:FirstPooling' of package lclab-demo-parts",
                                          "(2, 8, 128)"]


def test_a_researcher_holds_their_own_parts_to_the_registry_contract(tmp_path):
    # the README's command, on a pooling whose analytic FLOPs were forgotten: every report's compute axis would be wrong
    (tmp_path / "mine.py").write_text(textwrap.dedent('''
        import torch.nn as nn
        from lclab.models import POOLINGS, Pooling

        @POOLINGS.register("proj_mean")
        class ProjMean(Pooling):
            """A linear map of the group mean, its FLOPs forgotten."""

            @classmethod
            def n_params(cls, cfg):
                return cfg.encoder.d_model ** 2

            def __init__(self, cfg):
                super().__init__(cfg)
                self.proj = nn.Linear(cfg.encoder.d_model, cfg.encoder.d_model, bias=False)

            def forward(self, states, valid):
                return self.proj(self.groups(states, valid)[0].mean(2))
    '''))
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(ROOT / "tests/models/test_registry.py"),
                        "-k", "proj_mean"], capture_output=True, text=True, cwd=tmp_path,
                       env={**os.environ, "LCLAB_TEST_PLUGINS": "mine.py"}, timeout=600)
    assert r.returncode == 1 and "2 failed" in r.stdout, r.stdout[-3000:]  # both stride settings of test_pooling_contract
    assert "test_pooling_contract[0-4-proj_mean]" in r.stdout and "assert 0 == " in r.stdout
