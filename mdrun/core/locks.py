"""Build locks across processes: one lock file per derivation, held with flock(2) while it builds.

Taking a lock is a few system calls here; filelock's `FileLock` spent about a millisecond on
each (it probes the file system every time it creates a lock file), which is more than a
trivial block costs to run, and a document takes one lock per block it builds. Where flock is
missing (Windows, a file system without it), `FileLock` takes the lock instead. On Linux and
macOS both lock the files with flock, so processes of either kind exclude each other. The
operating system releases a lock when its process dies: a killed build never leaves its
derivation locked.
"""

from __future__ import annotations

import errno
import os
import time
from types import TracebackType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from filelock import BaseFileLock

__all__ = ["BuildLock"]

POLL_SECONDS = 0.05
"""How often a lock taken with a timeout is tried again."""
_NO_FLOCK_ERRNOS = frozenset({errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOLCK, errno.EINVAL})
"""What flock says on a file system that cannot lock."""


class BuildLock:
    """An exclusive lock on one file, re-entrant for the object that holds it (as `FileLock`)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._descriptor: int | None = None
        self._depth = 0
        self._fallback: BaseFileLock | None = None

    @property
    def is_locked(self) -> bool:
        """Whether this object holds the lock."""
        return self._depth > 0

    def acquire(self, timeout: float | None = None) -> BuildLock:
        """Wait for the lock; TimeoutError after `timeout` seconds (None: no limit)."""
        if not self._depth:
            if self._fallback is None and not self._flock(timeout):
                from filelock import FileLock

                self._fallback = FileLock(self.path)
            if self._fallback is not None:
                self._fallback.acquire(timeout=-1 if timeout is None else timeout)
        self._depth += 1
        return self

    def _flock(self, timeout: float | None) -> bool:
        """Take the lock with flock; False where flock cannot be used."""
        try:
            import fcntl
        except ImportError:  # Windows
            return False
        descriptor = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        deadline = None if timeout is None else time.monotonic() + timeout
        mode = fcntl.LOCK_EX if deadline is None else fcntl.LOCK_EX | fcntl.LOCK_NB
        try:
            while True:
                try:
                    fcntl.flock(descriptor, mode)
                    break
                except BlockingIOError:
                    if deadline is not None and time.monotonic() >= deadline:
                        raise TimeoutError(f"{self.path} is locked by another process") from None
                    time.sleep(POLL_SECONDS)
        except OSError as err:
            os.close(descriptor)
            if err.errno in _NO_FLOCK_ERRNOS:
                return False
            raise
        except BaseException:
            os.close(descriptor)
            raise
        self._descriptor = descriptor
        return True

    def release(self) -> None:
        """Let the lock go (the last release of a re-entered lock does)."""
        if not self._depth:
            return
        self._depth -= 1
        if self._depth:
            return
        if self._fallback is not None:
            self._fallback.release()
        descriptor, self._descriptor = self._descriptor, None
        if descriptor is not None:
            os.close(descriptor)  # closing the only descriptor releases the flock

    def __enter__(self) -> BuildLock:
        return self.acquire()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.release()
