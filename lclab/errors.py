"""The errors a user can fix, shared by every layer (a leaf module: it imports nothing of lclab).

The CLI turns each into one paragraph and a non-zero exit, never a traceback."""
from __future__ import annotations

__all__ = ["ConfigError", "DivergedError", "SweepError"]


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


class DivergedError(RuntimeError):
    """Training loss became NaN/inf: the trial failed, the reason is recorded."""


class SweepError(RuntimeError):
    """A sweep that did not reach its target (a worker died, work is left): never reported as a success."""
