"""Local worker processes fork from a server process that imported torch, Lightning and Optuna once: 32 workers
start in seconds, where each spawned one would import them again (about 3 s of CPU each, 95.7 s to the first of 32
trials on 2 cores). The server is a clean process (no CUDA, no threads), so forking it is safe.

The server outlives one sweep (there is one per Python process), so a worker first takes its parent's environment
and working directory as they are now, and only then imports the lab: the `LCLAB_*` settings read at import are
the parent's current ones, never those of whoever started the server."""
from __future__ import annotations

import importlib
import multiprocessing as mp
import os

PRELOAD = ["torch", "lightning", "optuna", "sqlalchemy"]  # heavy, and read no LCLAB_* setting


def context() -> mp.context.BaseContext:
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(PRELOAD)
    return ctx


def start(target: str, *args) -> mp.process.BaseProcess:
    """A started worker process running `target` ("package.module:function") with `args` (queues from `context()`)."""
    ctx = context()
    proc = ctx.Process(target=_boot, args=(dict(os.environ), os.getcwd(), target, args))
    proc.start()
    return proc


def _boot(env: dict, cwd: str, target: str, args: tuple) -> None:
    os.environ.clear()
    os.environ.update(env)
    os.chdir(cwd)
    module, name = target.split(":")
    getattr(importlib.import_module(module), name)(*args)
