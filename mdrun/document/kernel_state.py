"""Code that runs inside a Python kernel: digest the session's state after a block.

mdrun sends this module's source to the kernel once per session (it needs nothing but the
standard library, plus cloudpickle when the kernel has it), with `kernel_modules` (the state
modules hold), `kernel_touched` (what a block may have touched: only that is digested again) and
`kernel_snapshot` (snapshots, written by `capture` and loaded by `kernel_snapshot.restore`), then
calls `_mdrun_state.capture` after a block executes. Its record comes back as the value of that
call in the execute reply, or goes to a JSON file whose path mdrun chooses, so no output of the
kernel is ever polluted.

The digest covers every user variable (functions and classes by value, so editing a function
changes it) and state that lives outside them: `random`'s and numpy's generators (once a block
has touched them: each process starts them from fresh entropy, so an untouched generator is left
out rather than making every run look different), the working directory (if a block changed
it), the environment
variables and `sys.path` as blocks changed them, and every global of an imported module that a
block rebound (`fsinit` setting a default store, a library's configuration; a name a block adds
to a module is not seen). A value that cannot
be serialised is named, makes the digest unique (a session holding one never claims to be
unchanged) and prevents the snapshot, so state is then restored by replaying blocks.
"""

from __future__ import annotations

import bisect
import contextlib
import hashlib
import json
import secrets
import sys
import time
import types
from typing import Any

_cell_started: list[float] = []
"""When the block being run started (IPython's pre_run_cell event)."""
_cell_code: list[str] = []
"""The code of the last block run visibly (IPython's pre_run_cell event)."""
_executions_since_capture: list[int] = [0]
"""How many requests ran code since the last capture (silent replays and mdrun's own hidden
requests included): 1 when only the block being captured did."""
_last_capture: list[dict[str, str | None]] = []
"""The digest of each name at the last capture, while it can serve as the baseline."""
_variables: list[Any] = []
"""What the last capture knew of each variable (`_Variables`), once one ran."""
_outside_variables: list[tuple[dict[str, str], dict[str, Any], int]] = []
"""What the last capture that looked at modules found there (the digests of their states,
those states, and their bytes), when all of it could be digested and no pure guard stood."""


def _note_cell_start(info: Any) -> None:
    _cell_started[:] = [time.perf_counter()]
    _cell_code[:] = [getattr(info, "raw_cell", None) or ""]


def _note_execution() -> None:
    _executions_since_capture[0] += 1
    _other_code_module().note_threads()


def watch_initial_states() -> None:
    """Called once when the kernel starts, before any block runs."""
    modules = _modules()
    modules.note_initial_states()
    with contextlib.suppress(ImportError, AttributeError):
        from IPython import get_ipython

        shell = get_ipython()
        events = shell.events
        events.register("pre_run_cell", _note_cell_start)
        events.register("pre_execute", _note_execution)
        _rollback_module().note_start(shell.user_ns, shell.user_ns_hidden)
    _other_code_module().note_start()
    modules.watch_imports()


def user_variables(namespace: dict[str, Any], hidden: set[str] | dict[str, Any]) -> list[str]:
    """The names a user defined: not IPython's, not private, not output history."""
    return sorted(name for name in namespace if _is_user_name(name, hidden))


def _is_user_name(name: str, hidden: Any) -> bool:
    return bool(_touched_module().is_state_name(name, hidden))


def _companion(installed_as: str, name: str) -> Any:
    """A module installed beside this one in the kernel (imported from mdrun on the host)."""
    module = sys.modules.get(installed_as)
    if module is None:
        import importlib

        module = importlib.import_module(f"mdrun.document.{name}")
    return module


def _modules() -> Any:
    """`kernel_modules`, which says what state modules hold."""
    return _companion("_mdrun_modules", "kernel_modules")


def _touched_module() -> Any:
    """`kernel_touched`, which says what a block may have touched."""
    return _companion("_mdrun_touched", "kernel_touched")


def _digest_module() -> Any:
    """`kernel_digest`, which digests one value."""
    return _companion("_mdrun_digest", "kernel_digest")


def _other_code_module() -> Any:
    """`kernel_other_code`, which says whether anything but the block can have changed the
    session since the last capture."""
    return _companion("_mdrun_other_code", "kernel_other_code")


def _rollback_module() -> Any:
    """`kernel_rollback`, which says whether deleting what a block added undoes it."""
    return _companion("_mdrun_rollback", "kernel_rollback")


def capture(
    namespace: dict[str, Any],
    hidden: set[str] | dict[str, Any],
    result_path: str | None,
    snapshot_path: str | None,
    *,
    replay_cost: float = 0.0,
    snapshot_after: float | None = None,
    load_bytes_per_second: float | None = None,
    write_bytes_per_second: float | None = None,
    after_error: bool = False,
    previous_snapshot: str | None = None,
    previous_sha256: str | None = None,
    changes: list[str] | None = None,
) -> StateRecord | None:
    """Digest the session's state into `result_path` (None: the record is returned, to be the
    execute reply's user expression); maybe snapshot it into `snapshot_path`. The record lists
    the variables that changed with their digests (`digests`) and which of them hold plain
    data (`kinds`), from which mdrun follows the state without asking (`session_state`).

    With `snapshot_after`, the snapshot is taken only if it saves that many seconds: reaching
    this state without it costs `replay_cost` (replaying the blocks before this one, or
    loading an earlier snapshot and replaying those after it) plus this block's own time,
    measured here since it started; with it, loading it back (its size at
    `load_bytes_per_second`), and it must pay for writing it (the bytes not linked from the
    previous snapshot, at `write_bytes_per_second`).
    `after_error`: the capture runs in a request of its own, after the block raised.
    `previous_snapshot`: the index of the session's latest snapshot (and its recorded digest),
    whose unchanged files the new one links rather than pickles again.
    `changes`: every name a pure block mentions (`pure_blocks`: it binds or deletes no other,
    and changes nothing outside variables). Right after the capture of the block before, only
    those, and what shares their objects, are looked at: not the whole namespace, nor the
    modules (their states are taken from the last capture)."""
    started = time.perf_counter()
    _digest_module().use_namespace(namespace)
    cell_seconds = started - _cell_started[0] if _cell_started else 0.0
    only_the_block = _executions_since_capture[0] == (2 if after_error else 1)
    _executions_since_capture[0] = 0
    table = _table()
    # Taken out until `_changes` puts this capture's in: one that fails leaves no baseline.
    baseline = _last_capture.pop() if _last_capture and only_the_block else None
    _last_capture.clear()
    only = None
    told = changes is not None and baseline is not None and not after_error
    quiet = _other_code_module().nothing_else_ran()
    if told and _outside_variables and quiet:
        # (with the variables that could not be digested, which are digested every time)
        only = frozenset(changes or ()).union(name for name in table.opaque if name in namespace)
    values = _user_values(namespace, hidden, only)
    code = _cell_code[0] if _cell_code and only_the_block else None
    snapshots = _companion("_mdrun_snapshot", "kernel_snapshot")
    # Deleting a name a block bound over a deferred one would lose the deferred one.
    undoable = only_the_block and not snapshots.any_deferred()
    fresh = _digest_incrementally(table, values, code, only)
    opaque = {name: table.opaque[name] for name in sorted(table.opaque)}
    others, kept_states, size = _other_digests(namespace, values, table, opaque, only is None)
    guard = None
    if only is None:
        other_code = _other_code_module().other_code()
        if other_code is not None:
            # What it does is state no digest holds: the session's state is not known.
            opaque[other_code[0]] = other_code[1]
            _outside_variables.clear()
        guard = _pure_guard(namespace, hidden)
    if guard is not None:
        others[_modules().PURE_GUARD] = guard
        _outside_variables.clear()
    aliases = table.index.aliases()
    for entry in snapshots.still_deferred(namespace).values():
        # (a partial restore's: variables bound to one object share a file)
        aliases.extend(entry.get("aliases") or ())
    aliases.sort()
    state = hashlib.sha256(table.digests_json(others).encode())
    state.update(aliases_text(aliases))
    if opaque:
        state.update(secrets.token_bytes(16))
    digests = {**table.digests, **others}
    candidates = None if fresh is None else fresh | others.keys() | opaque.keys()
    listed = _changes(digests, opaque, baseline, candidates)
    undo = _rollback_module().note_capture(namespace, hidden, listed["changed"], undoable, only)
    plain_kind = _touched_module().plain_kind
    result: dict[str, Any] = {
        "digest": state.hexdigest(),
        **listed,
        "digests": {name: digests.get(name) for name in listed["changed"]},
        "kinds": {
            name: kind
            for name in listed["changed"]
            if name in values and (kind := plain_kind(values[name])) is not None
        },
        "undo": undo,
        **({"aliases": aliases} if aliases else {}),
        "opaque": opaque,
        "capture_seconds": time.perf_counter() - started,
        "cell_seconds": cell_seconds,
        "size": size,
    }
    previous: dict[str, Any] = {}
    if snapshot_after is not None and snapshot_path is not None:
        # Worth it when loading it saves that much over reaching this state without it (a
        # snapshot just after a large one saves only the blocks between them), writing paid.
        replay = replay_cost + cell_seconds
        load = 0.0 if load_bytes_per_second is None else size / load_bytes_per_second
        if replay - load < snapshot_after:
            snapshot_path = None  # (not worth it even if nothing had to be written)
    if snapshot_path is not None and not opaque:
        # (Only arrays bound to variables: a figure's own arrays view each other too, and
        # matplotlib draws a loaded figure alike.)
        is_array = _touched_module().is_array
        viewing = [
            name for name in table.index.shared_through_views() if is_array(namespace.get(name))
        ]
        if viewing:
            result["snapshot_skipped"] = (
                f"{', '.join(viewing)}: memory shared through a numpy view, which a snapshot"
                " would load as a copy"
            )
            snapshot_path = None
    kept: dict[str, Any] = {}
    grouped: list[list[str]] = []
    if snapshot_path is not None and not opaque:
        previous = snapshots.previous_files(previous_snapshot, previous_sha256)
        kept = {name: values[name] for name in table.known if name not in table.modules}
        kept.update(kept_states)
        # (made once: the choice to take it and the writing both go by the files it makes)
        pickled = sorted(name for name in kept if name not in snapshots.SETTING_NAMES)
        grouped = snapshots.groups(pickled, dict(table.index.reaches))
    if snapshot_after is not None and snapshot_path is not None:
        deferred = snapshots.still_deferred(namespace)
        held_in = previous_sha256 if previous else None
        linked = snapshots.linked_bytes(held_in, table.known, deferred, grouped)
        written = size - linked
        write = 0.0 if write_bytes_per_second is None else written / write_bytes_per_second
        if replay - load - write < snapshot_after:
            snapshot_path = None
    if snapshot_path is not None and not opaque:
        result.update(
            snapshots.write(
                snapshot_path,
                kept,
                modules=dict(table.modules),
                digests=digests,
                reaches=dict(table.index.reaches),
                previous=previous,
                deferred=dict(snapshots.still_deferred(namespace)),
                sizes={name: size for name, (_digest, size) in table.known.items()},
                namespace=namespace,
                aliases=aliases,
                grouped=grouped,
            )
        )
    text = json.dumps(result)
    if result_path is None:
        return StateRecord(text)
    with open(result_path, "w") as stream:
        stream.write(text)
    return None


def aliases_text(aliases: list[list[str]]) -> bytes:
    """What the state's digest hashes after the variables' digests: the names that share an
    object, and where (`kernel_touched.ReachIndex.aliases`), as the host's `SessionState`
    hashes them. Hashed even when there are none, and headed otherwise than before, so that no
    state digest equals one stored by an earlier mdrun, which did not see an object shared from
    inside another variable (`v = z[0]`)."""
    return ("\nsharing " + json.dumps(aliases)).encode()


def group_names(group: list[str]) -> list[str]:
    """The names of one of `aliases`'s groups (without where they share)."""
    return [entry for entry in group if not entry.startswith("@")]


class StateRecord:
    """A capture's record handed back in the execute reply (a user expression's value): its
    plain text is the record's JSON text, so no file is written and read back per block."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return self.text

    def _repr_pretty_(self, printer: Any, _cycle: bool) -> None:
        printer.text(self.text)


def _other_digests(
    namespace: dict[str, Any],
    values: dict[str, Any],
    table: Any,
    opaque: dict[str, str],
    modules_changed: bool = True,
) -> tuple[dict[str, str], dict[str, Any], int]:
    """The digests of the state that is not in variables: those of the variables a restore
    left in their snapshot files, and of what modules hold (`kernel_modules.module_states`;
    as the last capture found it unless `modules_changed`); the values of the latter, and the
    size of the whole state. What cannot be digested goes to `opaque`."""
    others: dict[str, str] = {}
    size = table.size
    deferred = _companion("_mdrun_snapshot", "kernel_snapshot").still_deferred(namespace)
    for entry in deferred.values():
        others.update(entry["digests"])
        size += int(entry.get("bytes") or 0)
    if not modules_changed and _outside_variables:
        module_digests, kept, module_size = _outside_variables[0]
        others.update(module_digests)
        return others, kept, size + module_size
    module_digests, kept, module_size, module_opaque = {}, {}, 0, {}
    roots = {root for root in table.roots.values() if root is not None}
    for name, value in _modules().module_states(values, roots).items():
        try:
            module_digests[name], value_size = _digest_module().digest_value(value)
        except Exception as err:
            module_opaque[name] = f"{type(value).__name__} ({type(err).__name__})"
            continue
        kept[name] = value
        module_size += value_size
    pyplot = sys.modules.get("matplotlib.pyplot")
    if pyplot is not None and pyplot.get_fignums():
        # pyplot's figure registry lives in the module: a snapshot would lose it.
        module_opaque["<matplotlib.pyplot>"] = f"{len(pyplot.get_fignums())} open figures"
    opaque.update(module_opaque)
    _outside_variables[:] = [] if module_opaque else [(module_digests, kept, module_size)]
    others.update(module_digests)
    return others, kept, size + module_size


_guard_digests: dict[int, tuple[Any, str]] = {}
"""The digest of each value behind a pure guard, by id (with the value, which keeps its id)."""


def _pure_guard(namespace: dict[str, Any], hidden: set[str] | dict[str, Any]) -> str | None:
    """`kernel_modules.pure_guard`'s reasons, with a digest of the values behind them (a value
    digested once is not digested again while it is the same object); None: no reason."""
    reasons, values = _modules().pure_guard(namespace, hidden)
    if not reasons:
        return None
    parts = []
    for name in sorted(values):
        value = values[name]
        known = _guard_digests.get(id(value))
        if known is None or known[0] is not value:
            if isinstance(value, types.ModuleType):
                digest = "module:" + value.__name__
            else:
                try:
                    digest = _digest_module().digest_value(value)[0]
                except Exception as err:
                    digest = f"{type(value).__name__} ({type(err).__name__})"
            known = _guard_digests[id(value)] = (value, digest)
        parts.append(f"{name}={known[1]}")
    text = "\n".join(parts).encode()
    return "; ".join(reasons) + " " + hashlib.sha256(text).hexdigest()


def _table() -> Any:
    """What the last capture knew of each variable (a `kernel_touched.Variables`)."""
    if not _variables:
        _variables.append(_touched_module().Variables())
    return _variables[0]


_user_names: list[Any] = []
"""The user names at the last capture (sorted), with the namespace's names and the hidden ones
they were chosen from."""


def _user_values(
    namespace: dict[str, Any],
    hidden: set[str] | dict[str, Any],
    only: frozenset[str] | None = None,
) -> dict[str, Any]:
    """The user variables and their values, by name in order (as `user_variables` lists them);
    found from the names the namespace gained and lost since the last capture (among `only`,
    when those are the only user names that can have come or gone)."""
    hidden_now = hidden.keys() if isinstance(hidden, dict) else hidden
    if only is not None and _user_names:
        names, keys = _user_names[0], _user_names[1]
        for name in sorted(only):
            if name in namespace:
                if name not in keys and _is_user_name(name, hidden_now):
                    keys.add(name)
                    bisect.insort(names, name)
            elif name in keys:
                keys.discard(name)
                at = bisect.bisect_left(names, name)
                if at < len(names) and names[at] == name:
                    del names[at]
        return dict(zip(names, map(namespace.__getitem__, names), strict=True))
    hidden_changed = True
    if _user_names:
        # IPython hides each block's input (`_i12`) as it runs: only other names count.
        hidden_keys = _user_names[2]
        hidden_changed = any(
            not name.startswith("_")
            for name in (hidden_keys - hidden_now) | (hidden_now - hidden_keys)
        )
    if hidden_changed:
        names, keys = user_variables(namespace, hidden), set(namespace)
    else:
        names, keys = _user_names[0], _user_names[1]
        gone, added = keys - namespace.keys(), namespace.keys() - keys
        keys -= gone
        keys |= added
        gone_names = set(user_variables(dict.fromkeys(gone), hidden))
        if gone_names:
            names = [name for name in names if name not in gone_names]
        for name in user_variables(dict.fromkeys(added), hidden):
            bisect.insort(names, name)
    _user_names[:] = [names, keys, set(hidden_now)]
    # (The values are not kept: a value a block unbinds must be freed when it is, not later.)
    return dict(zip(names, map(namespace.__getitem__, names), strict=True))


def _digest_incrementally(
    table: Any, values: dict[str, Any], code: str | None, only: frozenset[str] | None = None
) -> set[str] | None:
    """Digest again the variables the block may have touched (see `kernel_touched`; all of them
    when `code` is None or cannot be analysed), and bring `table` up to date; the names digested
    again (None: all of them). `only`: the only names the block can have bound or deleted."""
    touched_module = _touched_module()
    if only is not None:
        code_touched: frozenset[str] | None = only
    else:
        code_touched = None if code is None else touched_module.names_in_code(code)
    if code_touched is not None and code is not None:
        # A large array the block only read is not digested again (see `kernel_reads`).
        code_touched -= _companion("_mdrun_reads", "kernel_reads").only_read(code, values)
    current: dict[str, Any] = {}
    fresh: dict[str, tuple[str, int] | str] = {}
    pending: set[str] | None = None
    if code_touched is not None:
        pending = touched_module.touched_names(values, code_touched, table.index, current, only)
    while True:
        for name in (values.keys() if pending is None else pending & values.keys()) - fresh.keys():
            fresh[name] = _digest_one(values[name], name, current)
        if pending is None:
            break
        grown = touched_module.touched_names(values, code_touched, table.index, current, only)
        if grown is None:
            pending = None
        elif grown & values.keys() <= fresh.keys():
            break
        else:
            pending = grown
    for name in (table.names() if only is None else only) - values.keys():
        table.discard(name)
    module_root = _modules().module_root
    for name, known in fresh.items():
        table.put(name, values[name], known, current[name], module_root(values[name]))
    return None if pending is None else set(fresh)


def _digest_one(value: Any, name: str, reaches: dict[str, Any]) -> tuple[str, int] | str:
    """A variable's digest and size (its reach into `reaches`), or why it cannot be digested."""
    touched = _touched_module()
    if isinstance(value, types.ModuleType):
        reaches[name] = touched.Reach(id(value), {}, frozenset())
        return "module:" + value.__name__, 0
    try:
        digest, size, reach = _digest_module().digest_and_reach(value)
    except Exception as err:
        reaches[name] = touched.Reach(id(value), None, frozenset())
        return f"{type(value).__name__} ({type(err).__name__})"
    reaches[name] = reach
    return digest, size


def _changes(
    digests: dict[str, str],
    opaque: dict[str, str],
    baseline: dict[str, str | None] | None,
    candidates: set[str] | None = None,
) -> dict[str, Any]:
    """What the record lists: the names whose values changed since the block before this one,
    and those it removed. Listing every name after every block would make a long document's
    records grow with the square of its length. The block before is the baseline only when
    this kernel captured it and ran nothing else since (no replay, no restore); otherwise
    every name is listed, and `since` says so (`baseline` is None). `candidates`: the only
    names whose digests may differ from the baseline's (those digested again); None: any."""
    current: dict[str, str | None] = {**digests, **dict.fromkeys(opaque)}
    _last_capture[:] = [current]
    if baseline is None:
        return {"since": "nothing", "changed": sorted(current), "removed": []}
    changed = [
        name
        for name in (current.keys() if candidates is None else candidates & current.keys())
        if current[name] is None or baseline.get(name, "") != current[name]
    ]
    return {
        "since": "the block before",
        "changed": sorted(changed),
        "removed": sorted(baseline.keys() - current.keys()),
    }


def forget_last_capture() -> None:
    """The session's state is no longer what the last capture saw (a snapshot was loaded)."""
    _last_capture.clear()
    _variables.clear()
    _outside_variables.clear()
    _rollback_module().forget_all()


def roll_back(
    namespace: dict[str, Any], hidden: set[str] | dict[str, Any], names: list[str], count: int
) -> None:
    """Undo the last `count` blocks captured, which added `names` (`kernel_rollback`): delete
    those, put back the small values they rebound, and make the state before those blocks the
    baseline of the next capture, as if it had captured that state and run nothing since."""
    put_back = _rollback_module().undo(namespace, hidden, count, names)
    table = _table()
    for name in names:
        table.discard(name)
        for recorded in _last_capture:
            recorded.pop(name, None)
    reaches: dict[str, Any] = {}
    for name, value in put_back.items():
        known = _digest_one(value, name, reaches)
        table.put(name, value, known, reaches[name], _modules().module_root(value))
        for recorded in _last_capture:
            recorded[name] = None if isinstance(known, str) else known[0]
    _executions_since_capture[0] = 0
    _outside_variables.clear()  # (the next capture looks at the whole namespace again)
