"""Code that runs inside a Python kernel: whether anything but a session's blocks may run its
code, and so change its variables where no digest taken after a block sees it.

A capture told the names of a pure block looks only at those (`kernel_state.capture`); it is
exact only if nothing else ran meanwhile. Freeing an object may run the session's code (its
`__del__`, a weakref callback): a garbage collection that freed anything since the last
capture began makes the next capture look at everything. A thread, a signal handler, an IPython
event callback or input transformer, a tracer: once a block has added one, it may change
variables at any time, in place, so the session's state is not known (`OTHER_CODE` is opaque)
for the rest of the kernel's life. Sent to the kernel with `kernel_state` (standard library
only); in a process that never called `note_start`, nothing else is assumed to run.
"""

from __future__ import annotations

import contextlib
import gc
import signal
import sys
import threading
from typing import Any

OTHER_CODE = "<other code>"
"""The name the state record gives what runs the session's code besides its blocks."""
QUIET_HOOKS = frozenset({"IPython", "ipykernel", "matplotlib", "matplotlib_inline"})
"""Packages whose event callbacks draw and show, but change no variable: pyplot and its inline
backend add some when a figure is first drawn."""
KERNEL_THREADS = frozenset({("zmq.utils.garbage", "GarbageCollectorThread")})
"""Threads of the kernel's own, started after it: pyzmq starts this one the first time a
message of 64 KiB or more is sent without a copy (a figure, a long output); it frees the
kernel's sent buffers and runs none of the session's code."""
_collections = [0, 0]
"""Garbage collections that freed something since the kernel started, and their count when
the last capture began."""
_started: list[Any] = []
"""The threads running and the hooks (see `_hooks`) as the kernel started, then why the
session's state is not known, once something else may run its code."""


def note_start() -> None:
    """The kernel is fresh: note what runs besides the blocks, and count collections."""
    gc.callbacks.append(_note_collection)
    _started[:] = [set(threading.enumerate()), _hooks()]


def note_threads() -> None:
    """Before each request: a thread alive now (started by a block) may run at any time."""
    if len(_started) == 2 and _new_thread():
        _started.append("a thread")


def nothing_else_ran() -> bool:
    """Whether only the block can have changed the session since the last capture began;
    called as a capture begins (a collection during it counts for the next one)."""
    quiet = _collections[0] == _collections[1] and len(_started) <= 2
    _collections[1] = _collections[0]
    return quiet


def other_code() -> tuple[str, str] | None:
    """At a full capture: the opaque entry saying that something else may run the session's
    code (from now on), or None."""
    if len(_started) == 2:
        if _new_thread():
            _started.append("a thread")
        elif _hooks() != _started[1]:
            _started.append("a hook")
    if len(_started) <= 2:
        return None
    return OTHER_CODE, f"{_started[2]} may change variables between blocks"


def _new_thread() -> bool:
    """Whether a thread runs that did not when the kernel started (compared as objects: one
    of those may have ended meanwhile), and is not the kernel's own."""
    return any(
        thread not in _started[0] and not _kernels_own(thread) for thread in threading.enumerate()
    )


def _kernels_own(thread: threading.Thread) -> bool:
    """A thread of a class of `KERNEL_THREADS` (not a subclass) that runs its own code."""
    kind = type(thread)
    return (kind.__module__, kind.__qualname__) in KERNEL_THREADS and (
        getattr(thread, "_target", None) is None
    )


def _note_collection(phase: str, info: dict[str, Any]) -> None:
    if phase == "stop" and (info.get("collected") or info.get("uncollectable")):
        _collections[0] += 1


def _hooks() -> tuple[Any, ...]:
    """What runs the session's code besides its blocks: IPython's event callbacks and input
    and syntax tree transformers, the signal handlers, the trace and profile functions (by
    identity)."""
    callbacks: Any = ()
    with contextlib.suppress(ImportError, AttributeError):
        from IPython import get_ipython

        shell = get_ipython()
        registered = shell.events.callbacks
        callbacks = tuple(
            (name, tuple(id(callback) for callback in registered[name] if _foreign(callback)))
            for name in sorted(registered)
        )
        transformers = (
            shell.input_transformers_cleanup,
            shell.input_transformers_post,
            shell.ast_transformers,
        )
        callbacks += tuple(tuple(map(id, kind)) for kind in transformers)
    handlers = []
    for number in sorted(signal.valid_signals()):
        with contextlib.suppress(OSError, ValueError):
            handlers.append(id(signal.getsignal(number)))
    tracing = (sys.gettrace(), sys.getprofile(), threading.gettrace(), threading.getprofile())
    return (callbacks, tuple(handlers), tuple(map(id, tracing)))


def _foreign(callback: Any) -> bool:
    """Whether an event callback may be the session's (not IPython's, mdrun's, or pyplot's)."""
    module = getattr(callback, "__module__", None)
    if not isinstance(module, str):
        return True
    return module.partition(".")[0] not in QUIET_HOOKS and not module.startswith("_mdrun")
