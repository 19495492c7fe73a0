"""Read studies back from the trial database: the tidy frame plus what each study searched.

Analysis reads only the trial database (through `trials.db`) and the artifacts its trials point at."""
from __future__ import annotations

import json
from dataclasses import dataclass, field

import optuna

from lclab.errors import ConfigError
from lclab.trials.db import load_frame, open_storage, redact, storage_url


@dataclass
class StudyInfo:
    name: str
    objectives: list[str]  # metric names, objective i is column `value` (i = 0) or `value_i`
    directions: list[str]  # "minimize" | "maximize"
    roles: dict[str, str]  # axis -> scientific | nuisance | fixed
    sampler: str = "unknown"
    budget: dict = field(default_factory=dict)
    base_point: dict = field(default_factory=dict)
    space_file: str = ""
    data_source: str = "unknown"  # synthetic | embedded | files | hub | mixed; unknown for older or plain studies
    fidelity_of: str | None = None  # the real-text twin this study is a proxy of

    @property
    def proxy(self) -> bool:
        """Whether the study ranks designs on a synthetic proxy, whose principles need a measured fidelity."""
        return self.data_source == "synthetic"

    @property
    def scientific(self) -> list[str]:
        return [a for a, r in self.roles.items() if r == "scientific"]

    def maximize(self, i: int = 0) -> bool:
        return self.directions[i] == "maximize"

    @staticmethod
    def made_by_lclab(rows) -> bool:
        """Whether a study's trials (its rows of the frame) store lclab trial configs, or came from plain Optuna."""
        return "config_hash" in rows and bool(rows["config_hash"].notna().any())


@dataclass
class Lab:
    storage: str  # redacted URL
    frame: "object"  # pandas DataFrame, one row per trial of every loaded study
    studies: dict[str, StudyInfo]
    store: "object" = None  # the Optuna storage, for what the frame leaves out (stored configs)

    def complete(self, study: str):
        f = self.frame
        return f[(f.study == study) & (f.state == "COMPLETE") & f.value.notna()] if "value" in f else f.iloc[:0]


def load(storage: str, studies: list[str] | None = None) -> Lab:
    """Load the given studies (default: all) from a storage URL or a path (`lab/lab.db`, `x.journal`).
    Raises ConfigError for a missing database, an unknown study, or a database without any study."""
    storage = storage_url(str(storage), ".")
    store = open_storage(storage, must_exist=True)
    summaries = optuna.get_all_study_summaries(store, include_best_trial=False)
    if not summaries:
        raise ConfigError("study", f"the trial database {redact(storage)} holds no study yet", "run a sweep first")
    stored = [s.study_name for s in summaries]
    names = list(studies or stored)
    twins = {_space(store, name).get("fidelity_of") for name in names if name in stored}
    names += sorted(t for t in twins if t in stored and t not in names)  # a proxy's real-text twin, for its fidelity
    frame = load_frame(store, names)
    return Lab(redact(storage), frame, {name: _info(store, name, frame) for name in names}, store)


def _space(store, name: str) -> dict:
    return store.get_study_user_attrs(store.get_study_id_from_name(name)).get("space") or {}


def trial_config(lab: Lab, study: str, number: int) -> dict | None:
    """The fully resolved trial config stored with a trial; None for a study lclab did not make (plain Optuna)."""
    trials = lab.store.get_all_trials(lab.store.get_study_id_from_name(study), deepcopy=False)
    return next(t.user_attrs.get("config") for t in trials if t.number == number)


def _info(store, name: str, frame) -> StudyInfo:
    study_id = store.get_study_id_from_name(name)
    attrs = store.get_study_user_attrs(study_id)
    directions = [d.name.lower() for d in store.get_study_directions(study_id)]
    space = attrs.get("space")
    if space:
        return StudyInfo(name, [o["metric"] for o in space["objectives"]], directions, space["axes"], space["sampler"],
                         space.get("budget", {}), space.get("base_point", {}), attrs.get("space_file", ""),
                         space.get("data_source", "unknown"), space.get("fidelity_of"))
    # studies from before the space summary was stored: the scientific axes are in every trial's key
    rows = frame[frame.study == name] if "study" in frame else frame
    keys = rows["scientific_key"].dropna() if "scientific_key" in rows else []
    scientific = set(json.loads(keys.iloc[0])) if len(keys) else set()
    params = [c.removeprefix("param.") for c in rows.columns if c.startswith("param.") and rows[c].notna().any()]
    roles = {p: "scientific" if p in scientific or not scientific else "nuisance" for p in params}
    return StudyInfo(name, [f"objective {i}" for i in range(len(directions))], directions, roles,
                     space_file=attrs.get("space_file", ""))
