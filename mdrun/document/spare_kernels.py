"""Spare kernels: a fresh kernel kept ready per kind (kernel and folder) once a kind has been
asked for, so that a session that must start a kernel finds one booted (`watch` and the server);
a ready spare of a Python kernel started in another folder is moved to the folder asked for
(`KernelSession.move_to`) rather than a kernel started then.

Linux kills a kernel when the thread that started it ends (see `kernel_launcher`), so spares are
started by one thread that lives as long as the source of spares; `close` ends them.
"""

from __future__ import annotations

import contextlib
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from mdrun.document.jupyter_executor import start_kernel
from mdrun.document.kernel_shutdown import Shutdowns
from mdrun.document.kernels import KernelChoice
from mdrun.errors import KernelError

if TYPE_CHECKING:
    from mdrun.document.kernel import KernelSession

KernelKind = tuple[KernelChoice, Path]
"""What makes two fresh kernels interchangeable: the kernel and the folder it runs in."""


class SpareKernels:
    """A source of fresh kernels (see `jupyter_executor.KernelSource`) that keeps one ready per
    kind once a kind has been asked for, and shuts retired kernels down in the background."""

    def __init__(self, *, keep_spares: bool = True) -> None:
        self.keep_spares = keep_spares
        self.shutdowns = Shutdowns()
        self.started = 0
        self.taken = 0
        self._condition = threading.Condition()
        self._ready: dict[KernelKind, KernelSession] = {}
        self._wanted: list[KernelKind] = []
        self._failed: set[KernelKind] = set()
        self._starting: KernelKind | None = None
        self._closed = False
        self._thread: threading.Thread | None = None

    def fresh(self, choice: KernelChoice, cwd: Path) -> KernelSession:
        """The spare of this kind if one is ready (or almost); else a ready spare of the same
        Python kernel started in another folder, moved to this one (a run in a new folder
        starts no kernel either); else a kernel started now."""
        kind = (choice, cwd)
        with self._condition:
            if self.keep_spares and kind not in self._wanted and not self._closed:
                self._wanted.append(kind)
                self._start_thread()
            while self._booting_for(kind):
                self._condition.wait()  # it is booting: sooner ready than one started now
            spare = self._ready.pop(kind, None)
            if spare is not None and not (spare.alive and spare.runs_in(cwd)):
                self.shutdowns.shut_down(spare)  # dead, or its folder was removed since
                spare = None
            elsewhere = None if spare is not None else self._movable(choice)
            self._condition.notify_all()  # the thread starts the next spare
            if spare is not None:
                self.taken += 1
                return spare
        if elsewhere is not None and elsewhere.alive and elsewhere.move_to(cwd) is None:
            with self._condition:
                self.taken += 1
            return elsewhere
        with self._condition:
            if elsewhere is not None:
                self.shutdowns.shut_down(elsewhere)
            self.started += 1
        return start_kernel(choice, cwd)

    @property
    def ready(self) -> int:
        """How many spares are ready."""
        with self._condition:
            return len(self._ready)

    def _booting_for(self, kind: KernelKind) -> bool:
        """Under the lock: whether a spare that `kind` will take is booting, and none it could
        take now is ready (one of its kind, or one of its Python kernel to move: `_movable`)."""
        choice, starting = kind[0], self._starting
        movable = choice.language.lower() == "python"
        if kind in self._ready or (movable and any(ready[0] == choice for ready in self._ready)):
            return False
        return starting == kind or (movable and starting is not None and starting[0] == choice)

    def _movable(self, choice: KernelChoice) -> KernelSession | None:
        """Under the lock: a ready spare of `choice` started in another folder, taken out, if
        it can be moved (a Python kernel: see `KernelSession.move_to`)."""
        if choice.language.lower() != "python":
            return None
        for kind in self._ready:
            if kind[0] == choice:
                return self._ready.pop(kind)
        return None

    def retire(self, session: KernelSession) -> None:
        """Shut a kernel down in the background."""
        self.shutdowns.shut_down(session)

    def close(self) -> None:
        """Stop starting spares, shut the ready ones down, and wait for every shutdown."""
        with self._condition:
            self._closed = True
            self._condition.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join()
        self.shutdowns.wait()

    def _start_thread(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._keep_ready, name="mdrun-spare-kernels", daemon=True
            )
            self._thread.start()

    def _missing(self) -> KernelKind | None:
        for kind in self._wanted:
            if kind not in self._ready and kind not in self._failed:
                return kind
        return None

    def _keep_ready(self) -> None:
        """The spares' thread: start a spare for each kind that has none, until closed; the
        spares it started die with it, so it ends only once they are shut down."""
        while True:
            with self._condition:
                kind = self._missing()
                while not self._closed and kind is None:
                    self._condition.wait()
                    kind = self._missing()
                if self._closed:
                    spares = list(self._ready.values())
                    self._ready.clear()
                    break
                self._starting = kind
                self.started += 1
            assert kind is not None
            spare: KernelSession | None = None
            # If it cannot start, the session that needs one starts its own and says why.
            with contextlib.suppress(KernelError):
                spare = start_kernel(*kind)
            with self._condition:
                self._starting = None
                if spare is None:
                    self._failed.add(kind)
                else:
                    self._ready[kind] = spare
                self._condition.notify_all()
        for spare in spares:
            with contextlib.suppress(KernelError):
                spare.close()
        # Kernels this thread started that sessions took end with it: the pool closes it last.
        self.shutdowns.wait()
