"""The fault suite: each fault a shared cluster deals a sweep, run against real services on this machine (a
PostgreSQL server of its own, the one-node Slurm when SLURM_CONF is set, a 2 MB tmpfs for the full disk) with tiny
trials, as a user runs them (`python -m lclab ...` in fresh folders).

One row per fault x storage: design points expected, completed, lost, duplicated (trained twice), stuck RUNNING,
retries, the commands' exit statuses, whether the row meets the target (0 lost, 0 duplicated, 0 stuck, a truthful
exit), and the message the user saw (the last paragraph of the command's output).

    python benchmarks/faults.py [--only kill9,outage,...] [--keep]
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import optuna
import yaml

from _common import report

from lclab.testing import MINI_BASE, mini_space
from lclab.testing.postgres import PostgresServer, Unavailable
from lclab.trials.db import open_storage, storage_url

ROOT = Path(__file__).parents[1]
FAST = {"LCLAB_HEARTBEAT_S": "1", "LCLAB_GRACE_S": "3", "COLUMNS": "250"}  # a dead worker is noticed in seconds
SETTLED = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)


@dataclass
class Row:
    fault: str
    storage: str
    expected: int = 0
    completed: int = 0
    lost: int = 0
    duplicated: int = 0
    stuck: int = 0
    retries: int = 0
    exit: str = ""
    seconds: float = 0.0
    ok: bool = False
    message: str = ""
    facts: dict = field(default_factory=dict)


def lclab(*args, env: dict | None = None, cwd: Path = ROOT, timeout: int = 900) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lclab", *map(str, args)], capture_output=True, text=True, cwd=cwd,
                          env={**os.environ, **FAST, **(env or {})}, timeout=timeout)


def start_sweep(space: Path, lab: Path, workers: int = 1, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "lclab", "sweep", str(space), "--lab", str(lab), "--workers", str(workers)],
                            cwd=ROOT, env={**os.environ, **FAST, **(env or {})}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)


def said(*outputs: str) -> str:
    """What the user was told: the output's notes, errors and failure lines, without tables, on one line."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", "\n".join(o for o in outputs if o))
    lines = [ln for ln in text.splitlines() if not re.search(r"[┃│┏┡└━─╇┗┓┛]", ln) and not ln.startswith("[I ")
             and not re.fullmatch(r"\s*sweep \S+\s*", ln)]
    paragraphs = [" ".join(p.split()) for p in re.split(r"\n\s*\n|\n(?=\S)", "\n".join(lines)) if p.strip()]
    told = [p for p in paragraphs if re.match(r"(error|sweep failed|note|diverged|crashed|infeasible|checkpoint)", p)]
    return " / ".join(told or paragraphs[-1:])[:400]


def wait_for(predicate, timeout: float = 240, every: float = 0.3) -> None:
    deadline = time.time() + timeout
    while not predicate():
        if time.time() > deadline:
            raise TimeoutError(f"gave up after {timeout} s")
        time.sleep(every)


def tally(row: Row, url: str, study: str, expected: int, rcs: list[int], truthful: bool) -> Row:
    """Counts over the study's trials: a design point is (params, seed); settled means complete or pruned, or a
    divergence (a result too); duplicated counts points trained to a result more than once."""
    trials = optuna.load_study(study_name=study, storage=open_storage(url)).get_trials(deepcopy=False)
    point = lambda t: (json.dumps(t.params, sort_keys=True, default=str), t.user_attrs.get("seed"))  # noqa: E731
    settled = Counter(point(t) for t in trials if "duplicate_of" not in t.user_attrs
                      and (t.state in SETTLED or t.user_attrs.get("diverged")) and "surplus" not in t.user_attrs)
    row.expected, row.completed = expected, len(settled)
    row.lost = expected - len(settled)
    row.duplicated = sum(n - 1 for n in settled.values())
    row.stuck = sum(t.state == optuna.trial.TrialState.RUNNING for t in trials)
    row.retries = sum("retry_of" in t.user_attrs or "failed_trial" in t.system_attrs for t in trials)  # lclab's, Optuna's
    row.exit = ",".join(map(str, rcs))
    row.ok = row.lost == 0 and row.duplicated == 0 and row.stuck == 0 and truthful
    return row


def long_space(tmp: Path, storage: str | None = None, steps: int = 300, **over) -> Path:
    base = {**MINI_BASE, "train": {**MINI_BASE["train"], "checkpoint_every": 10, **over.pop("train", {})}}
    return mini_space(tmp, storage=storage, seeds=[0], budget={"steps": steps}, base=base, **over)


def storages(kind: str, tmp: Path, pg: PostgresServer | None) -> str | None:
    return {"sqlite": None, "journal": "lab.journal", "postgresql": pg.url if pg else None}[kind]


def fresh_pg(pg: PostgresServer, name: str) -> str:
    import sqlalchemy

    engine = sqlalchemy.create_engine(pg.url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(sqlalchemy.text(f'DROP DATABASE IF EXISTS "{name}"'))
        conn.execute(sqlalchemy.text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    return pg.url.rsplit("/", 1)[0] + f"/{name}"


# ---- the faults ------------------------------------------------------------------------------------------------

def kill9(tmp: Path, kind: str, pg) -> Row:
    """kill -9 of one of two workers mid-trial: its trial is resumed from its checkpoint, the sweep exits 0."""
    url_spec = fresh_pg(pg, "kill9") if kind == "postgresql" else storages(kind, tmp, pg)
    space, lab = long_space(tmp, url_spec), tmp / "lab"
    started = time.time()
    proc = start_sweep(space, lab, workers=2)
    wait_for(lambda: len(list((lab / "runs" / "mini").glob("*/checkpoints/last.ckpt"))) >= 2)
    children = lambda pid: subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()  # noqa: E731
    [server] = [c for c in children(proc.pid) if "forkserver" in Path(f"/proc/{c}/cmdline").read_text()]
    os.kill(int(children(server)[0]), signal.SIGKILL)
    out, err = proc.communicate(timeout=600)
    row = Row("kill -9 of 1 of 2 workers mid-trial", kind, seconds=time.time() - started, message=said(out, err))
    return tally(row, storage_url(url_spec, lab), "mini", 4, [proc.returncode], proc.returncode == 0)


def outage(tmp: Path, kind: str, pg) -> Row:
    """PostgreSQL stopped for 20 s mid-sweep (2 workers training, values reported), then started again."""
    url = fresh_pg(pg, "outage")
    steps, val_every = 400, 50
    space = long_space(tmp, url, steps, train={"val_every": val_every}, pruner={"name": "median", "n_startup_trials": 100})
    started = time.time()
    proc = start_sweep(space, tmp / "lab", workers=2)
    storage = open_storage(url)

    def both_reported():
        if not any(s.study_name == "mini" for s in storage.get_all_studies()):
            return False
        running = optuna.load_study(study_name="mini", storage=storage).get_trials(
            deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
        return len(running) == 2 and all(t.intermediate_values for t in running)

    wait_for(both_reported)
    pg.stop()
    time.sleep(20)
    pg.start()
    out, err = proc.communicate(timeout=900)
    trials = optuna.load_study(study_name="mini", storage=open_storage(url)).get_trials(deepcopy=False)
    reports = sum(len(t.intermediate_values) for t in trials if t.state == optuna.trial.TrialState.COMPLETE)
    logs = " ".join(p.read_text() for p in (tmp / "lab" / "logs" / "mini").glob("*.log"))
    back = sorted(int(s) for s in re.findall(r"is back after (\d+) s", logs))
    row = Row("PostgreSQL stopped 20 s mid-sweep", kind, seconds=time.time() - started,
              message=f"{said(out, err)} | reports kept {reports}/{4 * steps // val_every}; workers back after {back} s",
              facts={"reports_kept": reports, "reports_expected": 4 * steps // val_every, "back_after_s": back})
    return tally(row, url, "mini", 4, [proc.returncode], proc.returncode == 0 and reports == 4 * steps // val_every)


def scale(tmp: Path, kind: str, pg) -> Row:
    """Many workers on one study (16 configurations x 3 seeds, 1-step trials): time to the first trial, time to
    exit after the last."""
    workers = 32 if kind == "postgresql" else 8
    url_spec = fresh_pg(pg, "scale") if kind == "postgresql" else storages(kind, tmp, pg)
    lrs = [1.0e-4 * 1.2**i for i in range(16)]
    space = mini_space(tmp, storage=url_spec, sampler="grid", seeds=[0, 1, 2], n_trials=16, budget={"steps": 1},
                       axes={"lr_encoder": {"values": lrs}}, constraints=[],
                       base={**MINI_BASE, "data": {**MINI_BASE["data"], "val_examples": 8}})
    started = time.time()
    r = lclab("sweep", space, "--lab", tmp / "lab", "--workers", workers)
    ended = time.time()
    url = storage_url(url_spec, tmp / "lab")
    trials = optuna.load_study(study_name="mini", storage=open_storage(url)).get_trials(deepcopy=False)
    first = min(t.datetime_start.timestamp() for t in trials if t.datetime_start) - started
    last = ended - max(t.datetime_complete.timestamp() for t in trials if t.datetime_complete)
    row = Row(f"{workers} workers at once", kind, seconds=ended - started,
              message=f"first trial {first:.1f} s after the command started; exit {last:.1f} s after the last trial",
              facts={"workers": workers, "first_trial_s": first, "exit_after_last_s": last})
    return tally(row, url, "mini", 48, [r.returncode], r.returncode == 0)


def diverging(tmp: Path, kind: str, pg) -> Row:
    """A learning rate that diverges: failed with its reason (a result, not retried), the others complete."""
    space = mini_space(tmp, seeds=[0], budget={"steps": 4}, constraints=[], n_trials=4,
                       axes={"lr_decoder": {"values": [1.0e-3, 1.0e+30]}, "ratio": {"values": [4, 8]}},
                       base={**MINI_BASE, "train": {**MINI_BASE["train"], "grad_clip": 1.0e+9}})
    started = time.time()
    r = lclab("sweep", space, "--lab", tmp / "lab")
    row = Row("learning rate 1e30 (diverges)", kind, seconds=time.time() - started, message=said(r.stdout, r.stderr))
    return tally(row, storage_url(None, tmp / "lab"), "mini", 4, [r.returncode],
                 r.returncode == 0 and "diverged" in row.message and "nan" in row.message.lower())


def full_disk(tmp: Path, kind: str, pg) -> Row:
    """The lab directory on a 2 MB filesystem; then the lab moved to a roomy disk and the same command re-run."""
    mount = tmp / "tiny"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], capture_output=True).returncode:
        return Row("lab on a 2 MB filesystem", kind, message="not run: mounting a tmpfs needs root")
    try:
        db = tmp / "lab.db"
        space = long_space(tmp, str(db), steps=60)
        started = time.time()
        first = lclab("sweep", space, "--lab", mount / "lab", "--workers", 2)
        import torch

        whole = 0
        for ckpt in (mount / "lab").rglob("*.ckpt"):
            torch.load(ckpt, weights_only=True, map_location="cpu")  # raises on a cut checkpoint
            whole += 1
        shutil.copytree(mount / "lab", tmp / "roomy")
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)
    again = lclab("sweep", space, "--lab", tmp / "roomy")
    row = Row("lab on a 2 MB filesystem, then moved", kind, seconds=time.time() - started,
              message=f"{said(first.stderr)} | checkpoints left whole: {whole}", facts={"whole_checkpoints": whole})
    truthful = first.returncode == 1 and "No space left" in first.stderr and "Traceback" not in first.stderr and again.returncode == 0
    return tally(row, f"sqlite:///{db}", "mini", 4, [first.returncode, again.returncode], truthful)


def truncated(tmp: Path, kind: str, pg) -> Row:
    """`lclab train --resume` on a checkpoint cut in half, and on an empty one: named, set aside, restarted."""
    cfg = tmp / "trial.yaml"
    cfg.write_text(yaml.safe_dump({**MINI_BASE, "name": "cut", "output_dir": str(tmp / "runs"),
                                   "train": {**MINI_BASE["train"], "steps": 40, "checkpoint_every": 10}}))
    started, rcs, messages, completed = time.time(), [], [], 0
    for how in ("half", "empty"):
        lclab("train", cfg)
        [ckpt] = (tmp / "runs").glob("*/checkpoints/last.ckpt")
        data = ckpt.read_bytes()
        ckpt.write_bytes(data[: len(data) // 2] if how == "half" else b"")
        r = lclab("train", cfg, "--resume")
        rcs.append(r.returncode)
        named = str(ckpt) in " ".join(r.stdout.split()) or ckpt.name in r.stdout
        messages.append(next((" ".join(p.split()) for p in r.stdout.split("\n") if "unreadable" in p), "")[:160])
        completed += r.returncode == 0 and named and "Traceback" not in r.stderr
        shutil.rmtree(tmp / "runs")
    row = Row("truncated / empty last.ckpt, lclab train --resume", "-", expected=2, completed=completed, lost=2 - completed,
              exit=",".join(map(str, rcs)), seconds=time.time() - started, message=" | ".join(messages))
    row.ok = completed == 2
    return row


def cold_cache(tmp: Path, kind: str, pg) -> Row:
    """A fresh sweep with 4 workers on a cold cache: the shared warm decoder is trained once, the others wait."""
    base = {**MINI_BASE, "train": {**MINI_BASE["train"], "decoder_init": "warm", "warm_steps": 30}}
    space = mini_space(tmp, seeds=[0], budget={"steps": 2}, base=base)
    started = time.time()
    r = lclab("sweep", space, "--lab", tmp / "lab", "--workers", 4, env={"LCLAB_CACHE": str(tmp / "cache")})
    events = (tmp / "cache" / "warm").glob("warm-decoder-*/tensorboard/events.out.tfevents.*")
    trainers = len({p.name.split(".")[-2] for p in events})
    row = Row("cold cache, 4 workers", kind, seconds=time.time() - started,
              message=f"warm decoder trained by {trainers} process(es)", facts={"warm_decoder_trainers": trainers})
    return tally(row, storage_url(None, tmp / "lab"), "mini", 4, [r.returncode], r.returncode == 0 and trainers == 1)


def crash_fixed(tmp: Path, kind: str, pg) -> Row:
    """Every trial crashes (its data file is missing); the file is created; the same command is run again."""
    corpus = tmp / "corpus.txt"
    base = {**MINI_BASE, "data": {**MINI_BASE["data"], "source": "files", "path": [str(corpus)], "tokenizer": "byte"}}
    space = mini_space(tmp, base=base, axes={"ratio": {"values": [4, 8]}}, seeds=[0, 1], budget={"steps": 2})
    started = time.time()
    first = lclab("sweep", space, "--lab", tmp / "lab")
    corpus.write_text("\n".join(f"line {i} of a small corpus, long enough for a few windows of text." for i in range(400)))
    again = lclab("sweep", space, "--lab", tmp / "lab")
    row = Row("always-crashing trial, cause fixed, re-run", kind, seconds=time.time() - started,
              message=f"{said(first.stderr)} | then: {said(again.stdout, again.stderr)}")
    truthful = first.returncode == 1 and str(corpus) in " ".join(first.stderr.split()) and again.returncode == 0
    return tally(row, storage_url(None, tmp / "lab"), "mini", 4, [first.returncode, again.returncode], truthful)


def rerun_in_grace(tmp: Path, kind: str, pg) -> Row:
    """The sweep killed (kill -9 of all its processes) mid-trial and the same command run again at once, inside the
    heartbeat's grace: it waits for the dead trial to go stale, resumes it, and exits 0."""
    space, lab = long_space(tmp, steps=300, axes={"ratio": {"values": [4]}}, n_trials=1), tmp / "lab"
    env = {"LCLAB_GRACE_S": "20"}  # the re-run starts well inside it
    started = time.time()
    proc = start_sweep(space, lab, env=env)
    wait_for(lambda: bool(list((lab / "runs" / "mini").glob("*/checkpoints/last.ckpt"))))
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    r = lclab("sweep", space, "--lab", lab, env=env)
    row = Row("sweep killed, re-run inside the grace", kind, seconds=time.time() - started, message=said(r.stdout, r.stderr))
    return tally(row, storage_url(None, lab), "mini", 1, [r.returncode], r.returncode == 0 and "waiting up to" in row.message)


def slurm_held(tmp: Path, kind: str, pg) -> Row:
    """A preempted (requeued) Slurm job held pending past the grace; other workers' stale checks run meanwhile."""
    if not (os.environ.get("SLURM_CONF") and shutil.which("scontrol")):
        return Row("requeued Slurm job held pending past the grace", kind, message="not run: no Slurm (SLURM_CONF unset)")
    space = long_space(tmp, steps=3000, axes={"ratio": {"values": [4]}}, n_trials=1,
                       train={"val_every": 1000, "checkpoint_every": 50})
    lab = tmp / "lab"
    started = time.time()
    r = lclab("sweep", space, "--cluster", "local_slurm", "--jobs", 1, "--threads", 1, "--lab", lab)
    job = re.search(r"submitted \d+ workers \([^)]*\): ([\w_]+)", " ".join(r.stdout.split())).group(1)
    url = storage_url(None, lab)
    storage = open_storage(url)

    def training():
        if not any(s.study_name == "mini" for s in storage.get_all_studies()):
            return False
        running = optuna.load_study(study_name="mini", storage=storage).get_trials(deepcopy=False)
        return bool(running) and running[0].state.name == "RUNNING" and bool(list((lab / "runs" / "mini").glob("*/checkpoints/last.ckpt")))

    wait_for(training)
    subprocess.run(["scontrol", "requeuehold", job], check=True)
    wait_for(lambda: "PENDING" in subprocess.run(["squeue", "-h", "-j", job, "-o", "%T"], capture_output=True, text=True).stdout)
    time.sleep(10)  # past the 3 s grace
    check = ("import sys, optuna; from lclab.trials.db import open_storage; "
             "optuna.storages.fail_stale_trials(optuna.load_study(study_name='mini', storage=open_storage(sys.argv[1])))")
    subprocess.run([sys.executable, "-c", check, url], env={**os.environ, **FAST}, check=True, cwd=ROOT)
    held_state = optuna.load_study(study_name="mini", storage=storage).trials[0].state.name
    subprocess.run(["scontrol", "release", job], check=True)
    wait_for(lambda: optuna.load_study(study_name="mini", storage=storage).trials[0].state.is_finished(), timeout=600)
    [trial] = optuna.load_study(study_name="mini", storage=storage).trials
    resumed = trial.user_attrs.get("metrics", {}).get("meta/resumed_from_step", 0)
    row = Row("requeued Slurm job held pending past the grace", kind, seconds=time.time() - started,
              message=f"while held, after a stale check: {held_state}; resumed the same trial from step {resumed}",
              facts={"state_while_held": held_state, "resumed_from_step": resumed})
    return tally(row, url, "mini", 1, [r.returncode], held_state == "RUNNING" and resumed > 0)


def password(tmp: Path, kind: str, pg) -> Row:
    """A password in the PostgreSQL URL, in both forms: it must appear nowhere the lab writes or prints."""
    import sqlalchemy

    secret = "hunter2secret"  # trust authentication accepts any password: the server runs, the secret travels
    rows, leaks, rcs = [], 0, []
    started = time.time()
    for i, form in enumerate(("user:password@", "?password=")):
        db = fresh_pg(pg, f"secret{i}")
        url = db.replace("postgres@", f"postgres:{secret}@") if form == "user:password@" else f"{db}?password={secret}"
        space = mini_space(tmp / form.strip("?:@="), storage=url, seeds=[0], budget={"steps": 2}) \
            if (tmp / form.strip("?:@=")).mkdir() is None else None
        lab = tmp / f"lab{i}"
        outputs = [lclab("sweep", space, "--lab", lab), lclab("studies", "--storage", url), lclab("trials", "mini", "--storage", url),
                   lclab("report", "mini", "--storage", url, "-o", lab / "report")]
        changed = yaml.safe_load(space.read_text())
        changed["axes"]["ratio"]["values"] = [4, 16]
        space.write_text(yaml.safe_dump(changed))
        outputs.append(lclab("sweep", space, "--lab", lab))  # refused: a different space for the same study
        rcs += [o.returncode for o in outputs]
        leaks += sum(secret in o.stdout + o.stderr for o in outputs)
        leaks += sum(secret.encode() in p.read_bytes() for p in lab.rglob("*") if p.is_file())
        engine = sqlalchemy.create_engine(db)
        with engine.connect() as conn:
            tables = [t for (t,) in conn.execute(sqlalchemy.text(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"))]
            dump = " ".join(str(r) for t in tables for r in conn.execute(sqlalchemy.text(f'SELECT * FROM "{t}"')))
        engine.dispose()
        leaks += secret in dump
        rows.append(form)
    row = Row("password in the PostgreSQL URL (both forms)", kind, expected=2, completed=2, exit=",".join(map(str, rcs)),
              seconds=time.time() - started, message=f"places the password appeared: {leaks} (outputs, lab files, database)",
              facts={"leaks": leaks})
    row.ok = leaks == 0 and rcs[-1] == 2 and all(rc == 0 for rc in rcs[:4])
    return row


FAULTS = {"kill9": (kill9, ["sqlite", "postgresql", "journal"]), "outage": (outage, ["postgresql"]),
          "scale": (scale, ["postgresql", "sqlite", "journal"]), "diverging": (diverging, ["sqlite"]),
          "full_disk": (full_disk, ["sqlite"]), "truncated": (truncated, ["-"]), "cold_cache": (cold_cache, ["sqlite"]),
          "slurm_held": (slurm_held, ["sqlite"]), "crash_fixed": (crash_fixed, ["sqlite"]),
          "rerun_in_grace": (rerun_in_grace, ["sqlite"]), "password": (password, ["postgresql"])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", help=f"comma-separated faults of {list(FAULTS)}")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folders (printed) for inspection")
    args = parser.parse_args()
    chosen = args.only.split(",") if args.only else list(FAULTS)
    try:
        pg = PostgresServer()
    except Unavailable as err:
        print(f"PostgreSQL rows not run: {err}")
        pg = None
    results = []
    try:
        for name in chosen:
            fn, kinds = FAULTS[name]
            for kind in kinds:
                if kind == "postgresql" and pg is None:
                    continue
                tmp = Path(tempfile.mkdtemp(prefix=f"lclab-fault-{name}-"))
                try:
                    row = fn(tmp, kind, pg)
                except Exception as err:  # a fault the suite itself could not stage is a row, not the end of the suite
                    row = Row(name, kind, message=f"suite error: {type(err).__name__}: {err}"[:300])
                print(f"{row.fault} [{kind}]: ok={row.ok} {row.message}", flush=True)
                results.append(row)
                if not args.keep:
                    shutil.rmtree(tmp, ignore_errors=True)
                else:
                    print(f"  kept {tmp}")
    finally:
        if pg is not None:
            pg.remove()
    columns = ["fault", "storage", "expected", "completed", "lost", "duplicated", "stuck", "retries", "exit", "s", "ok", "message"]
    report("faults", columns, [[r.fault, r.storage, r.expected, r.completed, r.lost, r.duplicated, r.stuck, r.retries,
                                r.exit, round(r.seconds, 1), r.ok, r.message] for r in results],
           {"details": [asdict(r) for r in results]})


if __name__ == "__main__":
    main()
