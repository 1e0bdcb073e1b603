"""Block results published in a thread of their own, while the kernel runs the next block.

Writing a trivial block's realization (its records, manifest, renames) takes about as long as
the kernel takes to run the block; done in turn, the kernel waits for it. One result at a time
is pending: the evaluator hands one over (`results.build_block` hashed it, so its reference is
known), runs the next block, then settles it (waits, and learns whether it failed) before
storing anything else or saying the block is done. What the job writes is the store's usual
one-rename publication, so a failure (a full disk) leaves nothing half-written.

A job handed over starts only once the next block's request is sent (`start`, see
`BlockRequest.on_sent`), or when it is settled. Started at once, it competed for the interpreter
with the evaluator's own work between two blocks (looking the next one up, locking it, sending
it: each frame sent lets the other thread take the interpreter for up to its switch interval),
while the kernel sat idle waiting for that work.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor


class BackgroundPublisher:
    """One publication thread, started on the first job; `close` waits for it."""

    def __init__(self) -> None:
        self._executor: ThreadPoolExecutor | None = None
        self._held: tuple[int, Callable[[], None]] | None = None
        """The publication handed over, not started yet."""
        self._pending: tuple[int, Future[None]] | None = None
        """The publication started."""

    @property
    def pending(self) -> int | None:
        """The index of the block whose result is being published, if one is."""
        handed = self._held or self._pending
        return None if handed is None else handed[0]

    def submit(self, index: int, job: Callable[[], None]) -> None:
        """Hand over block `index`'s publication (the one before must be settled); it starts
        at `start` or `settle`."""
        if self.pending is not None:
            raise RuntimeError(f"block {self.pending}'s publication is not settled")
        self._held = (index, job)

    def start(self) -> None:
        """Start the publication handed over, if one waits: the evaluator now waits for the
        kernel."""
        if self._held is None:
            return
        if self._executor is None:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="mdrun-publication")
        index, job = self._held
        self._held = None
        self._pending = (index, self._executor.submit(job))

    def settle(self) -> tuple[int, BaseException | None] | None:
        """Wait for the pending publication (starting it if it has not started): its block's
        index and what it raised (None: it is in the store); None when none was pending."""
        self.start()
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
