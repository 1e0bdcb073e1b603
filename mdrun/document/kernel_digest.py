"""How a value of a session is digested, inside the kernel: its pickle's SHA-256, and what the
pickle went through (see `kernel_touched.Reach`), so that a change made through another name
can be seen.

Sent to the kernel as source with `kernel_state` (standard library only, plus cloudpickle when
the kernel has it, which pickles the session's functions and classes by value).
"""

from __future__ import annotations

import copyreg
import hashlib
import importlib
import io
import os
import pickle
import sys
import types
from typing import Any


def _touched() -> Any:
    """`kernel_touched`: installed beside this module in the kernel, imported on the host."""
    module = sys.modules.get("_mdrun_touched")
    return module or importlib.import_module("mdrun.document.kernel_touched")


def pickler() -> Any:
    """cloudpickle serialises functions and classes of the session by value; plain pickle
    would store them by name, and an edited function would look unchanged."""
    try:
        import cloudpickle
    except ImportError:
        return pickle
    return cloudpickle


_pickler_classes: list[Any] = []


def _strict_pickler_class() -> Any:
    """A pickler that refuses open files and streams: cloudpickle would save a file's text and
    give back a StringIO, which is not the same object to the code that uses it."""
    if _pickler_classes:
        return _pickler_classes[0]
    base = getattr(pickler(), "Pickler", pickle.Pickler)

    class StrictPickler(base):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            # (looked up once per pickle: `reducer_override` runs for most objects pickled)
            registry = getattr(sys.modules.get("matplotlib.cbook"), "CallbackRegistry", None)
            self.callback_registry = registry if isinstance(registry, type) else None
            dtype = getattr(sys.modules.get("numpy"), "dtype", None)
            self.dtype = dtype if isinstance(dtype, type) else None

        def reducer_override(self, obj: Any) -> Any:
            if isinstance(obj, io.IOBase):
                raise TypeError(f"an open file or stream ({type(obj).__name__}) cannot be saved")
            if type(obj) is _SessionGlobals:
                return session_globals, ()
            if self.dtype is not None and isinstance(obj, self.dtype):
                shared = _shared_dtype(self.dtype, obj)
                if shared is not None:
                    return shared
            if self.callback_registry is not None and isinstance(obj, self.callback_registry):
                dropped = _dropped_callback(obj)
                if dropped is not None:
                    raise TypeError(f"a figure's callback ({dropped}) cannot be saved")
            if isinstance(obj, type):
                # Pickling an instance caches `__slotnames__` in its class: set it before the
                # class is pickled, or the class's digest would change once an instance is.
                copyreg._slotnames(obj)  # type: ignore[attr-defined]
            parent = getattr(super(), "reducer_override", None)
            return NotImplemented if parent is None else parent(obj)

    _pickler_classes.append(StrictPickler)
    return StrictPickler


def _shared_dtype(dtype: Any, obj: Any) -> Any:
    """numpy's own pickle of a dtype loads as a copy, where numpy shares one object for each
    builtin dtype (every float64 array has the same one). A session loaded from a snapshot would
    then hold copies beside the shared ones its later blocks make, and a value's pickle (so its
    digest) holds each object once: the state after an edit would get another digest than a
    fresh run's, and no block after it would be kept by the early cutoff. A shared dtype is
    pickled as its name, and loads as the shared one."""
    if obj.isbuiltin != 1:
        return None
    name = obj.str
    if dtype(name) is not obj:
        return None
    return dtype, (name,)


def _dropped_callback(registry: Any) -> str | None:
    """The name of a callback of the session's that one of matplotlib's callback registries
    holds, if any: its pickle would leave it out, and a figure loaded from a snapshot would not
    call it (matplotlib connects its own again)."""
    kept: Any = getattr(registry, "_pickled_cids", ())
    for connected in getattr(registry, "callbacks", {}).values():
        for number, proxy in connected.items():
            function = proxy()
            if number in kept or function is None:
                continue
            inner = getattr(function, "__func__", getattr(function, "func", function))
            module = getattr(inner, "__module__", None) or ""
            if module.partition(".")[0] not in ("matplotlib", "mpl_toolkits"):
                return getattr(inner, "__qualname__", type(inner).__name__)
    return None


class _SessionGlobals(dict):  # type: ignore[type-arg]
    """Stands for the session's namespace as the globals of the session's functions in a
    snapshot (cloudpickle would give each its own copy, see `dump`)."""


_loading_into: list[dict[str, Any]] = []
"""The namespace a snapshot is being loaded into (see `load`)."""


def session_globals() -> dict[str, Any]:
    """The namespace a snapshot's functions get as their globals, as they are loaded."""
    if not _loading_into:
        raise pickle.UnpicklingError("a session's function loaded outside a snapshot's load")
    return _loading_into[0]


def dump(value: Any, stream: Any, namespace: dict[str, Any] | None = None) -> None:
    """Pickle `value` for a snapshot. cloudpickle gives the functions defined in `namespace`
    a dictionary of their own as globals, holding the globals they used: once loaded, such a
    function would not see a variable a later block rebinds. Here they get the namespace they
    are loaded into (`load`)."""
    pickler = _strict_pickler_class()(stream, protocol=5)
    globals_ref = getattr(pickler, "globals_ref", None)
    if namespace is not None and isinstance(globals_ref, dict):
        stand_in = _SessionGlobals(__name__=namespace.get("__name__", "__main__"))
        globals_ref[id(namespace)] = stand_in
    pickler.dump(value)


def load(data: bytes, namespace: dict[str, Any]) -> Any:
    """Unpickle a snapshot's file written by `dump`, its functions' globals `namespace`.
    (cloudpickle binds `__builtins__` in a loaded function's globals: the namespace keeps its
    own, or none.)"""
    builtins_before = namespace.get("__builtins__", _NONE)
    _loading_into[:] = [namespace]
    try:
        return pickler().loads(data)
    finally:
        _loading_into.clear()
        if builtins_before is _NONE:
            namespace.pop("__builtins__", None)
        else:
            namespace["__builtins__"] = builtins_before


_NONE = object()


def _transform_reduced(transform: Any) -> Any:
    """A figure's transform notes its parents by their addresses (`id()`), which differ in
    every process: the digest takes the parents, in their order, without them."""
    state = transform.__getstate__()
    if isinstance(state, dict) and isinstance(state.get("_parents"), dict):
        state = {**state, "_parents": list(state["_parents"].values())}
        return copyreg.__newobj__, (type(transform),), state  # type: ignore[attr-defined]
    return None


def _callbacks_reduced(registry: Any) -> Any:
    """pyplot's callback registries number the callbacks they hold with a counter, and their
    own pickle takes the counter's next number and leaves out every callback not marked to be
    pickled. The digest takes each event's callbacks in the order they were connected, without
    their numbers: a callback changed changes it, how often the figure was pickled does not
    (its variables are digested in no fixed order)."""
    callbacks = getattr(registry, "callbacks", None)
    if not isinstance(callbacks, dict):
        return None
    state = {
        name: value
        for name, value in vars(registry).items()
        if name not in ("callbacks", "_cid_gen", "_func_cid_map", "_pickled_cids")
    }
    state["callbacks"] = [
        (str(event), [proxy() for _number, proxy in sorted(connected.items())])
        for event, connected in sorted(callbacks.items(), key=lambda item: str(item[0]))
    ]
    return copyreg.__newobj__, (type(registry),), state  # type: ignore[attr-defined]


DIGEST_REDUCERS = (
    ("matplotlib.transforms", "TransformNode", True, _transform_reduced),
    ("matplotlib.cbook", "CallbackRegistry", True, _callbacks_reduced),
)
"""Classes (with their subclasses, or not) whose pickle differs between runs of the same code:
how their digest pickles them instead (None: as usual). Without
it, a figure drawn by the same code would get another digest in every run, and no block after
it would be kept by the early cutoff. Such a pickle would not load back: snapshots pickle
them as they are."""


def _digest_pickler_class() -> Any:
    """The strict pickler, for digests only (see `DIGEST_REDUCERS`).

    A pickle writes an object it met before as a reference to it, so two equal strings give
    another pickle when they are one object than when they are two. Which strings are one
    object is Python's business: a name in code, an attribute's name and a string loaded
    from a snapshot are each another object, so a value partly loaded from a snapshot and
    partly made by later blocks (a figure, a class with the instances made after) would get
    another digest than in a fresh run, and no block after it would be kept by the early
    cutoff. The digest writes each string and bytes object as a persistent id, one for each
    distinct value: equal strings are written once, one object or not. (It costs about 30 ms
    more per million objects pickled.)"""
    if len(_pickler_classes) > 1:
        return _pickler_classes[1]
    strict = _strict_pickler_class()

    class DigestPickler(strict):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.reducers = [
                (cls, subclasses, reduced)
                for module, name, subclasses, reduced in DIGEST_REDUCERS
                if isinstance(cls := getattr(sys.modules.get(module), name, None), type)
            ]
            self.by_value: dict[Any, bytes] = {}
            self.namespace = _session_namespace[0] if _session_namespace else None

        def persistent_id(self, obj: Any) -> Any:
            """Strings and bytes by value (see `_digest_pickler_class`)."""
            kind = type(obj)
            if kind is not str and kind is not bytes:
                return None
            found = self.by_value.get(obj)
            if found is None:
                text = obj.encode("utf-8", "surrogatepass") if kind is str else obj
                found = self.by_value[obj] = (b"s" if kind is str else b"b") + text
            return found

        def _dynamic_function_reduce(self, function: Any) -> Any:
            """cloudpickle's reduction of a session function, its variables by name."""
            reduction = super()._dynamic_function_reduce(function)
            return _variables_by_name(function, reduction, self.namespace)

        def reducer_override(self, obj: Any) -> Any:
            for cls, subclasses, reduced in self.reducers:
                if type(obj) is cls or (subclasses and isinstance(obj, cls)):
                    reduction = reduced(obj)
                    if reduction is not None:
                        return reduction
            return super().reducer_override(obj)

    _pickler_classes.append(DigestPickler)
    return DigestPickler


_session_namespace: list[dict[str, Any]] = []
"""The session's namespace, once a capture named it (`use_namespace`)."""


def use_namespace(namespace: dict[str, Any]) -> None:
    """The namespace whose variables the state's digest holds: the functions whose globals it
    is are digested with the names of those they use (see `_variables_by_name`)."""
    _session_namespace[:] = [namespace]


def _hidden_names() -> Any:
    """The names IPython hides from the user's variables (none outside IPython)."""
    get_ipython = getattr(sys.modules.get("IPython"), "get_ipython", None)
    shell = get_ipython() if callable(get_ipython) else None
    hidden = getattr(shell, "user_ns_hidden", None)
    return hidden if isinstance(hidden, dict) else {}


def _variables_by_name(function: Any, reduction: Any, namespace: dict[str, Any] | None) -> Any:
    """A function of the session looks its globals up in the session's namespace when it is
    called: it does not hold their values. cloudpickle pickles those values with it; the
    digest takes the names of those that are variables of the session (each digested on its
    own, see `kernel_touched.is_state_name`) and the values of the others (a module's, which
    its own digest names only). So a function that uses a variable does not seem to share
    its objects with it (which would make the state's sharing groups larger than they are),
    nor is a large global hashed again with every function that uses it. A function whose
    globals are another dictionary (a script's run by `%run`, a copy's) holds them: their
    values are digested."""
    if namespace is None or getattr(function, "__globals__", None) is not namespace:
        return reduction
    try:
        state, slots = reduction[2]
        used = slots["__globals__"]
    except (TypeError, ValueError, KeyError, IndexError):
        return reduction
    if not isinstance(used, dict):
        return reduction
    is_state_name, hidden = _touched().is_state_name, _hidden_names()
    named = {
        name: value
        if isinstance(value, types.ModuleType) or not is_state_name(name, hidden)
        else ("<variable>", name)
        for name, value in used.items()
    }
    return (*reduction[:2], (state, {**slots, "__globals__": named}), *reduction[3:])


_IMMUTABLE = frozenset({int, float, complex, str, bytes, bool, type(None), range})
_digests: dict[int, tuple[Any, str, int]] = {}
"""Digests of immutable values by id (holding the value, so the id cannot be reused)."""
MEMO_LIMIT = 200_000
"""A value whose pickle goes through more objects is digested after every block: keeping what
it went through (to see a change made through another name) would cost more than that."""


def digest_value(value: Any) -> tuple[str, int]:
    """`value_digest`, remembered for immutable values: a session's variables are digested
    after every block, and most of them did not change."""
    digest, size, _reach = digest_and_reach(value)
    return digest, size


def digest_and_reach(value: Any) -> tuple[str, int, Any]:
    """A value's digest and size, and the `Reach` of what its pickle went through."""
    touched = _touched()
    if type(value) in _IMMUTABLE:
        cached = _digests.get(id(value))
        if cached is None or cached[0] is not value:
            if len(_digests) > 100_000:
                _digests.clear()
            cached = (value, *value_digest(value))
            _digests[id(value)] = cached
        return cached[1], cached[2], touched.Reach(id(value), {}, frozenset())
    memo: list[tuple[int, Any]] = []
    digest, size = value_digest(value, memo)
    if len(memo) > MEMO_LIMIT:
        return digest, size, touched.Reach(id(value), None, frozenset())
    # (The pickler is gone: what only its memo held is held by `memo` alone.)
    positions, names = touched.reach_of(memo)
    return digest, size, touched.Reach(id(value), positions, names)


def value_digest(value: Any, memo: list[tuple[int, Any]] | None = None) -> tuple[str, int]:
    """The SHA-256 of one value's pickle, and its size in bytes; `memo` is given the objects
    the pickle went through, each with its index in the pickle's memo.

    Large buffers (numpy arrays, pandas columns) go out of band (pickle protocol 5) and are
    hashed where they lie in memory, never copied into the pickle stream.
    """
    if isinstance(value, io.IOBase):
        raise TypeError(f"an open file or stream ({type(value).__name__}) cannot be saved")
    stream = io.BytesIO()
    buffers: list[pickle.PickleBuffer] = []
    pickler = _digest_pickler_class()(stream, protocol=5, buffer_callback=buffers.append)
    pickler.dump(value)
    if memo is not None:
        memo.extend(pickler.memo.copy().values())
    digest = hashlib.sha256(stream.getbuffer())
    size = stream.tell()
    for buffer in buffers:
        raw = buffer.raw()
        digest.update(len(raw).to_bytes(8, "little"))
        digest.update(raw if len(raw) < PARALLEL_BYTES else _parallel_digest(raw))
        size += len(raw)
    return digest.hexdigest(), size


PARALLEL_BYTES = 1 << 25
"""A buffer this large (32 MiB) is hashed in chunks on every core, and the digest of the
chunks' digests stands for it: a 500 MB array takes a fraction of a second less to digest."""
CHUNK_BYTES = 1 << 23


def _parallel_digest(raw: memoryview) -> bytes:
    """The SHA-256 of the SHA-256s of `raw`'s 8 MiB chunks, hashed in threads (hashlib lets
    go of the interpreter lock while it hashes)."""
    import threading

    chunks = [raw[start : start + CHUNK_BYTES] for start in range(0, len(raw), CHUNK_BYTES)]
    digests = [b""] * len(chunks)
    workers = max(1, min(os.cpu_count() or 1, 8))

    def work(first: int) -> None:
        for index in range(first, len(chunks), workers):
            digests[index] = hashlib.sha256(chunks[index]).digest()

    threads = [threading.Thread(target=work, args=(first,)) for first in range(1, workers)]
    for thread in threads:
        thread.start()
    work(0)
    for thread in threads:
        thread.join()
    return hashlib.sha256(b"".join(digests)).digest()
