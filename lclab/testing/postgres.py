"""A throwaway PostgreSQL server from Debian's binaries, for tests and the fault benchmark: its own folder and
port, trust authentication, stoppable and restartable on the same port (a database restart)."""
from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time


class Unavailable(RuntimeError):
    """No PostgreSQL server can be started here (binaries missing, or the start failed)."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as_postgres(*cmd: str) -> list[str]:
    # PostgreSQL refuses to run as root
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else list(cmd)


class PostgresServer:
    """A throwaway PostgreSQL server from Debian's binaries, in its own folder and port; it can be stopped and
    started again on the same port (a database restart, for the outage tests)."""

    def __init__(self):
        bins = sorted(glob.glob("/usr/lib/postgresql/*/bin"))
        if not bins:
            raise Unavailable("PostgreSQL server binaries not found (apt install postgresql, or set LCLAB_TEST_PG_URL)")
        self.pg_ctl = f"{bins[-1]}/pg_ctl"
        self.root = tempfile.mkdtemp(prefix="lclab-pg-")
        os.chmod(self.root, 0o777)
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
        self.data, self.port = f"{self.root}/data", _free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        try:
            subprocess.run(_as_postgres(f"{bins[-1]}/initdb", "-D", self.data, "-U", "postgres", "--auth=trust", "-E",
                                        "UTF8", "--no-sync"), check=True, capture_output=True)
            self.start()
        except (subprocess.CalledProcessError, FileNotFoundError) as err:
            raise Unavailable(f"could not start PostgreSQL: {getattr(err, 'stderr', err)!r}") from None

    def start(self) -> None:
        subprocess.run(_as_postgres(self.pg_ctl, "-D", self.data, "-l", f"{self.root}/log", "-w", "start", "-o",
                                    f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off "
                                    "-c max_connections=200"), check=True, capture_output=True)
        deadline = time.time() + 20
        while True:
            try:
                import sqlalchemy

                sqlalchemy.create_engine(self.url).connect().close()
                return
            except Exception:
                if time.time() > deadline:
                    raise
                time.sleep(0.2)

    def stop(self) -> None:
        subprocess.run(_as_postgres(self.pg_ctl, "-D", self.data, "-m", "fast", "-w", "stop"), capture_output=True)

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)
