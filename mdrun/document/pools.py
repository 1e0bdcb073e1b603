"""Where units run: a bounded process pool on this machine, or a Dask distributed cluster.

Both are `concurrent.futures.Executor`s, so `parallel.SessionDispatch` has one code path. The
pool's processes are spawned, never forked: a forked copy of a process that holds threads or
kernel sockets is not safe. Dask is imported only when asked for (`mdrun[dask]`).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, ParamSpec, TypeVar

from mdrun.document.evaluate import BlockOutcome, Reporter
from mdrun.document.plan import PlannedBlock
from mdrun.errors import UsageError

P = ParamSpec("P")
T = TypeVar("T")

START_METHOD = "spawn"
"""Not forkserver: a forkserver keeps the environment it started with, and kernels must see this
process's (the thread counts the user set)."""

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


BlockEvent = tuple[str, str, str]
"""(the unit's label, `started` or `finished`, the block's id), as workers report them."""

_events: Any = None
"""In a pool's worker: the queue its block events go to (None: nobody is listening)."""


def _listen_with(events: Any) -> None:
    global _events
    _events = events


class EventReporter(Reporter):
    """A worker's reporter: each block's start and end, put on the parent's queue."""

    def __init__(self, events: Any, label: str) -> None:
        self.events = events
        self.label = label

    def block_started(self, planned: PlannedBlock) -> None:
        self.events.put((self.label, "started", planned.block_id))

    def block_finished(self, outcome: BlockOutcome) -> None:
        self.events.put((self.label, "finished", outcome.planned.block_id))


def worker_reporter(label: str) -> Reporter | None:
    """In a worker of a pool made with `events`, a reporter that sends there; else None."""
    return None if _events is None else EventReporter(_events, label)


class RenewingPool(Executor):
    """A process pool that starts afresh once a worker died: Python's pool then refuses all
    work (`BrokenProcessPool`), and the units it lost are sent again (`parallel`)."""

    def __init__(self, make: Callable[[], ProcessPoolExecutor]) -> None:
        self.make = make
        self.pool = make()

    def submit(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Future[T]:
        try:
            return self.pool.submit(fn, *args, **kwargs)
        except BrokenProcessPool:
            self.pool.shutdown(wait=True, cancel_futures=True)
            self.pool = self.make()
            return self.pool.submit(fn, *args, **kwargs)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self.pool.shutdown(wait=wait, cancel_futures=cancel_futures)


@contextlib.contextmanager
def process_pool(jobs: int, events: Any = None) -> Iterator[Executor]:
    """At most `jobs` worker processes, shut down (and waited for) on the way out. With
    `events` (a queue of this pool's context, see `event_queue`), workers report each block."""
    context = multiprocessing.get_context(START_METHOD)
    pool = RenewingPool(
        lambda: ProcessPoolExecutor(
            max_workers=jobs, mp_context=context, initializer=_listen_with, initargs=(events,)
        )
    )
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


def event_queue() -> Any:
    """A queue that a pool's workers can be given (`process_pool(jobs, events)`)."""
    return multiprocessing.get_context(START_METHOD).Queue()
