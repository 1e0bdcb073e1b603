"""Shutting kernels down off the critical path: a kernel no longer needed is handed to a
background thread that asks it to exit and waits for it, while mdrun goes on (writes the
document, prints its summary, exits).

The no-orphans guarantee does not depend on that thread finishing: a kernel dies with the thread
of mdrun that started it and takes its process group with it (see `kernel_launcher`), so when
mdrun exits first, the kernels still exiting are killed. `Shutdowns.wait` waits for them where a
caller must know they are gone (a pool that ends, a test).
"""

from __future__ import annotations

import contextlib
import queue
import threading
from typing import TYPE_CHECKING

from mdrun.errors import KernelError

if TYPE_CHECKING:
    from mdrun.document.kernel import KernelSession


class Shutdowns:
    """Kernels being shut down by one background thread, in the order they were handed over."""

    def __init__(self) -> None:
        self._queue: queue.Queue[KernelSession] = queue.Queue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def shut_down(self, session: KernelSession) -> None:
        """Shut `session` down in the background (graceful, then its process group killed)."""
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                # A daemon: the interpreter does not wait for it; an unfinished shutdown ends
                # with mdrun, as every kernel does.
                self._thread = threading.Thread(
                    target=self._work, name="mdrun-kernel-shutdown", daemon=True
                )
                self._thread.start()
            self._queue.put(session)

    def wait(self) -> None:
        """Return once every kernel handed over so far has exited."""
        self._queue.join()

    def _work(self) -> None:
        while True:
            session = self._queue.get()
            try:
                with contextlib.suppress(KernelError):
                    session.close()
            finally:
                self._queue.task_done()


BACKGROUND = Shutdowns()
"""The process's shutdowns (one thread, started on first use)."""
