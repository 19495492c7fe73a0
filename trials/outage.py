"""A database server that goes away for a while (a restart, a failover) does not end a sweep.

Every call a worker makes to a server-backed trial database waits out a lost connection with backoff, for up to
`OUTAGE_S` seconds (`LCLAB_STORAGE_OUTAGE_S`), then fails with one message that names the storage. Training runs on
meanwhile: only a call to the database (a report, a heartbeat, the end of a trial) waits, and it lands once the
server is back, so nothing reported is lost. For a grace period after an outage this process fails no trial as
stale (`lclab.trials.stale`): other workers' heartbeats could not be recorded while the server was down."""
from __future__ import annotations

import functools
import inspect
import sys
import time

import optuna
from optuna.trial import TrialState
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError  # loaded already: only RDB storages get here

from lclab.errors import ConfigError

from .db import GRACE_S, HEARTBEAT_S, OUTAGE_S
from .optuna_internals import RDB_PRIVATE_CALLS

FIRST_WAIT_S, MAX_WAIT_S = 0.5, 5.0  # the backoff; its cap keeps heartbeats well inside the grace once back
# the storage calls a worker makes, directly or through Optuna's cache; a retry of each is harmless
# (set_trial_state_values is checked below)
CALLS = (*RDB_PRIVATE_CALLS, "create_new_study", "get_study_id_from_name", "get_study_name_from_id", "get_study_directions",
         "get_study_user_attrs", "get_study_system_attrs", "set_study_user_attr", "set_study_system_attr",
         "get_all_studies", "create_new_trial", "set_trial_param", "get_trial_id_from_study_id_trial_number",
         "get_trial_param", "set_trial_state_values", "set_trial_intermediate_value", "set_trial_user_attr",
         "set_trial_system_attr", "get_trial_user_attrs", "get_trial_system_attrs", "get_trial", "get_all_trials",
         "get_best_trial", "record_heartbeat")


def connection_lost(err: BaseException | None) -> bool:
    """Whether `err`, or an error it was raised from or while handling, says the server could not be reached or
    dropped the connection, as opposed to a bad query or bad data, which no wait would mend. The chain matters:
    when a connection drops mid-query Optuna falls back to a second query on the same session, which fails with
    SQLAlchemy's PendingRollbackError, and wraps that in a StorageInternalError."""
    seen = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        if isinstance(err, DBAPIError) and (isinstance(err, (OperationalError, InterfaceError))
                                            or err.connection_invalidated):
            return True
        err = err.__cause__ or err.__context__
    return False


class Outages:
    """The outages one storage has seen in this process: when the last one ended, for the stale-trial grace."""

    def __init__(self, name: str, storage: optuna.storages.BaseStorage):
        self.name, self.storage, self.ended_at = name, storage, float("-inf")

    def call(self, fn, name: str, *args, **kwargs):
        began, wait = None, FIRST_WAIT_S
        while True:
            try:
                result = fn(*args, **kwargs)
            except optuna.exceptions.UpdateFinishedTrialError:
                # the state change went through just before the connection broke: the retry finds it done
                if began is not None and name == "set_trial_state_values" and self._already(fn, args, kwargs):
                    result = True
                else:
                    raise
            except (optuna.exceptions.StorageInternalError, DBAPIError) as err:
                if not connection_lost(err):
                    raise
                now = time.monotonic()
                if began is None:
                    began = now
                    self._say(f"the trial database {self.name} cannot be reached ({_first_line(err)}); "
                              f"retrying for up to {OUTAGE_S:.0f} s")
                if now - began > OUTAGE_S:
                    raise ConfigError("storage", f"the trial database {self.name} has been unreachable for "
                                      f"{now - began:.0f} s ({_first_line(err)})",
                                      "start the database server again and re-run the same command: finished trials are "
                                      "kept and running ones resume from their checkpoints (LCLAB_STORAGE_OUTAGE_S sets how "
                                      "long workers wait)") from None
                time.sleep(wait)
                wait = min(2 * wait, MAX_WAIT_S)
                continue
            if began is not None:
                self.ended_at = time.monotonic()
                self._say(f"the trial database {self.name} is back after {time.monotonic() - began:.0f} s")
            return result

    def _already(self, fn, args, kwargs) -> bool:
        """Whether the trial is already in the state a `set_trial_state_values(trial_id, state, ...)` asked for
        (Optuna passes `state` by keyword, so the call is bound to its signature)."""
        call = inspect.signature(fn).bind(*args, **kwargs).arguments
        return TrialState(self.storage.get_trial(call["trial_id"]).state) == call["state"]

    def recent(self) -> bool:
        """Whether an outage ended within the heartbeat grace: live workers' heartbeats could not land during it."""
        return time.monotonic() - self.ended_at < GRACE_S + 2 * HEARTBEAT_S

    @staticmethod
    def _say(line: str) -> None:
        print(f"[lclab] {line}", file=sys.stderr, flush=True)


def survive_outages(storage: optuna.storages.RDBStorage, name: str) -> Outages:
    """Make every call of `storage` a worker uses wait out a lost connection (see the module's docstring). The
    storage stays the RDBStorage Optuna expects (its caching and heartbeats keep working): the retrying calls are
    set on the instance."""
    outages = Outages(name, storage)
    for call in CALLS:
        fn = getattr(storage, call)
        setattr(storage, call, functools.wraps(fn)(functools.partial(outages.call, fn, call)))
    return outages


def _first_line(err: BaseException) -> str:
    cause = err.__cause__ or err
    return f"{type(cause).__name__}: {(str(cause).strip().splitlines() or [''])[0][:160]}"
