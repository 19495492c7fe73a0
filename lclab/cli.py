"""The `lclab` command line. User errors print one paragraph and exit 2; they never show a traceback."""
from __future__ import annotations

import functools
import math
import time
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.markup import escape  # user text (URLs, fixes like 'lclab[postgres]') is never rich markup
from rich.table import Table

from lclab.errors import ConfigError, DivergedError, SweepError, make_folder

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Architecture search for encoder-decoder context compressors (LCLMs).")
console = Console()
errors = Console(stderr=True)


def user_errors(fn):
    """Turn the errors a user can fix into one clear paragraph and a non-zero exit."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except ConfigError as err:
            errors.print(f"[bold red]error:[/] {escape(err.render())}", highlight=False, soft_wrap=True)
            raise typer.Exit(2)
        except DivergedError as err:
            errors.print(f"[bold red]trial diverged:[/] {escape(str(err))}. Fix: lower the learning rates or raise warmup.",
                         highlight=False, soft_wrap=True)
            raise typer.Exit(1)
        except SweepError as err:
            errors.print(f"[bold red]sweep failed:[/] {escape(str(err))}", highlight=False, soft_wrap=True)
            raise typer.Exit(1)
    return wrapper


def _fmt(value) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "undefined"
        return f"{value:.4g}" if abs(value) < 1e5 else f"{value:.3e}"
    return str(value)


def summary_table(metrics: dict, title: str) -> Table:
    table = Table(title=title, show_lines=False)
    table.add_column("metric", style="cyan")
    table.add_column("value", justify="right")
    for key in sorted(metrics):
        table.add_row(key, _fmt(metrics[key]))
    return table


@app.command()
@user_errors
def train(
    config: Path = typer.Argument(..., help="trial config, e.g. configs/trial/tiny.yaml"),
    set_: Optional[list[str]] = typer.Option(None, "--set", help="override a field: --set model.ratio=8 (repeatable)"),
    resume: bool = typer.Option(False, help="continue from the run's last checkpoint if it exists"),
    output_dir: Optional[str] = typer.Option(None, help="where run directories go (default: the config's output_dir)"),
):
    """Run one pretraining trial and print every metric."""
    from lclab.trials import load_config

    overrides = list(set_ or []) + ([f"output_dir={output_dir}"] if output_dir else [])
    cfg = load_config(config, overrides)
    from lclab.trials import run_trial  # Lightning's import (~5 s) only once the config is known to be good

    try:
        result = run_trial(cfg, resume=resume)
    except ConfigError as err:  # found while loading data: still the config file's fault
        raise err if err.source else err.located(str(config)) from None
    console.print(summary_table(result.metrics, f"{cfg.name} (seed {cfg.seed})"))
    console.print(f"run directory: {result.run_dir}  (tensorboard --logdir {result.run_dir / 'tensorboard'})")


@app.command()
@user_errors
def parts(plugin: Optional[list[str]] = typer.Option(None, "--plugin", help="a plugin file or module to load first "
                                                                          "(repeatable), as a config's plugins: would")):
    """Every registered part, by design axis: its name, what it is, and where it comes from (lclab or a plugin)."""
    from lclab.models import ADAPTERS, BACKENDS, MODES, POOLINGS
    from lclab.plugins import load_plugins, resolve_plugin_paths
    from lclab.search_space.registry import PRUNERS, SAMPLERS
    from lclab.trials import TASKS

    load_plugins(resolve_plugin_paths(list(plugin or []), Path.cwd()), "--plugin")
    for registry in (POOLINGS, ADAPTERS, BACKENDS, MODES, TASKS, SAMPLERS, PRUNERS):
        table = Table(title=f"{registry.kind} (config field {registry.field})", title_justify="left")
        for col in ("name", "what it is", "from"):
            table.add_column(col)
        for name, _ in registry.items():
            table.add_row(name, escape(registry.description(name)), escape(registry.origin(name)))
        console.print(table)
    console.print("Add your own: a plugin file registering a subclass (README: Add your own design axis), named in a "
                  "config's or space's plugins:, or an installed package's entry point in the group lclab.<kind>.")


@app.command()
def version():
    """Print the lclab version."""
    from lclab import __version__

    console.print(__version__)


@app.command()
@user_errors
def sweep(
    space: Path = typer.Argument(..., help="a space file, e.g. search_space/presets/quickstart.yaml"),
    workers: int = typer.Option(1, min=1, help="local worker processes sharing the study"),
    lab: Path = typer.Option(Path("lab"), help="lab directory: lab.db, runs/, caches"),
    storage: Optional[str] = typer.Option(None, help="trial database URL or path, replacing the space's `storage:` "
                                                     "(default: LAB/lab.db)"),
    replicate_top: Optional[int] = typer.Option(None, min=1, help="re-run the best K configurations with --seeds new seeds"),
    seeds: int = typer.Option(2, min=1, help="new seeds per configuration for --replicate-top"),
    cluster: Optional[str] = typer.Option(None, help="run workers through submitit: a profile (slurm/profiles/NAME.yaml "
                                                     "or a path), or `local` / `debug`"),
    jobs: int = typer.Option(1, min=1, help="with --cluster: workers in the job array"),
    threads: int = typer.Option(0, min=0, help="with --cluster: CPU threads per worker (0: the profile's cpus_per_task)"),
    wait: bool = typer.Option(False, help="with --cluster slurm: follow the sweep until it is done"),
    retry_failed: bool = typer.Option(False, help="queue again every grid/ablation point whose trials crashed, even "
                                                  "past the retry cap (once the cause is fixed)"),
):
    """Run (or continue) a sweep over a design space until it reaches n_trials."""
    from rich.console import Group
    from rich.live import Live

    from lclab.search_space.space import load_space

    spec = load_space(space, storage)  # a bad space is refused before the sweep machinery is imported
    from lclab.search_space.local import run_sweep
    from lclab.search_space.study import counts, eta_s, target_trials, trained

    if cluster:
        _cluster_sweep(spec, lab, cluster, jobs, threads, wait, retry_failed)
        return
    started = time.time()

    def status(study):
        c, done, target = counts(study), trained(study), target_trials(spec, study)
        eta = eta_s(study, target, workers)
        left = f", ~{eta / 60:.1f} min left" if eta is not None else ", time left known after the first trial"
        infeasible = f", {c['INFEASIBLE']} infeasible" if c["INFEASIBLE"] else ""
        table = Table(title=f"sweep {spec.name}: {done}/{target} trained{infeasible}  ({time.time() - started:.0f} s{left}; "
                            f"logs in {lab / 'logs' / spec.name})")
        for key in STATES:
            table.add_column(key.lower(), justify="right")
        table.add_column("best", justify="right")
        table.add_row(*(str(c[k]) for k in STATES), _best(study))
        return Group(table, *_running_table(study, spec), *_infeasible_lines(study), *_failed_lines(study))

    try:
        with Live(console=console, refresh_per_second=1) as live:
            try:
                study = run_sweep(spec, lab, workers, on_tick=lambda s: live.update(status(s)),
                                  replicate=(replicate_top, seeds) if replicate_top else None, retry_failed=retry_failed,
                                  on_note=lambda m: console.print(f"[yellow]note:[/] {escape(m)}", highlight=False))
            except KeyboardInterrupt:
                errors.print("interrupted: completed trials are stored; run the same command to resume.")
                raise typer.Exit(130)
    finally:
        if not console.is_terminal:
            console.line()  # rich ends the live table's last state without a newline in a log or pipe
    console.print(summary_table({f"trials/{k.lower()}": v for k, v in counts(study).items()} | {"best": _best(study)},
                                f"sweep {spec.name}"))


def _cluster_sweep(spec, lab: Path, cluster: str, jobs: int, threads: int, wait: bool, retry_failed: bool) -> None:
    from optuna.trial import TrialState

    from lclab.search_space.recovery import fail_stale
    from lclab.search_space.study import counts, open_study, target_trials, trained
    from lclab.slurm.dispatch import FINISHED, Watcher, job_table, sacct, state_of, submit
    from lclab.slurm.profiles import load_profile

    profile = load_profile(cluster)
    submitted = submit(spec, lab, profile, jobs, threads or profile.cpus_per_task, retry_failed)
    console.print(f"submitted {len(submitted)} workers ({profile.executor}): {', '.join(j.job_id for j in submitted)}")
    if profile.executor == "slurm" and not wait:
        console.print(f"watch: lclab jobs {spec.name} --lab {lab}    cancel: lclab cancel {spec.name} --lab {lab}")
        return
    study = open_study(spec, lab.resolve(), worker_seed=0)  # submit() created it
    watcher = Watcher()
    target = target_trials(spec, study)
    while True:
        if profile.executor == "slurm":
            rows = watcher.states([j.job_id for j in submitted])
            fail_stale(study)  # a job that ended mid-trial leaves a RUNNING trial until its heartbeat is stale
            busy = {t.user_attrs.get("slurm_job") for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))}
            done = [state_of(rows, j.job_id)["state"] in FINISHED and j.job_id not in busy for j in submitted]
        else:
            done = [j.done() for j in submitted]
        c = counts(study)
        console.print(f"trials: {trained(study)}/{target} trained, {c['RUNNING']} running, {c['FAIL']} failed; "
                      f"jobs finished: {sum(done)}/{len(done)}", highlight=False)
        if all(done):
            break
        time.sleep(5)
    if profile.executor == "slurm":
        rows = job_table(study, sacct([j.job_id for j in submitted]))[-len(submitted):]
        failed = [(r["job"], r["state"] + (f": {r['error']}" if r["error"] else ""), r["log"]) for r in rows
                  if r["state"] != "COMPLETED"]
    else:
        failed = [(j.job_id, str(j.exception()).strip().splitlines()[-1][:300], j.paths.stderr) for j in submitted
                  if j.exception() is not None]
    for job_id, error, log in failed:
        errors.print(f"[bold red]job {job_id} failed:[/] {escape(f'{error} (log: {log})')}", highlight=False, soft_wrap=True)
    console.print(summary_table({f"trials/{k.lower()}": v for k, v in counts(study).items()} | {"best": _best(study)},
                                f"sweep {spec.name}"))
    if failed:
        raise typer.Exit(1)


@app.command("jobs")
@user_errors
def jobs_(study: str = typer.Argument(...), lab: Path = typer.Option(Path("lab")),
          storage: Optional[str] = typer.Option(None, help="URL or path (default: LAB/lab.db)")):
    """The study's Slurm jobs: state, node, the trial each is running, and for failed jobs the error and log."""
    from lclab.slurm.dispatch import job_table, load

    rows = job_table(load(study, lab, storage))
    if not rows:
        console.print(f"study {study} has no Slurm jobs (run lclab sweep SPACE --cluster PROFILE)")
        return
    table = Table(title=f"jobs of {study}")
    for col in rows[0]:
        table.add_column(col)
    for row in rows:
        style = "red" if row["error"] else None
        table.add_row(*(str(v) for v in row.values()), style=style)
    console.print(table)


@app.command()
@user_errors
def cancel(study: str = typer.Argument(...), lab: Path = typer.Option(Path("lab")),
           storage: Optional[str] = typer.Option(None, help="URL or path (default: LAB/lab.db)")):
    """Cancel the study's Slurm jobs; their running trials are queued again and resume from their checkpoints."""
    from lclab.slurm.dispatch import cancel as cancel_jobs, load

    cancelled, retried = cancel_jobs(load(study, lab, storage))
    console.print(f"cancelled jobs: {', '.join(cancelled) or 'none'}; trials queued to resume: "
                  f"{', '.join(map(str, retried)) or 'none'}. Resume with the same lclab sweep command.")


STATES = ("COMPLETE", "PRUNED", "INFEASIBLE", "FAIL", "RUNNING", "WAITING")


def _running_table(study, spec) -> list:
    """One row per running trial: its point, seed, phase (the one-off warm decoder shows as its own phase), step of
    steps, tokens, latest training loss and latest objective value, and how old that snapshot is."""
    from optuna.trial import TrialState

    running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    if not running:
        return []
    metric = spec.objectives[0]["metric"]
    table = Table(title="running trials", title_justify="left")
    for col in ("trial", "point", "seed", "phase", "step", "tokens", "train loss", metric, "updated"):
        table.add_column(col, justify="right" if col not in ("point", "phase") else "left")
    for t in running:
        p = t.user_attrs.get("progress") or {}
        point = ", ".join(f"{k}={v}" for k, v in t.params.items())
        fmt = lambda v: "-" if v is None else f"{v:.4g}"  # noqa: E731
        table.add_row(str(t.number), escape(point), str(t.user_attrs.get("seed", "")), p.get("phase", "starting"),
                      f"{p['step']}/{p['steps']}" if p else "-", f"{p['tokens']:,}" if p else "-", fmt(p.get("loss")),
                      fmt(p.get("objective")), f"{time.time() - p['at']:.0f} s ago" if p else "-")
    return [table]


def _infeasible_lines(study) -> list[str]:
    """Grid points that can never train, with the constraint each breaks (recorded, not counted as pruned)."""
    from optuna.trial import TrialState

    found = {}
    for t in study.get_trials(deepcopy=False, states=(TrialState.PRUNED,)):
        if "infeasible" in t.user_attrs:
            found.setdefault(t.user_attrs["infeasible"], []).append(", ".join(f"{k}={v}" for k, v in t.params.items()))
    return [f"[yellow]infeasible[/] {escape('; '.join(sorted(set(points))) + ': ' + reason)}" for reason, points in found.items()]


def _failed_lines(study, shown: int = 8) -> list[str]:
    """Failed trials with their reasons, grouped: divergences (a result of the configuration) and crashes (a cause
    to fix); a failure whose point has since completed (a retry, a re-run after the fix) is not listed."""
    from optuna.trial import TrialState

    from lclab.search_space.study import diverged

    point = lambda t: (sorted(t.params.items()), t.user_attrs.get("seed"))  # noqa: E731
    settled = [point(t) for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))]
    found = {}
    for t in study.get_trials(deepcopy=False, states=(TrialState.FAIL,)):
        if "fail_reason" in t.user_attrs and "duplicate_of" not in t.user_attrs and point(t) not in settled:
            kind = "diverged" if diverged(t) else "undefined" if t.user_attrs.get("undefined_objective") else "crashed"
            found.setdefault((kind, str(t.user_attrs["fail_reason"]).splitlines()[0][:200]), []).append(t.number)
    lines = [f"[red]{kind}[/] trial(s) {', '.join(map(str, numbers[:shown]))}{' …' if len(numbers) > shown else ''}: "
             f"{escape(reason)}" for (kind, reason), numbers in found.items()]
    return lines[:shown] + ([f"… {len(lines) - shown} more reasons: lclab trials {study.study_name} --where \"state == 'FAIL'\""]
                            if len(lines) > shown else [])


def _best(study) -> str:
    try:
        if len(study.directions) > 1:
            return f"{len(study.best_trials)} Pareto-optimal"
        return f"{study.best_value:.4g} (trial {study.best_trial.number})"
    except ValueError:
        return "-"


@app.command()
@user_errors
def studies(lab: Path = typer.Option(Path("lab")), storage: Optional[str] = typer.Option(None, help="URL or path")):
    """Every study in the trial database with counts by state and its best value."""
    import optuna

    from lclab.search_space.study import counts
    from lclab.trials.db import open_storage, storage_url

    store = open_storage(storage_url(storage, lab), must_exist=True)
    table = Table(title="studies")
    for col in ("study", *(state.lower() for state in STATES), "best"):  # waiting too: queued points not yet trained
        table.add_column(col)
    for summary in optuna.get_all_study_summaries(store, include_best_trial=False):
        study = optuna.load_study(study_name=summary.study_name, storage=store)
        c = counts(study)
        table.add_row(summary.study_name, *(str(c[k]) for k in STATES), _best(study))
    console.print(table)


@app.command()
@user_errors
def trials(
    study: str = typer.Argument(...),
    lab: Path = typer.Option(Path("lab")),
    storage: Optional[str] = typer.Option(None, help="URL or path (default: LAB/lab.db)"),
    where: Optional[str] = typer.Option(None, help="e.g. \"pooling == 'mean' and state == 'COMPLETE'\""),
    sort: Optional[str] = typer.Option(None, help="column to sort by (prefix - for descending)"),
    columns: Optional[str] = typer.Option(None, help="comma-separated columns"),
    limit: Optional[int] = typer.Option(None, min=1),
    format: str = typer.Option("table", help="table | csv | json | parquet"),
    output: Optional[Path] = typer.Option(None, "-o", help="write to a file instead of the terminal"),
):
    """Query a study's trials: filter, sort, pick columns, export."""
    from lclab.search_space.expr import Expression, ExpressionError
    from lclab.trials.db import load_frame, storage_url

    frame = load_frame(storage_url(storage, lab), [study])

    def matches(expr: Expression, row: dict) -> bool:
        try:
            return bool(expr(row))
        except TypeError as err:
            if any(row.get(name) is None for name in expr.names):  # a trial without the value (failed, running): no match
                return False
            raise ExpressionError(f"cannot evaluate '{expr.source}' on trial {row.get('number')}: {err}") from None

    if where and not frame.empty:
        short = {c: c.removeprefix("param.") for c in frame.columns}
        names = sorted(set(short.values()))
        try:
            expr = Expression(where)
            keep = [matches(expr, {short[c]: v for c, v in row.items()} | row) for row in frame.to_dict("records")]
        except ExpressionError as err:
            bare = sorted((n for n in {*names, *frame.columns} if not n.isidentifier() and n in where
                           and f"`{n}`" not in where), key=len)
            hint = ""
            if bare and bare[-1].startswith("param.") and bare[-1].removeprefix("param.").isidentifier():
                hint = f"; an axis goes by its name alone: {bare[-1].removeprefix('param.')}"
            elif bare:
                hint = f"; a name holding / or . goes in backquotes: `{bare[-1]}`"
            raise ConfigError("--where", f"{err}{hint}", f"use columns of the study: {', '.join(names)}") from None
        frame = frame[keep]

    def named(option: str, names: list[str]) -> list[str]:  # a column by its name, an axis also without "param."
        missing = [c for c in names if c not in frame.columns and f"param.{c}" not in frame.columns]
        if missing:
            raise ConfigError(option, f"unknown column(s) {missing}", f"use some of {sorted(frame.columns)}")
        return [c if c in frame.columns else f"param.{c}" for c in names]

    if sort:
        frame = frame.sort_values(named("--sort", [sort.lstrip("-")]), ascending=not sort.startswith("-"))
    if columns:
        frame = frame[named("--columns", [c.strip() for c in columns.split(",")])]
    if limit:
        frame = frame.head(limit)
    if format not in ("table", "csv", "json", "parquet"):
        raise ConfigError("--format", f"unknown format '{format}'", "use table, csv, json or parquet")
    if format == "parquet" and output is None:
        raise ConfigError("--format", "parquet needs a file", "add -o trials.parquet")
    text = None if format == "parquet" else {
        "csv": lambda: frame.to_csv(index=False), "json": lambda: frame.to_json(orient="records", indent=1),
        "table": lambda: frame.to_string(index=False)}[format]()
    if output is None:
        console.print(text, highlight=False, soft_wrap=True)
        return
    fix = f"name a file in a folder you can write to, e.g. -o trials.{format if format != 'table' else 'txt'}"
    if output.is_dir():
        raise ConfigError("-o", f"{output} is a folder", fix)
    make_folder(output.parent, "-o", fix)
    try:
        frame.to_parquet(output) if text is None else output.write_text(text)
    except OSError as err:
        raise ConfigError("-o", f"cannot write {output} ({err.strerror or err})", fix) from None


@app.command()
@user_errors
def report(
    studies: list[str] = typer.Argument(..., help="one or more study names"),
    output: Path = typer.Option(..., "-o", help="report folder, e.g. reports/quickstart"),
    lab: Path = typer.Option(Path("lab")),
    storage: Optional[str] = typer.Option(None, help="URL or path (default: LAB/lab.db)"),
    objective: int = typer.Option(0, min=0, help="which objective of a multi-objective study"),
    target_flops: Optional[float] = typer.Option(None, help="extrapolate the scaling fits to this training compute"),
    min_effect: Optional[float] = typer.Option(None, help="smallest effect of interest for null results (default: seed sd)"),
    include_unlearned: bool = typer.Option(False, help="keep trials that did not learn (at chance, or no better than no "
                                                       "context) in the estimates; by default they are left out and named"),
):
    """Design principles from the trial database: HTML + Markdown report, recipe.yaml, principles.json."""
    from lclab.analysis.load import load
    from lclab.analysis.report import build
    from lclab.trials.db import storage_url

    for option, value in (("--target-flops", target_flops), ("--min-effect", min_effect)):
        if value is not None and not value > 0:
            raise ConfigError(option, f"{value} is not a positive number", f"give {option} a value above 0, or leave it out")
    started = time.perf_counter()
    with console.status("analysing trials"):
        lab_data = load(storage_url(storage, lab), studies)
        paths = build(lab_data, studies, output, objective, target_flops, min_effect, include_unlearned)
    console.print(f"report written in {time.perf_counter() - started:.1f} s:")
    for kind, path in paths.items():
        console.print(f"  {kind:<10} {path}")
