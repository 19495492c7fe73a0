"""Every use lclab makes of Optuna's private API, in one place, with a check of each that fails loudly when an
Optuna upgrade changes them (`tests/trials/test_optuna_internals.py`; the version bound in pyproject.toml lets no
untested Optuna in).

- a study's storage and a trial's storage id: lclab asks and tells trials itself (Slurm workers keep a preempted
  trial RUNNING for the requeued job, and stale trials are failed and retried by id);
- the heartbeat thread Optuna runs only inside `study.optimize`, for workers that ask and tell themselves;
- the RDB storage behind Optuna's cache, and the SQL schema `load_frame` reads directly (Optuna's ORM path takes
  seconds for 10k trials)."""
from __future__ import annotations

import optuna

# the tables and columns of Optuna's RDB schema that lclab.trials.db reads
SQL_SCHEMA = {
    "studies": {"study_id", "study_name"},
    "trials": {"trial_id", "number", "study_id", "state", "datetime_start", "datetime_complete"},
    "trial_values": {"trial_id", "objective", "value", "value_type"},
    "trial_params": {"trial_id", "param_name", "param_value", "distribution_json"},
    "trial_user_attributes": {"trial_id", "key", "value_json"},
    "trial_intermediate_values": {"trial_id", "step"},
}


# the method of Optuna's heartbeat storages that lists a study's stale trials (lclab.trials.stale filters it)
STALE_TRIAL_IDS = "_get_stale_trial_ids"
# the private RDBStorage methods Optuna's cache in front of it calls (lclab.trials.outage retries them)
RDB_PRIVATE_CALLS = ("_create_new_trial", "_get_best_trial_id", "_get_trials", "_set_trial_param", STALE_TRIAL_IDS)


def storage_of(study: optuna.Study) -> optuna.storages.BaseStorage:
    return study._storage


def trial_id(trial: optuna.Trial | optuna.trial.FrozenTrial) -> int:
    """The storage's id of a trial (not its number within the study)."""
    return trial._trial_id


def trial_of(study: optuna.Study, storage_id: int) -> optuna.Trial:
    """A live trial for a storage id: a requeued job takes up the RUNNING trial it was training."""
    return optuna.trial.Trial(study, storage_id)


def heartbeat(study: optuna.Study, trial: optuna.Trial):
    """A context manager that beats for `trial` as `study.optimize` would (a no-op on storages without heartbeat)."""
    from optuna.storages._heartbeat import get_heartbeat_thread

    return get_heartbeat_thread(trial_id(trial), storage_of(study))


def rdb_engine(storage: optuna.storages.BaseStorage):
    """The SQLAlchemy engine of an RDB storage (behind Optuna's cache), or None for other storages."""
    rdb = getattr(storage, "_backend", storage)
    return rdb.engine if isinstance(rdb, optuna.storages.RDBStorage) else None
