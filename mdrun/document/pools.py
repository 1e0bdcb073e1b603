"""Where units run: a bounded process pool on this machine, or a Dask distributed cluster.

Both are `concurrent.futures.Executor`s, so `parallel.SessionDispatch` has one code path. The
pool's processes are spawned, never forked: a forked copy of a process that holds threads or
kernel sockets is not safe. Dask is imported only when asked for (`mdrun[dask]`).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
from collections.abc import Iterator
from concurrent.futures import Executor, ProcessPoolExecutor

from mdrun.errors import UsageError

SCHEDULER_ENVIRONMENT_VARIABLE = "MDRUN_DASK_SCHEDULER"
"""The Dask scheduler's address when `--scheduler` is not given."""


def default_jobs() -> int:
    """The number of cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def threads_per_kernel(jobs: int) -> int:
    """The cores each of `jobs` kernels running at once may use (at least one)."""
    return max(1, default_jobs() // max(1, jobs))


@contextlib.contextmanager
def process_pool(jobs: int) -> Iterator[Executor]:
    """At most `jobs` worker processes, shut down (and waited for) on the way out."""
    # spawn rather than forkserver: a forkserver keeps the environment it started with, and
    # kernels must see this process's (the thread counts the user set).
    context = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(max_workers=jobs, mp_context=context)
    try:
        yield pool
    except BaseException:
        # Interrupted, or an error: sessions not started yet are dropped, not waited for.
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True)


@contextlib.contextmanager
def dask_executor(address: str | None) -> Iterator[Executor]:
    """A Dask cluster's executor (`Client.get_executor`); the client is closed on the way out.

    Tasks are not pure: a document's session is evaluated afresh each time it is sent, never
    taken from a result the scheduler still holds from an earlier command."""
    address = address or os.environ.get(SCHEDULER_ENVIRONMENT_VARIABLE)
    if not address:
        raise UsageError(
            f"--executor dask needs the scheduler's address: --scheduler ADDRESS or "
            f"${SCHEDULER_ENVIRONMENT_VARIABLE} (tcp://host:8786)"
        )
    try:
        from distributed import Client
    except ImportError:
        raise UsageError(
            "--executor dask needs Dask's distributed scheduler: pip install 'mdrun[dask]'"
        ) from None
    try:
        client = Client(address, timeout="10s", set_as_default=False)  # type: ignore[no-untyped-call]
    except OSError as err:
        raise UsageError(f"--scheduler {address}: cannot reach the scheduler: {err}") from err
    try:
        yield client.get_executor(pure=False)  # type: ignore[no-untyped-call]
    finally:
        client.close()  # type: ignore[no-untyped-call]
