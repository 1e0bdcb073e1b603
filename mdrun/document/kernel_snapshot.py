"""Session snapshots, inside the kernel: written after a block, loaded before replaying.

A snapshot is one pickle file per group of variables (variables that share an object are
pickled together, so `a = b = []` stays one list; small groups are packed together, see
`PACK_BELOW`), named by the group's digests, and an index
(JSON, `record_files.SNAPSHOT_FILE`) listing each file with its SHA-256, plus what loading needs
first (paths, folder, environment) and the modules to import. A group unchanged since the
previous snapshot of the session has the same file name: it is hard-linked to that snapshot's
file (copied across file systems), never pickled again. Loading checks the index against the
digest its realization records, then each file against the index, before unpickling anything.
Sent to the kernel as source with `kernel_state` (standard library only).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import json
import os
import re
import shutil
import sys
import time
from typing import Any

INDEX_FORMAT = 5
"""The index's format; an index of another format is not loaded (the session replays), nor
are its files linked. (3: the session's functions have the session's namespace as globals;
4: a file's name tells apart the groups packed in it, and each file lists its aliases; 5: the
aliases say where their names share an object.)"""
FILE_PATTERN = re.compile(r"_snapshot\.[0-9a-f]{32}\.pickle\Z")
"""The name of a snapshot's file of variables (anything else in an index is refused)."""
SETTING_NAMES = ("<sys.path>", "<cwd>", "<environ>")
"""State restored before the values are loaded, since loading them may import modules."""
STATE_GROUP = ("<random>", "<numpy.random>")
"""Generator states: pickled apart from the variables, since they change more often."""
PACK_BELOW = 1 << 16
"""Groups of variables smaller than this (by their digest's count of bytes) share files: a file
per small variable made a snapshot of a session of 1,000 small variables cost 1,000 files (most
of them links), about 0.3 s, and the store 80 files per block. Large values keep a file each,
linked while unchanged and loaded only when needed."""
PACK_BYTES = 1 << 20
"""The most bytes of small groups packed into one file."""


_deferred_files: dict[str, dict[str, Any]] = {}
"""The files the last restore did not load (see `restore`): each one's entry in its index
(names, digests, SHA-256) and its path. Their variables count as the session's state."""
GLOBAL_PREFIX = "<global "
_known_indexes: dict[str, tuple[dict[str, Any], dict[str, str]]] = {}
"""Snapshot indexes this kernel wrote or read, by their digest (see `_remember_index`)."""
KNOWN_INDEXES = 4


def _state() -> Any:
    """`kernel_state`: installed beside this module in the kernel, imported on the host."""
    module = sys.modules.get("_mdrun_state")
    return module or importlib.import_module("mdrun.document.kernel_state")


def _digest() -> Any:
    """`kernel_digest`, whose pickler writes and reads the files."""
    module = sys.modules.get("_mdrun_digest")
    return module or importlib.import_module("mdrun.document.kernel_digest")


def _display() -> Any:
    """`kernel_display`, which puts IPython's display state back."""
    module = sys.modules.get("_mdrun_display")
    return module or importlib.import_module("mdrun.document.kernel_display")


def groups(names: list[str], reaches: dict[str, Any]) -> list[list[str]]:
    """The variables to pickle together: those whose pickles go through a common mutable
    object, and functions with the variables they use. All in one group when sharing cannot
    be known (a variable whose reach was not kept, a module's global that a block rebound)."""
    uncertain = any(
        name not in STATE_GROUP and (reaches.get(name) is None or reaches[name].ids is None)
        for name in names
    )
    if uncertain:
        return [sorted(names)] if names else []
    parent = {name: name for name in names}

    def root(name: str) -> str:
        while parent[name] != name:
            parent[name] = parent[parent[name]]
            name = parent[name]
        return name

    owner: dict[int, str] = {}
    for name in names:
        reach = reaches.get(name)
        for object_id in () if reach is None or name in STATE_GROUP else reach.ids:
            first = owner.setdefault(object_id, name)
            if first != name:
                parent[root(name)] = root(first)
        # A function's pickle holds the values of the globals it uses, which its load puts
        # back in the namespace: those are pickled with it (their digests name the file).
        for used in () if reach is None else reach.names:
            if used in parent and used != name:
                parent[root(used)] = root(name)
    for name in STATE_GROUP:
        if name in parent and STATE_GROUP[0] in parent:
            parent[root(name)] = root(STATE_GROUP[0])
    grouped: dict[str, list[str]] = {}
    for name in sorted(names):
        grouped.setdefault(root(name), []).append(name)
    return sorted(grouped.values())


def packed(grouped: list[list[str]], sizes: dict[str, int]) -> list[list[list[str]]]:
    """The files to write: `grouped`'s small groups (see `PACK_BELOW`) packed, in order, into
    files of up to `PACK_BYTES`, each file the groups it holds. State outside variables (names
    in angle brackets) and groups of unknown size keep their own files."""
    files: list[list[list[str]]] = []
    pack: list[list[str]] = []
    pack_bytes = 0
    for group in grouped:
        size = sum(sizes.get(member, PACK_BELOW) for member in group)
        if size >= PACK_BELOW or any(name[:1] == "<" for name in group):
            files.append([group])
            continue
        if pack and pack_bytes + size > PACK_BYTES:
            files.append(pack)
            pack, pack_bytes = [], 0
        pack.append(group)
        pack_bytes += size
    return [*files, pack] if pack else files


def _uses(reaches: dict[str, Any], name: str) -> frozenset[str]:
    reach = reaches.get(name)
    return frozenset() if reach is None else reach.names


def file_name(groups: list[list[str]], digests: dict[str, str]) -> str:
    """A file's name, from the groups of variables it holds: equal groups of names and
    digests, equal content. (Two groups `[a]`, `[b]` packed in one file are two lists, `a`
    and `b` apart; one group `[a, b]` may be one list bound to both names.)"""
    key = json.dumps([[[name, digests[name]] for name in group] for group in groups]).encode()
    return f"_snapshot.{hashlib.sha256(key).hexdigest()[:32]}.pickle"


class _HashingWriter:
    """A file that hashes what is written to it."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream
        self.digest = hashlib.sha256()
        self.size = 0

    def write(self, data: Any) -> int:
        self.digest.update(data)
        self.size += len(memoryview(data).cast("B"))
        return int(self.stream.write(data))


def previous_files(index_path: str | None, expected_sha256: str | None) -> dict[str, Any]:
    """The files of the session's previous snapshot that a new one may link: {} unless its
    index matches the digest its realization records."""
    if index_path is None or expected_sha256 is None:
        return {}
    known = _known_indexes.get(expected_sha256)
    if known is None:
        try:
            with open(index_path, "rb") as stream:
                data = stream.read()
            if hashlib.sha256(data).hexdigest() != expected_sha256:
                return {}
            index = json.loads(data)
            if index["format"] != INDEX_FORMAT:
                return {}
            files = index["files"]
        except (OSError, ValueError, KeyError, TypeError):
            return {}
        if not isinstance(files, dict):
            return {}
        known = _remember_index(expected_sha256, files)
    folder = os.path.dirname(index_path)
    return {name: {**entry, "path": os.path.join(folder, name)} for name, entry in known[0].items()}


def _remember_index(sha256: str, files: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """Keep an index's usable files, and the digest of each variable they hold, by the index's
    digest: the next capture links from the snapshot the last one wrote, whose index it need
    neither read back nor go through again (a few indexes kept)."""
    usable = {
        name: entry
        for name, entry in files.items()
        if FILE_PATTERN.match(name) and isinstance(entry, dict)
    }
    held = {
        name: digest
        for entry in usable.values()
        for name, digest in (entry.get("digests") or {}).items()
    }
    _known_indexes[sha256] = (usable, held)
    while len(_known_indexes) > KNOWN_INDEXES:
        del _known_indexes[next(iter(_known_indexes))]
    return usable, held


def linked_bytes(
    previous_sha256: str | None,
    values: dict[str, tuple[str, int]],
    deferred: dict[str, Any],
    grouped: list[list[str]],
) -> int:
    """The bytes of a new snapshot that would be linked, not written: the groups of variables
    (`grouped`, see `groups`; `values`: each one's digest and size) that the previous snapshot
    (whose index `previous_files` read by this digest) holds with the same digests, and the
    files a partial restore left unloaded."""
    known = _known_indexes.get(previous_sha256 or "")
    held = {} if known is None else known[1]
    same = sum(
        sum(values[name][1] for name in group if name in values)
        for group in grouped
        if all(name not in values or held.get(name) == values[name][0] for name in group)
    )
    return same + sum(int(entry.get("bytes") or 0) for entry in deferred.values())


def _link(source: str, target: str) -> bool:
    """Hard-link an earlier snapshot's file (a copy across file systems)."""
    if not os.path.isfile(source) or os.path.islink(source):
        return False
    try:
        os.link(source, target)
    except OSError:
        try:
            shutil.copyfile(source, target)
        except OSError:
            return False
    return True


def write(
    index_path: str,
    kept: dict[str, Any],
    *,
    modules: dict[str, str],
    digests: dict[str, str],
    reaches: dict[str, Any],
    previous: dict[str, Any],
    deferred: dict[str, Any] | None = None,
    sizes: dict[str, int] | None = None,
    namespace: dict[str, Any] | None = None,
    aliases: list[list[str]] | None = None,
    grouped: list[list[str]] | None = None,
) -> dict[str, Any]:
    """Write the snapshot whose index is `index_path`, linking the files of `previous` (see
    `previous_files`) that it holds unchanged, and the files of `deferred` (variables a partial
    restore did not load); what the state record says of it. `sizes`: each variable's bytes,
    by which small ones are packed together (see `packed`); `namespace`: the session's, the
    globals of its functions (see `kernel_digest.dump`); `aliases`: the names that share an
    object, and where (`kernel_touched.ReachIndex.aliases`), listed with the file that holds
    them, so that the state's digest counts them while the file is not loaded; `grouped`:
    `groups` of `kept`'s names but `SETTING_NAMES`, when the caller made them already."""
    deferred = deferred or {}
    started = time.perf_counter()
    folder = os.path.dirname(index_path)
    setting = {name: kept.pop(name) for name in SETTING_NAMES if name in kept}
    files: dict[str, Any] = {}
    written = linked = 0
    made: list[str] = []
    try:
        if grouped is None:
            grouped = groups(sorted(kept), reaches)
        for in_file in packed(grouped, sizes or {}):
            name = file_name(in_file, digests)
            group = [member for members in in_file for member in members]
            target = os.path.join(folder, name)
            known = previous.get(name)
            if known is not None and _link(known["path"], target):
                made.append(target)
                entry = {"sha256": known.get("sha256"), "bytes": known.get("bytes")}
                linked += int(known.get("bytes") or 0)
            else:
                made.append(target)
                values = {member: kept[member] for member in group}
                entry = _write_file(target, values, namespace)
                written += int(entry["bytes"])
            uses = sorted({used for member in group for used in _uses(reaches, member)})
            member_digests = {member: digests[member] for member in group}
            files[name] = {"names": group, "digests": member_digests, "uses": uses, **entry}
            members = set(group)
            held = [
                names
                for names in aliases or ()
                if members.issuperset(name for name in names if name[:1] != "@")
            ]
            if held:
                files[name]["aliases"] = held
        for name, entry in deferred.items():
            # Variables a partial restore left unloaded: their file, linked from where it is.
            target = os.path.join(folder, name)
            if not _link(entry["path"], target):
                raise OSError(f"cannot link {entry['path']}")
            made.append(target)
            linked += int(entry.get("bytes") or 0)
            files[name] = {key: value for key, value in entry.items() if key != "path"}
        index = {"format": INDEX_FORMAT, "setting": setting, "modules": modules, "files": files}
        made.append(index_path + ".tmp")
        # (`json.dumps`, not `json.dump`: only the former encodes in C.)
        text = json.dumps(index, sort_keys=True).encode()
        with open(index_path + ".tmp", "wb") as stream:
            stream.write(text)
        os.replace(index_path + ".tmp", index_path)
        _remember_index(hashlib.sha256(text).hexdigest(), files)
    except (OSError, TypeError, ValueError) as err:
        # A full disk: no snapshot (later blocks replay instead), and no partial file left.
        for path in made:
            with contextlib.suppress(OSError):
                os.unlink(path)
        return {"snapshot_error": f"{folder}: {getattr(err, 'strerror', None) or err}"}
    return {
        "snapshot_seconds": time.perf_counter() - started,
        "snapshot_written": written,
        "snapshot_linked": linked,
    }


def _write_file(
    target: str, values: dict[str, Any], namespace: dict[str, Any] | None
) -> dict[str, Any]:
    """Pickle `values` into `target` (a temporary file, then a rename); its digest and size."""
    temporary = target + ".tmp"
    try:
        with open(temporary, "wb") as stream:
            writer = _HashingWriter(stream)
            _digest().dump(values, writer, namespace)
        os.replace(temporary, target)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
    return {"sha256": writer.digest.hexdigest(), "bytes": writer.size}


def _refuse(result_path: str, reason: str) -> None:
    with open(result_path, "w") as report:
        json.dump({"refused": reason}, report)


def needed_files(files: dict[str, Any], codes: list[str] | None) -> set[str]:
    """The files holding what `codes` (the blocks that will run after the restore) can read:
    the names they name, and what the functions among those use, transitively; every file
    when a code cannot be analysed (see `kernel_touched`). Module state is always loaded."""
    if codes is None:
        return set(files)
    touched = sys.modules.get("_mdrun_touched") or importlib.import_module(
        "mdrun.document.kernel_touched"
    )
    wanted: set[str] = set()
    for code in codes:
        names = touched.names_in_code(code)
        if names is None:
            return set(files)
        wanted |= names
    holder = {member: name for name, entry in files.items() for member in entry["names"]}
    needed = {name for member, name in holder.items() if member.startswith("<")}
    frontier = sorted(wanted)
    while frontier:
        name = holder.get(frontier.pop())
        if name is None or name in needed:
            continue
        needed.add(name)
        if set(files[name].get("uses", ())) & touched.DYNAMIC_NAMES:
            return set(files)
        frontier.extend(files[name].get("uses", ()))
        frontier.extend(files[name]["names"])
    return needed


def restore(
    namespace: dict[str, Any],
    index_path: str,
    result_path: str,
    expected_sha256: str | None = None,
    codes: list[str] | None = None,
    *,
    hidden: set[str] | dict[str, Any] | None = None,
) -> None:
    """Load a snapshot into the session: its setting, modules, values and module state.

    With `expected_sha256`, the index is checked first, and every file against the index,
    before anything is unpickled (the check and the load read the same bytes, so a file
    swapped meanwhile is not loaded either); the result file then says `refused`. With
    `codes`, only the files those blocks can read are loaded (see `needed_files`): the others
    are deferred, their digests kept, and the report names them. With `hidden` (IPython's
    hidden names), the loaded state is captured, as the state after a block would be: the next
    block's capture then sees only what that block changed, and the block can be undone (the
    digests are those its capture would otherwise take of everything)."""
    started = time.perf_counter()
    _state().forget_last_capture()
    _deferred_files.clear()
    with open(index_path, "rb") as stream:
        data = stream.read()
    if expected_sha256 is not None and hashlib.sha256(data).hexdigest() != expected_sha256:
        return _refuse(result_path, "the snapshot does not match its recorded digest")
    index = json.loads(data)
    if not isinstance(index, dict) or index.get("format") != INDEX_FORMAT:
        return _refuse(result_path, "the snapshot is of a format this mdrun does not read")
    folder = os.path.dirname(index_path)
    files = index["files"]
    if any(not FILE_PATTERN.match(name) for name in files):
        return _refuse(result_path, "the snapshot names a file it may not")
    needed = needed_files(files, codes)
    contents: list[bytes] = []
    for name, entry in sorted(files.items()):
        if name not in needed:
            continue
        with open(os.path.join(folder, name), "rb") as stream:
            content = stream.read()
        if hashlib.sha256(content).hexdigest() != entry.get("sha256"):
            return _refuse(result_path, f"{name} does not match the digest its index records")
        contents.append(content)
    _apply_setting(index.get("setting", {}))
    values: dict[str, Any] = {}
    while contents:
        values.update(_digest().load(contents.pop(), namespace))
    for name, module_name in index.get("modules", {}).items():
        values[name] = importlib.import_module(module_name)
    _assign(namespace, values)
    deferred = {
        name: {**entry, "path": os.path.join(folder, name)}
        for name, entry in files.items()
        if name not in needed
    }
    _defer(deferred)
    if hidden is not None:
        _state().capture(namespace, hidden, None, None)
    report = {
        "restore_seconds": time.perf_counter() - started,
        "deferred": sorted(member for entry in deferred.values() for member in entry["names"]),
    }
    with open(result_path, "w") as stream:
        json.dump(report, stream)


def _apply_setting(setting: dict[str, Any]) -> None:
    if "<sys.path>" in setting:
        sys.path[:] = setting["<sys.path>"]
    if "<cwd>" in setting:
        os.chdir(setting["<cwd>"])
    if "<environ>" in setting:
        changed, removed = setting["<environ>"]
        os.environ.update(changed)
        for key in removed:
            os.environ.pop(key, None)


LAST_ASSIGNED = ("<ipython config>", "<display>", "<numpy.printoptions>")
"""Put back after the rest, in this order: IPython's configuration may set printers, and its
display settings numpy's precision."""


def _assign(namespace: dict[str, Any], values: dict[str, Any]) -> None:
    """Put loaded values back: variables, modules' globals, generator states."""
    last = {name: values.pop(name) for name in LAST_ASSIGNED if name in values}
    for name, value in [*values.items(), *last.items()]:
        if name.startswith(GLOBAL_PREFIX):
            module_name, _, attribute = name[len(GLOBAL_PREFIX) : -1].rpartition(".")
            setattr(importlib.import_module(module_name), attribute, value)
        elif name == "<random>":
            import random

            random.setstate(value)
        elif name == "<numpy.random>":
            importlib.import_module("numpy.random").set_state(value)
        elif name == "<ipython config>":
            _display().restore_config(value)
        elif name == "<display>":
            _display().restore_display(value)
        elif name == "<numpy.printoptions>":
            importlib.import_module("numpy").set_printoptions(**value)
        elif name == "<matplotlib.rcParams>":
            # In place: pyplot and every module that imported them hold the same object.
            dict.update(importlib.import_module("matplotlib").rcParams, value)
        else:
            namespace[name] = value


def _defer(files: dict[str, dict[str, Any]]) -> None:
    """Variables left in their snapshot files: their digests count as the state's."""
    _deferred_files.clear()
    _deferred_files.update(files)


def any_deferred() -> bool:
    """Whether variables of the last snapshot loaded are still unloaded (or were, until a
    block bound one of their group: see `still_deferred`)."""
    return bool(_deferred_files)


def still_deferred(namespace: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The deferred files none of whose variables a block has bound since."""
    for name, entry in list(_deferred_files.items()):
        if any(member in namespace for member in entry["names"]):
            del _deferred_files[name]
    return _deferred_files
