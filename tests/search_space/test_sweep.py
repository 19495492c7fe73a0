"""Sweeps against real Optuna storages: SQLite, journal file and a real PostgreSQL server."""
import json
import os
import platform
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest

from lclab.search_space.space import load_space
from lclab.search_space.local import run_sweep, worker
from lclab.search_space.objective import Objective
from lclab.search_space.study import counts, open_study, replicate_top
from tests.services import fresh_database, postgres_url  # noqa: F401  (fixture)
from lclab.testing import MINI_BASE, mini_space
from lclab.trials.db import load_frame, open_storage, storage_url, tokens_spent

ROOT = Path(__file__).parents[2]


def test_sweep_stores_every_trial_with_provenance_and_resumes_as_the_same_study(tmp_path):
    space = load_space(mini_space(tmp_path))
    study = run_sweep(space, tmp_path / "lab", workers=2)
    frame = load_frame(storage_url(None, tmp_path / "lab"), ["mini"])
    done = frame[frame.state == "COMPLETE"]
    assert len(done) == 8  # 4 grid points x 2 seeds
    assert sorted(zip(done["param.ratio"], done["param.pooling"], done.seed)) == sorted(
        (r, p, s) for r in (4, 8) for p in ("mean", "attention") for s in (0, 1))
    row = done.iloc[0]
    for column in ("config_hash", "code_version.commit", "code_version.dirty", "host", "device", "host_arch", "seed", "run_dir", "val/loss_compressed", "params/total",
                   "train/tokens_seen", "sys/wall_s", "meta/data_fingerprint"):
        assert column in frame.columns and row[column] == row[column], column
    assert Path(row["run_dir"], "checkpoints", "last.ckpt").exists()
    # exports read cleanly: flat scalars only, the training device apart from the host's architecture
    assert not any(isinstance(v, (dict, list)) for v in frame.to_numpy().ravel())
    assert row["device"] == "cpu" == row["sys/device"] and row["host_arch"] == platform.machine()
    assert len(row["code_version.commit"]) == 40 and row["code_version.dirty"] in (True, False)
    trial = study.get_trials()[0]
    assert trial.user_attrs["config"]["model"]["ratio"] == trial.params["ratio"]
    assert done.config_hash.nunique() == 8  # no configuration trained twice
    from lclab.trials.db import _frame_from_api  # the SQL fast path reads the same values as Optuna's API
    api, _ = _frame_from_api(open_storage(storage_url(None, tmp_path / "lab")), ["mini"])
    fast = frame.drop(columns=["nuisance_best"]).rename(columns={"value": "value_0"})
    cols = ["number", "state", "value_0", "param.ratio", "param.pooling", "seed", "config_hash", "val/loss_compressed"]
    assert fast[cols].reset_index(drop=True).equals(api.sort_values("number")[cols].reset_index(drop=True))
    before = len(study.trials)  # 8, and a surplus sample where the two workers raced for the grid's last point
    run_sweep(space, tmp_path / "lab", workers=1)  # the same command again: the study is already at its target
    assert len(optuna.load_study(study_name="mini", storage=storage_url(None, tmp_path / "lab")).trials) == before


def test_a_trial_drawn_after_the_grid_ran_out_still_names_the_job_that_drew_it(tmp_path):
    # two workers racing for a grid's last point: the loser's fresh trial is surplus and never trains, but it is a
    # row of the study like any other and must say which Slurm job and log it came from
    space = load_space(mini_space(tmp_path, seeds=[0]))
    study = open_study(space, tmp_path / "lab")
    for _ in range(4):  # every enumerated point claimed
        assert study.ask().user_attrs
    fresh = study.ask()
    assert not fresh.user_attrs
    identity = {"slurm_job_id": "7", "node": "node-a"}
    with pytest.raises(optuna.TrialPruned, match="surplus"):
        Objective(space, tmp_path / "lab", "slurm-7.out", identity)(fresh)
    assert fresh.user_attrs == {"surplus": True, "log": "slurm-7.out", **identity}
    # and it is not counted or shown as a pruned trial: no pruner stopped anything
    study.tell(fresh, state=optuna.trial.TrialState.PRUNED)
    assert counts(study)["SURPLUS"] == 1 and counts(study)["PRUNED"] == 0
    frame = load_frame(storage_url(None, tmp_path / "lab"), ["mini"])
    assert frame.set_index("number").state[fresh.number] == "SURPLUS" and (frame.state != "PRUNED").all()


def test_a_changed_space_is_refused_for_the_same_study(tmp_path):
    run_sweep(load_space(mini_space(tmp_path, budget={"steps": 2}, seeds=[0])), tmp_path / "lab")
    changed = load_space(mini_space(tmp_path, budget={"steps": 3}, seeds=[0]))
    with pytest.raises(Exception, match="was run with a different space"):
        run_sweep(changed, tmp_path / "lab")


def test_a_completed_configuration_is_not_trained_twice(tmp_path):
    space = load_space(mini_space(tmp_path, seeds=[0], budget={"steps": 2}))
    study = run_sweep(space, tmp_path / "lab")
    first = study.trials[0]
    study.enqueue_trial(first.params, user_attrs={"seed": 0, "replica_of": -1})
    study.set_user_attr("extra_trials", 1)
    worker(str(space.source), str(tmp_path / "lab"), 1)
    again = optuna.load_study(study_name="mini", storage=storage_url(None, tmp_path / "lab")).trials[-1]
    assert again.user_attrs["duplicate_of"] == first.number and again.value == first.value


def test_divergence_is_a_failed_trial_with_its_reason_and_the_sweep_goes_on(tmp_path):
    space = load_space(mini_space(tmp_path, seeds=[0], budget={"steps": 4},
                                  axes={"lr_decoder": {"values": [1.0e-3, 1.0e+6]}, "lr_encoder": {"values": [1.0e-3]}},
                                  base={**MINI_BASE, "train": {**MINI_BASE["train"], "grad_clip": 1.0e+9}},
                                  constraints=[], n_trials=2))
    run_sweep(space, tmp_path / "lab")
    frame = load_frame(storage_url(None, tmp_path / "lab"), ["mini"])
    failed = frame[frame.state == "FAIL"]
    assert len(failed) == 1 and "training loss is nan" in failed.iloc[0]["fail_reason"].lower()
    assert (frame.state == "COMPLETE").sum() == 1


def _concurrent(tmp_path, storage: str):
    """8 workers train an enqueued grid (8 configurations x 3 seeds) end to end: each point exactly once, none left
    RUNNING or failed. (The claim race itself, which training staggers, is provoked directly by
    test_eight_workers_never_claim_the_same_queued_trial.)"""
    lrs = [1.0e-4 * 2**i for i in range(8)]
    space = load_space(mini_space(tmp_path, storage=storage, sampler="grid", seeds=[0, 1, 2], n_trials=8,
                                  budget={"steps": 1}, axes={"lr_encoder": {"values": lrs}}, constraints=[],
                                  base={**MINI_BASE, "data": {**MINI_BASE["data"], "val_examples": 8}}))
    study = run_sweep(space, tmp_path / "lab", workers=8)
    trials = study.get_trials()
    states = [t.state for t in trials]
    assert optuna.trial.TrialState.RUNNING not in states and optuna.trial.TrialState.FAIL not in states, states
    done = [(t.params["lr_encoder"], t.user_attrs["seed"]) for t in trials if t.state == optuna.trial.TrialState.COMPLETE
            and "duplicate_of" not in t.user_attrs]
    assert sorted(done) == sorted((lr, seed) for lr in lrs for seed in (0, 1, 2))  # each point trained exactly once


CLAIM = """
import json, sys, time, warnings
import optuna
from lclab.trials.db import open_storage
warnings.simplefilter("ignore")
study = optuna.load_study(study_name="race", storage=open_storage(sys.argv[1]))
while time.time() < float(sys.argv[2]):  # every worker asks at the same instant
    time.sleep(0.001)
got = []
while "k" in (trial := study.ask()).user_attrs:  # a queued trial; none left: a fresh sample, stop
    got.append(trial.user_attrs["k"])
print(json.dumps(got))
"""


def _claims(storage_url_: str) -> list[int]:
    study = optuna.create_study(study_name="race", storage=open_storage(storage_url_))
    for k in range(200):
        study.enqueue_trial({"x": 0.5}, user_attrs={"k": k})
    start = str(time.time() + 8)  # after every process has imported optuna
    procs = [subprocess.Popen([sys.executable, "-c", CLAIM, storage_url_, start], stdout=subprocess.PIPE, text=True)
             for _ in range(8)]
    return [k for p in procs for k in json.loads(p.communicate(timeout=300)[0])]


@pytest.mark.parametrize("kind", ["lab.db", "lab.journal"])
def test_eight_workers_never_claim_the_same_queued_trial(tmp_path, kind):
    """The race itself, without training: 8 processes pop 200 queued trials at once. With SQLite's lazy transactions
    (BEGIN IMMEDIATE reverted in trials/db.py) about 55 of 200 trials were claimed twice in each of 3 runs; with it, none."""
    claims = _claims(storage_url(kind, tmp_path))
    assert sorted(claims) == list(range(200))


def test_eight_workers_never_claim_the_same_queued_trial_on_postgresql(postgres_url):
    claims = _claims(fresh_database(postgres_url, "claims"))
    assert sorted(claims) == list(range(200))


@pytest.mark.slow
def test_eight_workers_on_sqlite(tmp_path):
    _concurrent(tmp_path, "lab.db")


@pytest.mark.slow
def test_eight_workers_on_journal_file(tmp_path):
    _concurrent(tmp_path, "lab.journal")


@pytest.mark.slow
def test_eight_workers_on_postgresql(tmp_path, postgres_url):
    _concurrent(tmp_path, fresh_database(postgres_url, "concurrency"))


def test_postgresql_sweep_and_frame(tmp_path, postgres_url):
    url = fresh_database(postgres_url, "sweep")
    run_sweep(load_space(mini_space(tmp_path, storage=url, seeds=[0], budget={"steps": 2})), tmp_path / "lab")
    frame = load_frame(url, ["mini"])
    assert (frame.state == "COMPLETE").sum() == 4 and frame["val/loss_compressed"].notna().all()


def test_a_dead_database_is_a_clear_error(tmp_path):
    with pytest.raises(Exception, match="cannot open the trial database.*check that the server is running"):
        open_storage("postgresql://nobody:secret@127.0.0.1:1/none")
    out = subprocess.run([sys.executable, "-m", "lclab", "studies", "--storage", "postgresql://nobody:secret@127.0.0.1:1/x"],
                         capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 2 and "Traceback" not in out.stderr and "secret" not in out.stderr


@pytest.mark.slow
@pytest.mark.parametrize("storage", ["sqlite", "journal"])
def test_a_killed_worker_leaves_a_stale_trial_that_resumes_from_its_checkpoint(tmp_path, storage):
    base = {**MINI_BASE, "train": {**MINI_BASE["train"], "checkpoint_every": 10}}
    path = mini_space(tmp_path, seeds=[0], budget={"steps": 400}, n_trials=1, base=base,
                      axes={"ratio": {"values": [4]}}, storage="lab.journal" if storage == "journal" else None)
    env = {**os.environ, "LCLAB_HEARTBEAT_S": "1", "LCLAB_GRACE_S": "3"}
    code = ("import sys; from pathlib import Path; from lclab.search_space.space import load_space; "
            "from lclab.search_space.local import run_sweep; run_sweep(load_space(sys.argv[1]), Path(sys.argv[2]))")
    proc = subprocess.Popen([sys.executable, "-c", code, str(path), str(tmp_path / "lab")], env=env, cwd=ROOT,
                            start_new_session=True)
    ckpt_dir = tmp_path / "lab" / "runs" / "mini"
    deadline = time.time() + 120
    while not list(ckpt_dir.glob("*/checkpoints/last.ckpt")) and time.time() < deadline:
        time.sleep(0.2)
    time.sleep(1.0)
    os.killpg(proc.pid, signal.SIGKILL)  # no warning: the trial stays RUNNING in the database
    proc.wait()
    url = storage_url("lab.journal" if storage == "journal" else None, tmp_path / "lab")
    url = open_storage(url) if storage == "journal" else url
    assert [t.state.name for t in optuna.load_study(study_name="mini", storage=url).trials] == ["RUNNING"]
    time.sleep(4)  # heartbeat goes stale
    subprocess.run([sys.executable, "-c", code, str(path), str(tmp_path / "lab")], env=env, cwd=ROOT, check=True)
    trials = optuna.load_study(study_name="mini", storage=url).trials
    assert [t.state.name for t in trials] == ["FAIL", "COMPLETE"]
    metrics = trials[1].user_attrs["metrics"]
    assert metrics["meta/resumed_from_step"] >= 10 and metrics["train/steps"] == 400


@pytest.mark.slow
def test_ctrl_c_checkpoints_the_running_trial_and_the_next_run_resumes_it(tmp_path):
    base = {**MINI_BASE, "train": {**MINI_BASE["train"], "checkpoint_every": 1000}}  # only the interrupt saves
    path = mini_space(tmp_path, seeds=[0], budget={"steps": 2000}, n_trials=1, base=base, axes={"ratio": {"values": [4]}})
    cmd = [sys.executable, "-m", "lclab", "sweep", str(path), "--lab", str(tmp_path / "lab")]
    # a shell's background jobs ignore SIGINT and children inherit that: restore the terminal's default
    proc = subprocess.Popen(cmd, cwd=ROOT, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    events = tmp_path / "lab" / "runs" / "mini"
    deadline = time.time() + 120
    while not list(events.glob("*/tensorboard/events.*")) and time.time() < deadline:
        time.sleep(0.2)
    time.sleep(2.0)  # some steps into the trial (it needs ~15 s in all)
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does: the whole process group
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "run the same command to resume" in err
    url = storage_url(None, tmp_path / "lab")
    trials = optuna.load_study(study_name="mini", storage=url).trials
    assert [t.state.name for t in trials] == ["FAIL", "WAITING"] and trials[0].user_attrs["interrupted"]
    assert subprocess.run(cmd, cwd=ROOT, capture_output=True).returncode == 0
    trials = optuna.load_study(study_name="mini", storage=url).trials
    assert [t.state.name for t in trials] == ["FAIL", "COMPLETE"]
    assert trials[1].user_attrs["metrics"]["meta/resumed_from_step"] > 0
    assert trials[1].user_attrs["metrics"]["train/steps"] == 2000


def test_ctrl_c_during_a_database_call_of_the_parent_waits_for_the_call_to_end(tmp_path):
    """CI once hung here for 120 s: Ctrl-C cut the parent's live display inside a query, the parent kept SQLite's
    write lock while it waited for the worker, and the worker waited for that lock to record its interrupted trial.
    The parent now takes Ctrl-C between ticks: a tick the signal lands in finishes its database calls first."""
    import multiprocessing

    path = mini_space(tmp_path, seeds=[0], budget={"steps": 50}, n_trials=1, axes={"ratio": {"values": [4]}})
    finished = []

    def tick(study):
        if finished:
            return
        for child in multiprocessing.active_children():  # Ctrl-C reaches the whole process group
            os.kill(child.pid, signal.SIGINT)
        os.kill(os.getpid(), signal.SIGINT)
        finished.append(len(study.get_trials(deepcopy=False)))  # a database call after the signal arrived

    with pytest.raises(KeyboardInterrupt):
        run_sweep(load_space(path), tmp_path / "lab", on_tick=tick)
    assert finished == [1]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the parent's own handler is back


def test_asha_stops_clearly_bad_configurations_early_and_keeps_the_best(tmp_path):
    lrs = [3.0e-3, 1.0e-7, 3.0e-8, 1.0e-8, 3.0e-9]  # the first learns, the rest barely move
    frames = {}
    for pruner in ("none", {"name": "asha", "min_resource": 1280, "reduction_factor": 2}):
        name = "asha" if pruner != "none" else "plain"
        space = load_space(mini_space(tmp_path, name=name, seeds=[0], budget={"steps": 20}, pruner=pruner, n_trials=5,
                                      axes={"lr_encoder": {"values": lrs}, "lr_decoder": {"values": [1.0e-3]}},
                                      base={**MINI_BASE, "train": {**MINI_BASE["train"], "val_every": 5}}))
        run_sweep(space, tmp_path / "lab")
        frames[name] = load_frame(storage_url(None, tmp_path / "lab"), [name])
    plain, asha = frames["plain"], frames["asha"]
    assert (plain.state == "COMPLETE").sum() == 5
    assert (asha.state == "PRUNED").sum() >= 2
    assert tokens_spent(asha) < 0.8 * tokens_spent(plain)
    best = plain.loc[plain.value.idxmin(), "param.lr_encoder"]
    assert asha[asha["param.lr_encoder"] == best].state.item() == "COMPLETE"
    assert asha.loc[asha.value.idxmin(), "param.lr_encoder"] == best
    pruned = asha[asha.state == "PRUNED"]
    assert (pruned["pruned_at_tokens"] < 20 * 8 * 32).all() and pruned["last_reported_at"].notna().all()


def test_optuna_dashboard_reads_the_lab_storage_unchanged(tmp_path):
    import threading
    import urllib.request
    from wsgiref.simple_server import WSGIRequestHandler, make_server

    from optuna_dashboard import wsgi

    run_sweep(load_space(mini_space(tmp_path, seeds=[0], budget={"steps": 2})), tmp_path / "lab")
    WSGIRequestHandler.log_message = lambda *a: None
    server = make_server("127.0.0.1", 0, wsgi(storage_url(None, tmp_path / "lab")))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        base = f"http://127.0.0.1:{server.server_port}"
        studies = json.loads(urllib.request.urlopen(f"{base}/api/studies").read())["study_summaries"]
        assert [s["study_name"] for s in studies] == ["mini"]
        detail = json.loads(urllib.request.urlopen(f"{base}/api/studies/{studies[0]['study_id']}").read())
        assert len(detail["trials"]) == 4 and all(t["state"] == "Complete" for t in detail["trials"])
        assert any(a["key"] == "config_hash" for a in detail["trials"][0]["user_attrs"])
    finally:
        server.shutdown()


def test_nuisance_search_per_configuration_and_replicate_top(tmp_path):
    space = load_space(mini_space(tmp_path, sampler="tpe", seeds=[0], n_trials=2, budget={"steps": 2}, nuisance_trials=3,
                                  axes={"ratio": {"values": [4, 8]},
                                        "lr_encoder": {"kind": "float", "low": 1.0e-4, "high": 1.0e-2, "log": True,
                                                       "role": "nuisance"}}))
    study = run_sweep(space, tmp_path / "lab")
    frame = load_frame(storage_url(None, tmp_path / "lab"), ["mini"])
    heads = frame[frame.get("nuisance_of").isna()] if "nuisance_of" in frame else frame
    assert len(frame) == 6 and len(heads) == 2  # 2 sampled configurations x 3 nuisance settings
    for _, group in frame.groupby("scientific_key"):
        assert group["param.ratio"].nunique() == 1 and group["param.lr_encoder"].nunique() == len(group)
        assert group.nuisance_best.sum() == 1 and group.loc[group.nuisance_best, "value"].item() == group.value.min()
    run_sweep(space, tmp_path / "lab", replicate=(1, 2))
    frame = load_frame(storage_url(None, tmp_path / "lab"), ["mini"])
    replicas = frame[frame.seed >= 1]
    best_key = frame[frame.nuisance_best].sort_values("value").scientific_key.iloc[0]
    assert sorted(replicas.seed) == [1, 2] and set(replicas.scientific_key) == {best_key}
    assert (replicas.state == "COMPLETE").all()
    # a replication interrupted before its replicas trained, then re-run as told ("run the same command to resume"):
    # its queued replicas are trained and no more are added (each re-run added --seeds new ones)
    queued = replicate_top(study, space, 1, 2)
    notes = []
    run_sweep(space, tmp_path / "lab", replicate=(1, 2), on_note=notes.append)
    frame = load_frame(storage_url(None, tmp_path / "lab"), ["mini"])
    assert sorted(frame[frame.seed >= 1].seed) == [1, 2, 3, 4] and (frame.state == "COMPLETE").all()
    assert "new seed(s) 3, 4" in queued
    assert any("2 replica(s) an earlier --replicate-top queued are not trained yet" in n for n in notes), notes


def test_nsga2_sweeps_several_objectives(tmp_path):
    space = load_space(mini_space(tmp_path, sampler="nsga2", seeds=[0], n_trials=3, budget={"steps": 2},
                                  objectives=[{"metric": "val/loss_compressed"},
                                              {"metric": "flops_per_token/encoder", "direction": "minimize"}]))
    study = run_sweep(space, tmp_path / "lab")
    done = [t for t in study.trials if t.state.name == "COMPLETE"]
    assert len(done) >= 3 and all(len(t.values) == 2 for t in done) and study.best_trials


def test_stale_trials_are_retried_once_each_and_at_most_three_times_in_a_row(tmp_path):
    from lclab.search_space.recovery import fail_and_retry

    study = optuna.create_study(study_name="s", storage=open_storage(str(tmp_path / "lab.journal")))
    trial = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
    stale = study._storage.get_trial(trial._trial_id)
    fail_and_retry(study, stale, "stale")
    fail_and_retry(study, stale, "stale")  # a second worker found the same stale trial: no crash, no second retry
    waiting = study.get_trials(states=(optuna.trial.TrialState.WAITING,))
    assert len(waiting) == 1 and waiting[0].user_attrs["retries"] == 1 and waiting[0].user_attrs["retry_of"] == 0
    # a trial that killed its worker three times in a row is failed for good, with the reason kept
    study.enqueue_trial({"x": 0.5}, user_attrs={"retries": 3})
    doomed = [t for t in study.get_trials() if t.user_attrs.get("retries") == 3][0]
    study._storage.set_trial_state_values(doomed._trial_id, optuna.trial.TrialState.RUNNING)
    fail_and_retry(study, study._storage.get_trial(doomed._trial_id), "stale")
    after = study._storage.get_trial(doomed._trial_id)
    assert after.state == optuna.trial.TrialState.FAIL and "not retried again" in after.user_attrs["fail_reason"]
    assert len(study.get_trials(states=(optuna.trial.TrialState.WAITING,))) == 1  # only the first trial's retry


@pytest.mark.slow
def test_a_killed_worker_whose_trial_is_resumed_is_a_note_and_a_rerun_inside_the_grace_waits(tmp_path):
    """kill -9 of one of two workers mid-trial: its trial is resumed (here, after the grace, by the same run) and
    the sweep exits 0 with a note, not "sweep failed"."""
    base = {**MINI_BASE, "train": {**MINI_BASE["train"], "checkpoint_every": 10}}
    path = mini_space(tmp_path, seeds=[0], budget={"steps": 300}, base=base, axes={"ratio": {"values": [4, 8]}})
    env = {**os.environ, "LCLAB_HEARTBEAT_S": "1", "LCLAB_GRACE_S": "3", "COLUMNS": "250"}
    cmd = [sys.executable, "-m", "lclab", "sweep", str(path), "--lab", str(tmp_path / "lab"), "--workers", "2"]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while len(list((tmp_path / "lab" / "runs" / "mini").glob("*/checkpoints/last.ckpt"))) < 2 and time.time() < deadline:
        time.sleep(0.2)
    children = lambda pid: subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()  # noqa: E731
    [server] = [c for c in children(proc.pid) if "forkserver" in Path(f"/proc/{c}/cmdline").read_text()]
    workers = children(server)  # the workers fork from the sweep's fork server
    assert len(workers) == 2
    os.kill(int(workers[0]), signal.SIGKILL)  # one worker dies without warning, mid-trial
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, out + err
    said = " ".join(out.split())
    assert "killed by signal 9" in said and "every point is complete" in said and "sweep failed" not in err
    frame = load_frame(storage_url(None, tmp_path / "lab"), ["mini"])
    assert sorted(frame[frame.state == "COMPLETE"]["param.ratio"]) == [4, 8]


def test_a_crashed_grid_point_is_queued_again_once_its_cause_is_fixed(tmp_path):
    from lclab.errors import SweepError

    corpus = tmp_path / "corpus.txt"  # missing at first: every trial crashes loading it
    base = {**MINI_BASE, "data": {**MINI_BASE["data"], "source": "files", "path": [str(corpus)], "tokenizer": "byte"}}
    space = load_space(mini_space(tmp_path, base=base, axes={"ratio": {"values": [4, 8]}}, seeds=[0], budget={"steps": 2}))
    with pytest.raises(SweepError, match="queued and not trained"):  # the worker died on the first point
        run_sweep(space, tmp_path / "lab")
    frame = load_frame(storage_url(None, tmp_path / "lab"), ["mini"])
    crashed = frame[frame.state == "FAIL"]
    assert len(crashed) == 1 and str(corpus) in crashed.fail_reason.iloc[0]
    corpus.write_text("\n".join(f"line {i} of a small corpus, long enough for a few windows of text." for i in range(400)))
    notes = []
    study = run_sweep(space, tmp_path / "lab", on_note=notes.append)  # the same command, after the fix
    done = sorted(t.params["ratio"] for t in study.trials if t.state.name == "COMPLETE")
    assert done == [4, 8] and any("1 point(s) whose trials crashed are queued again" in n for n in notes)


@pytest.mark.parametrize("form", ["user:password@", "?password="])
def test_a_password_in_the_url_appears_in_no_message_file_or_refusal(tmp_path, postgres_url, form):
    import yaml

    db = fresh_database(postgres_url, f"secret{len(form)}")
    secret = "hunter2secret"  # the test server trusts every connection: the secret travels but is not checked
    url = db.replace("postgres@", f"postgres:{secret}@") if form.startswith("user") else f"{db}?password={secret}"
    space = mini_space(tmp_path, storage=url, seeds=[0], budget={"steps": 2})
    cmd = [sys.executable, "-m", "lclab", "sweep", str(space), "--lab", str(tmp_path / "lab")]
    first = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    changed = yaml.safe_load(space.read_text())
    changed["axes"]["ratio"]["values"] = [4, 16]
    space.write_text(yaml.safe_dump(changed))
    refused = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)  # a different space for the same study
    assert first.returncode == 0 and refused.returncode == 2 and "different space" in refused.stderr
    assert secret not in first.stdout + first.stderr + refused.stdout + refused.stderr
    assert not [p for p in (tmp_path / "lab").rglob("*") if p.is_file() and secret.encode() in p.read_bytes()]
