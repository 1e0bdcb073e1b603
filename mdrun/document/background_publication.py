"""Block results published in a thread of their own, while the kernel runs the next block.

Writing a trivial block's realization (its records, manifest, renames) takes about as long as
the kernel takes to run the block; done in turn, the kernel waits for it. One result at a time
is pending: the evaluator hands one over (`results.build_block` hashed it, so its reference is
known), runs the next block, then settles it (waits, and learns whether it failed) before
storing anything else or saying the block is done. What the job writes is the store's usual
one-rename publication, so a failure (a full disk) leaves nothing half-written.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor


class BackgroundPublisher:
    """One publication thread, started on the first job; `close` waits for it."""

    def __init__(self) -> None:
        self._executor: ThreadPoolExecutor | None = None
        self._pending: tuple[int, Future[None]] | None = None

    @property
    def pending(self) -> int | None:
        """The index of the block whose result is being published, if one is."""
        return None if self._pending is None else self._pending[0]

    def submit(self, index: int, job: Callable[[], None]) -> None:
        """Start publishing block `index`'s result (settle the one before first)."""
        if self._pending is not None:
            raise RuntimeError(f"block {self._pending[0]}'s publication is not settled")
        if self._executor is None:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="mdrun-publication")
        self._pending = (index, self._executor.submit(job))

    def settle(self) -> tuple[int, BaseException | None] | None:
        """Wait for the pending publication: its block's index and what it raised (None: it
        is in the store); None when none was pending."""
        if self._pending is None:
            return None
        index, future = self._pending
        self._pending = None
        return index, future.exception()

    def close(self) -> None:
        """Wait for the pending publication, if any (what it raised is dropped: call it when
        already failing), and stop the thread."""
        self.settle()
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None
