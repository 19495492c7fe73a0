"""The trial database is Optuna's storage: open it by URL or path, and load it as one tidy DataFrame.

- a path ending in .db, or sqlite:///...: SQLite (the default, `lab.db` in the lab directory)
- postgresql://...: PostgreSQL (credentials from the environment or ~/.pgpass, never in the URL we store)
- a path ending in .journal / .log: Optuna's journal file (clusters without a database server; not NFS-safe SQLite)
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import optuna

from lclab.errors import ConfigError, make_folder

from .optuna_internals import rdb_engine

# a worker killed without warning is noticed once its heartbeat is GRACE seconds old (tests shorten both)
HEARTBEAT_S = int(os.environ.get("LCLAB_HEARTBEAT_S", 10))
GRACE_S = int(os.environ.get("LCLAB_GRACE_S", 30))
# a trial whose worker dies (or a grid point whose trials crash) is retried at most this many times in a row, on every storage
MAX_RETRIES = int(os.environ.get("LCLAB_MAX_RETRIES", 3))
# how long a worker waits out a database server it cannot reach (a restart, a failover) before giving up
OUTAGE_S = float(os.environ.get("LCLAB_STORAGE_OUTAGE_S", 600))


SQLITE_SUFFIXES = (".db", ".sqlite", ".sqlite3")
JOURNAL_SUFFIXES = (".journal", ".log")


def storage_url(spec: str | None, lab_dir: str | Path) -> str:
    """The storage a `--storage`/`storage:` value names: a URL as is; a path (relative to the lab directory)
    by its suffix: .db / .sqlite / .sqlite3 is SQLite, .journal / .log is a journal file."""
    if not spec:
        return f"sqlite:///{Path(lab_dir).resolve() / 'lab.db'}"
    kinds = (f"name a SQLite file ({' / '.join(SQLITE_SUFFIXES)}), a journal file ({' / '.join(JOURNAL_SUFFIXES)}) "
             "or give a URL (sqlite:///PATH, postgresql://USER@HOST/DB)")
    if "://" in spec:
        from sqlalchemy.engine.url import make_url
        from sqlalchemy.exc import ArgumentError

        try:
            url = make_url(spec)
            url.get_dialect()
        except ArgumentError as err:  # unparsable, or a scheme SQLAlchemy has no dialect for
            raise ConfigError("storage", f"'{redact(spec)}' names no database kind '{spec.split('://')[0]}' ({err})",
                              kinds) from None
        if url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:"):
            raise ConfigError("storage", f"'{spec}' is an in-memory SQLite database: every trial would vanish with the "
                                         "command, and each worker would see a database of its own", kinds)
        return spec
    path = Path(spec) if Path(spec).is_absolute() else Path(lab_dir) / spec
    if path.suffix in JOURNAL_SUFFIXES:
        return str(path.resolve())
    if path.suffix in SQLITE_SUFFIXES:
        return f"sqlite:///{path.resolve()}"
    raise ConfigError("storage", f"cannot tell what kind of trial database '{spec}' is", kinds)


def open_storage(url: str, must_exist: bool = False) -> optuna.storages.BaseStorage:
    """An Optuna storage with heartbeats: a trial whose worker died is failed and retried (keeping its
    intermediate values) once its heartbeat is older than the grace period. `url` is a URL or a path
    (see `storage_url`).

    Readers pass must_exist: a mistyped path must not silently become a new, empty database."""
    import warnings

    from optuna.storages import RetryHeartbeatStaleTrialCallback

    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    url = storage_url(url, ".")
    local = Path(url.removeprefix("sqlite:///")) if url.startswith("sqlite:///") or "://" not in url else None
    if must_exist and local is not None and not local.is_file():
        here = Path(local.name)  # `--storage x.db` beside the user, read (as documented) from the lab directory
        fix = (f"a relative --storage path is read from the lab directory; for the {here} here, pass --storage "
               f"{here.resolve()} or --lab ." if here.is_file() and here.resolve() != local else
               "run a sweep first (lclab sweep SPACE.yaml), or pass --lab/--storage pointing at an existing one")
        raise ConfigError("storage", f"no trial database at {local}", fix)
    if local is not None:
        make_folder(local.parent, "storage", "point --lab or --storage at a folder you can write to")
        if "://" not in url and local.is_file():
            _check_journal(local)

    try:
        if "://" not in url:
            from optuna.storages.journal import JournalFileBackend

            return optuna.storages.JournalStorage(JournalFileBackend(url))
        kwargs = {"pool_pre_ping": True}  # a connection from before a server restart is replaced, not used
        if url.startswith("sqlite"):
            kwargs = {"connect_args": {"timeout": 120}}  # several local workers wait instead of "database is locked"
        storage = optuna.storages.RDBStorage(
            url, engine_kwargs=kwargs, heartbeat_interval=HEARTBEAT_S, grace_period=GRACE_S,
            heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRIES, inherit_intermediate_values=True))
        from .stale import filter_stale_trials

        if url.startswith("sqlite"):
            _serialize_sqlite(storage.engine)
            filter_stale_trials(storage)
        else:
            from .outage import survive_outages

            filter_stale_trials(storage, survive_outages(storage, redact(url)))
        return storage
    except ImportError as err:  # SQLAlchemy found no driver for the URL's database (Optuna re-raises it)
        missing = getattr(err.__cause__, "name", None) or getattr(err, "name", None) or "the driver module"
        extra = " with pip install 'lclab[postgres]' (pip install -e '.[postgres]' in a checkout)" if "postgres" in url else ""
        raise ConfigError("storage", f"the database driver for {redact(url)} is not installed ({missing} is missing)",
                          f"install it{extra}") from None
    except (optuna.exceptions.StorageInternalError, _sqlalchemy_error(), ValueError) as err:  # refused, bad URL, not a database
        if local is None:
            fix = "check that the server is running and the URL is right (credentials belong in the environment or ~/.pgpass)"
        elif "not a database" in str(err):
            fix = "point --lab or --storage at a database a sweep wrote"
        else:
            fix = f"check that you can read and write {local}"
        raise ConfigError("storage", f"cannot open the trial database {redact(url)} ({type(err).__name__}: {str(err).splitlines()[0][:200]})",
                          fix) from None


def _check_journal(path: Path) -> None:
    """Refuse a file that is not an Optuna journal: Optuna would read it as empty (its last unreadable line is taken for
    a write in progress) and append trials after it, which leaves neither readable."""
    with open(path, "rb") as f:
        first = f.readline(1 << 20)
    if not first.endswith(b"\n") and first[:1] in (b"", b"{"):
        return  # empty, or the first record still being written by another worker
    try:
        record = json.loads(first)
    except ValueError:
        record = None
    ok = isinstance(record, dict) and "op_code" in record
    if not ok:
        raise ConfigError("storage", f"{path} is not an Optuna journal (its first line is no journal record)",
                          "point --storage at a journal a sweep wrote, or at a new file name")


def _sqlalchemy_error() -> type:
    from sqlalchemy.exc import SQLAlchemyError

    return SQLAlchemyError


def _serialize_sqlite(engine) -> None:
    """Make every SQLite transaction take the write lock up front (BEGIN IMMEDIATE).

    pysqlite starts transactions lazily, so Optuna's read-then-update of a WAITING trial is not atomic
    and two workers can both claim the same enqueued trial ("Cannot tell a COMPLETE trial").
    SQLite has no SELECT ... FOR UPDATE; taking the lock at BEGIN gives the same guarantee."""
    from sqlalchemy import event

    @event.listens_for(engine, "connect")
    def _autocommit_driver(dbapi_connection, _record):
        dbapi_connection.isolation_level = None  # let SQLAlchemy's BEGIN below start transactions

    @event.listens_for(engine, "begin")
    def _begin_immediate(connection):
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    engine.dispose()  # pooled connections made before the hooks would bypass them


def redact(url: str) -> str:
    """The URL without its password (user:password@host, or a password=... query parameter), for messages and logs.
    A URL that carries no password is returned unchanged."""
    import re

    url = re.sub(r"(://[^/@:]*):[^/@]*@", r"\1:***@", url)
    return re.sub(r"(?i)([?&]password=)[^&]*", r"\1***", url)


# a trial's user attribute that marks it pruned before it trained, shown as its own state (the attribute upper-cased):
# a point that breaks a constraint, or a sample two workers drew racing for an enumerated space's last point
NEVER_TRAINED = ("infeasible", "surplus")


def load_frame(storage: str | optuna.storages.BaseStorage, studies: list[str] | None = None):
    """One row per trial of the given studies (all by default): state, objective values, params as
    `param.<axis>`, metrics as `<metric>` (e.g. `val/loss_compressed`), and system columns.

    On SQL storages the tables are read directly (Optuna's ORM path takes seconds for 10k trials)."""
    storage = open_storage(storage, must_exist=True) if isinstance(storage, str) else storage
    engine = rdb_engine(storage)
    if engine is not None:
        frame, names = _frame_from_sql(engine, studies)
    else:
        frame, names = _frame_from_api(storage, studies)
    if not frame.empty and "value_0" in frame:
        frame = frame.rename(columns={"value_0": "value"})
    for attr in NEVER_TRAINED:  # recorded as pruned by Optuna, but never trained: say so
        if not frame.empty and attr in frame:
            frame.loc[(frame.state == "PRUNED") & frame[attr].notna(), "state"] = attr.upper()
    if not frame.empty and "scientific_key" in frame and "value" in frame:
        frame["nuisance_best"] = _nuisance_best(frame, storage, names)
    return frame


def _unknown(name: str, known) -> ConfigError:
    return ConfigError("study", f"no study named '{name}' in this database",
                       f"use one of {sorted(known)}" if known else "run a sweep first")


def _frame_from_api(storage, studies):
    import pandas as pd

    known = [s.study_name for s in optuna.get_all_study_summaries(storage, include_best_trial=False)]
    names = studies or known
    rows = []
    for name in names:
        if name not in known:
            raise _unknown(name, known)
        for t in storage.get_all_trials(storage.get_study_id_from_name(name), deepcopy=False):
            attrs = t.user_attrs
            row = {"study": name, "number": t.number, "state": t.state.name,
                   "duration_s": t.duration.total_seconds() if t.duration else None,
                   **{f"value_{i}": v for i, v in enumerate(t.values or [])},
                   **{f"param.{k}": v for k, v in t.params.items()},
                   **({"last_reported_at": max(t.intermediate_values)} if t.intermediate_values else {})}
            for key, value in attrs.items():
                _attribute(row, key, value)
            rows.append(row)
    return pd.DataFrame(rows), names


def _frame_from_sql(engine, studies):
    import json

    import pandas as pd
    from optuna.distributions import json_to_distribution

    with engine.connect() as conn:
        known = dict(pd.read_sql("SELECT study_id, study_name FROM studies", conn).values[:, ::-1].tolist())
        names = studies or list(known)
        for name in names:
            if name not in known:
                raise _unknown(name, known)
        ids = ",".join(str(int(known[n])) for n in names) or "NULL"
        trials = pd.read_sql(f"SELECT trial_id, number, study_id, state, datetime_start, datetime_complete FROM trials "
                             f"WHERE study_id IN ({ids})", conn, parse_dates=["datetime_start", "datetime_complete"])
        where = f"WHERE trial_id IN (SELECT trial_id FROM trials WHERE study_id IN ({ids}))"
        values = pd.read_sql(f"SELECT trial_id, objective, value, value_type FROM trial_values {where}", conn)
        params = pd.read_sql(f"SELECT trial_id, param_name, param_value, distribution_json FROM trial_params {where}", conn)
        attrs = pd.read_sql(f"SELECT trial_id, key, value_json FROM trial_user_attributes {where}", conn)
        steps = pd.read_sql(f"SELECT trial_id, MAX(step) AS last_reported_at FROM trial_intermediate_values {where} "
                            "GROUP BY trial_id", conn)
    study_name = {v: k for k, v in known.items()}
    rows = {tid: {"study": study_name[sid], "number": num, "state": str(state).split(".")[-1],
                  "duration_s": (end - start).total_seconds() if pd.notna(start) and pd.notna(end) else None}
            for tid, num, sid, state, start, end in trials.itertuples(index=False)}
    inf = {"INF_POS": float("inf"), "INF_NEG": float("-inf")}
    for tid, objective, value, kind in values.itertuples(index=False):
        rows[tid][f"value_{objective}"] = inf.get(str(kind).split(".")[-1], value)
    dists = {}
    for tid, name, internal, dist_json in params.itertuples(index=False):
        dist = dists.get(dist_json) or dists.setdefault(dist_json, json_to_distribution(dist_json))
        rows[tid][f"param.{name}"] = dist.to_external_repr(internal)
    for tid, key, value_json in attrs.itertuples(index=False):
        if key != "config":
            _attribute(rows[tid], key, json.loads(value_json))
    for tid, last in steps.itertuples(index=False):
        rows[tid]["last_reported_at"] = last
    frame = pd.DataFrame(list(rows.values()))
    if not frame.empty:
        frame = frame.sort_values(["study", "number"], ignore_index=True)
    return frame, names


def _attribute(row: dict, key: str, value) -> None:
    """One user attribute into a frame row as flat scalars, so CSV and parquet exports read cleanly: metrics by
    their own names, a mapping as `key.field` columns (`code_version.commit`), a list as JSON text.
    The stored config is left out (it is the run's config.yaml; `analysis.load.trial_config` reads it)."""
    import json

    if key == "config":
        return
    if key == "metrics":
        row.update(value)
    elif isinstance(value, dict):
        for sub, v in value.items():
            row[f"{key}.{sub}"] = json.dumps(v) if isinstance(v, (dict, list)) else v
    elif isinstance(value, list):
        row[key] = json.dumps(value)
    else:
        row[key] = value


def _nuisance_best(frame, storage, names):
    """True for the trial that scores its scientific configuration (per seed): its best nuisance setting."""
    import pandas as pd

    best = pd.Series(False, index=frame.index)
    for name in names:
        maximize = storage.get_study_directions(storage.get_study_id_from_name(name))[0].name == "MAXIMIZE"
        done = frame[(frame.study == name) & (frame.state == "COMPLETE") & frame.value.notna()]
        if done.empty:
            continue
        pick = done.groupby(["scientific_key", "seed"])["value"].idxmax() if maximize else \
            done.groupby(["scientific_key", "seed"])["value"].idxmin()
        best[pick.values] = True
    return best


def tokens_spent(frame) -> float:
    """Tokens a sweep trained: completed trials' full budget, pruned ones up to where they stopped."""
    if "duplicate_of" in frame:  # a configuration settled by an earlier trial was copied, not trained
        frame = frame[frame["duplicate_of"].isna()]
    if "train/tokens_seen" not in frame:  # not an lclab study (plain Optuna): tokens were never recorded
        return float("nan")
    done = frame[frame.state == "COMPLETE"]["train/tokens_seen"].sum()
    pruned = frame[frame.state == "PRUNED"]
    return float(done + (pruned["pruned_at_tokens"].sum() if len(pruned) and "pruned_at_tokens" in pruned else 0))
