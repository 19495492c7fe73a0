"""Optuna's private API as lclab uses it (lclab.trials.optuna_internals) still works on the installed Optuna: an
upgrade that changes any of it fails here, by name, before it fails a sweep."""
import sqlalchemy
import optuna

from lclab.trials import optuna_internals as oi
from lclab.trials.db import open_storage


def test_the_private_api_lclab_uses_is_there(tmp_path):
    study = optuna.create_study(storage=open_storage(f"sqlite:///{tmp_path}/lab.db"))
    trial = study.ask()
    storage = oi.storage_of(study)
    assert isinstance(storage, optuna.storages.BaseStorage)
    assert storage.get_trial(oi.trial_id(trial)).number == trial.number
    again = oi.trial_of(study, oi.trial_id(trial))
    again.set_user_attr("seen", True)
    assert study.trials[0].user_attrs == {"seen": True}
    with oi.heartbeat(study, trial):  # Optuna's own heartbeat thread: beats while the block runs
        pass
    # the stale-trial query lclab filters (outages, requeued Slurm jobs) is what fail_stale_trials asks
    assert getattr(storage, oi.STALE_TRIAL_IDS)(study._study_id) == []
    import inspect
    assert f"storage.{oi.STALE_TRIAL_IDS}(" in inspect.getsource(optuna.storages.fail_stale_trials)
    study.tell(trial, 1.0)


def test_optunas_sql_schema_has_what_load_frame_reads(tmp_path):
    storage = open_storage(f"sqlite:///{tmp_path}/lab.db")
    optuna.create_study(storage=storage).optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=1)
    engine = oi.rdb_engine(storage)
    assert engine is not None and oi.rdb_engine(open_storage(str(tmp_path / "lab.journal"))) is None
    inspector = sqlalchemy.inspect(engine)
    for table, columns in oi.SQL_SCHEMA.items():
        have = {c["name"] for c in inspector.get_columns(table)}
        assert columns <= have, f"Optuna's table {table} lost {columns - have}"


def test_every_call_optunas_cache_makes_to_the_database_is_one_lclab_retries_through_an_outage():
    import inspect
    import re

    from optuna.storages import _cached_storage

    from lclab.trials.outage import CALLS

    called = set(re.findall(r"self\._backend\.(\w+)\(", inspect.getsource(_cached_storage)))
    without_a_query = {"get_heartbeat_interval", "get_heartbeat_stale_trial_callback", "delete_study"}
    assert called - without_a_query <= set(CALLS), f"Optuna's cache now also calls {called - without_a_query - set(CALLS)}"
    for name in CALLS:
        assert callable(getattr(optuna.storages.RDBStorage, name, None)), f"RDBStorage.{name} is gone"
