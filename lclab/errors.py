"""The errors a user can fix, shared by every layer (a leaf module: it imports nothing of lclab).

The CLI turns each into one paragraph and a non-zero exit, never a traceback."""
from __future__ import annotations

from pathlib import Path

__all__ = ["ConfigError", "DivergedError", "SweepError", "in_range", "make_folder"]


class ConfigError(ValueError):
    """A user error in a configuration: names the field and the fix, never needs a traceback."""

    def __init__(self, field: str, problem: str, fix: str, source: str | None = None):
        self.field, self.problem, self.fix, self.source = field, problem, fix, source
        super().__init__(self.render())

    def render(self) -> str:
        where = f"{self.source}: " if self.source else ""
        # a problem or fix that already ends a sentence ("did you mean 'x'?") gets no second full stop
        end = lambda text: text if text.rstrip().endswith((".", "?", "!")) else f"{text}."  # noqa: E731
        fix = f" Fix: {end(self.fix)}" if self.fix else ""
        return f"{where}field '{self.field}': {end(self.problem)}{fix}"

    def located(self, source: str) -> "ConfigError":
        return type(self)(self.field, self.problem, self.fix, source)


def in_range(field: str, value: float, low: float | None = None, high: float | None = None, why: str = "") -> None:
    """A number outside [low, high] (either end may be open-ended) is a ConfigError naming the range."""
    if (low is not None and value < low) or (high is not None and value > high):
        problem, fix = ((f"must be from {low} to {high}", f"a value from {low} to {high}") if None not in (low, high) else
                        (f"must be at most {high}", f"{high} or less") if low is None else
                        ("must not be negative" if low == 0 else f"must be at least {low}", f"{low} or more"))
        raise ConfigError(field, f"{problem}, got {value}{f' ({why})' if why else ''}", f"set {field} to {fix}")


def make_folder(path: Path, field: str, fix: str) -> Path:
    """`mkdir -p` for a folder the user named (a lab, a run's output, a report): a path that cannot be one (a file in the
    way, no permission, a full disk) is theirs to fix, said in one line."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        blocker = next((p for p in (path, *path.parents) if p.exists() and not p.is_dir()), None)
        problem = (f"{path} is a file, not a folder" if blocker == path else
                   f"{blocker} is a file, so the folder {path} cannot be made" if blocker else
                   f"cannot create the folder {path} ({err.strerror or err})")
        raise ConfigError(field, problem, fix) from None
    return path


class DivergedError(RuntimeError):
    """Training loss became NaN/inf: the trial failed, the reason is recorded."""


class SweepError(RuntimeError):
    """A sweep that did not reach its target (a worker died, work is left): never reported as a success."""
