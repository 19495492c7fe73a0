"""The `lclab` command line. User errors print one paragraph and exit 2; they never show a traceback."""
from __future__ import annotations

import functools
import math
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from models import ConfigError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Architecture search for encoder-decoder context compressors (LCLMs).")
console = Console()
errors = Console(stderr=True)


def user_errors(fn):
    """Turn the errors a user can fix into one clear paragraph and a non-zero exit."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from trials import DivergedError

        try:
            return fn(*args, **kwargs)
        except ConfigError as err:
            errors.print(f"[bold red]error:[/] {err.render()}", highlight=False, soft_wrap=True)
            raise typer.Exit(2)
        except DivergedError as err:
            errors.print(f"[bold red]trial diverged:[/] {err}. Fix: lower the learning rates or raise warmup.",
                         highlight=False, soft_wrap=True)
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
    from trials import load_config, run_trial

    overrides = list(set_ or []) + ([f"output_dir={output_dir}"] if output_dir else [])
    cfg = load_config(config, overrides)
    try:
        result = run_trial(cfg, resume=resume)
    except ConfigError as err:  # found while loading data: still the config file's fault
        raise err if err.source else err.located(str(config)) from None
    console.print(summary_table(result.metrics, f"{cfg.name} (seed {cfg.seed})"))
    console.print(f"run directory: {result.run_dir}  (tensorboard --logdir {result.run_dir / 'tensorboard'})")


@app.command()
def version():
    """Print the lclab version."""
    from lclab import __version__

    console.print(__version__)
