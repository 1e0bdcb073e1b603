"""Export and import of closures: move realizations between stores as one tar file.

An archive holds the store layout (`store/<dhash>-<name>/config.json` and the requested
realizations with everything in their contexts) and a manifest naming the roots. Import
verifies every config and tree against its reference before publishing anything: every file
of a realization is in its hash, except a build record checked for its type (see `integrity`),
so refs are identical in both stores and a tampered archive changes nothing.
"""

from __future__ import annotations

import io
import json
import os
import tarfile
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from mdrun.core import integrity
from mdrun.core.config import Config
from mdrun.core.default_store import as_store
from mdrun.core.files import replaced_atomically
from mdrun.core.graph import dependencies_first
from mdrun.core.hashing import canonical_json
from mdrun.core.integrity import BUILD_FILE, build_record, manifest_of_tree
from mdrun.core.refs import DRef, RRef, is_dref, is_rref, make_dref, parse_rref, rref_to_dref
from mdrun.core.store import (
    CONFIG_FILE,
    CONTEXT_FILE,
    Context,
    Store,
    remove_tree,
)
from mdrun.errors import StoreError

__all__ = ["export_closure", "import_closure", "spack", "sunpack"]

MANIFEST_FILE = "MANIFEST.json"
ARCHIVE_FORMAT = "mdrun-archive 1"
OBJECTS_FOLDER = "store"


def realization_closure(store: Store, rrefs: Iterable[RRef]) -> list[RRef]:
    """The rrefs and everything in their contexts, transitively; dependencies first."""

    def used_by(rref: RRef) -> list[RRef]:
        if not store.has_realization(rref):
            raise StoreError(f"{rref} is not in the store at {store.root}")
        return [dependency for used in store.context_of(rref).values() for dependency in used]

    return dependencies_first(rrefs, used_by)


# -- export -----------------------------------------------------------------------------------


def _normalize(info: tarfile.TarInfo) -> tarfile.TarInfo:
    """Owner-independent entries with ordinary modes: only the exec bit carries meaning."""
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    if info.isdir():
        info.mode = 0o755
    elif info.isreg() or info.islnk():
        info.mode = 0o755 if info.mode & 0o100 else 0o644
    return info


def export_closure(store: Store, rrefs: Iterable[RRef], archive_path: Path | str) -> Path:
    """Write the realizations `rrefs` and their contexts' closure (with configs) to a tar.

    `.gz`/`.tgz` names are compressed. The archive appears at once (temp file, rename).
    """
    roots = [RRef(rref) for rref in rrefs]
    for rref in roots:
        if not is_rref(rref):
            raise StoreError(f"not a realization reference: {rref!r}")
    closure = realization_closure(store, roots)
    target = Path(archive_path).absolute()
    if not target.parent.is_dir():
        raise StoreError(f"cannot write {target}: its folder does not exist")
    compressed = target.name.endswith((".gz", ".tgz"))
    manifest = canonical_json(
        {"format": ARCHIVE_FORMAT, "roots": [str(r) for r in sorted(set(roots))]}
    )
    with replaced_atomically(target) as temporary:
        with tarfile.open(temporary, "w:gz" if compressed else "w") as archive:
            info = tarfile.TarInfo(MANIFEST_FILE)
            info.size = len(manifest)
            info.mode = 0o644
            archive.addfile(info, io.BytesIO(manifest))
            written: set[DRef] = set()
            for rref in closure:
                dref = rref_to_dref(rref)
                derivation = store.derivation_path(dref)
                if dref not in written:
                    written.add(dref)
                    archive.add(
                        derivation / CONFIG_FILE,
                        f"{OBJECTS_FOLDER}/{derivation.name}/{CONFIG_FILE}",
                        filter=_normalize,
                    )
                archive.add(
                    store.realization_path(rref),
                    f"{OBJECTS_FOLDER}/{derivation.name}/{parse_rref(rref)[0]}",
                    filter=_normalize,
                )
        os.chmod(temporary, 0o644)
    return target


# -- import -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Verified:
    """An unpacked archive whose every entry matched its reference."""

    roots: list[RRef]
    configs: dict[DRef, Config]
    realizations: list[tuple[RRef, Context, Path]]
    """Dependencies first: (rref, its context, its unpacked folder)."""


def _refuse(archive: Path, reason: str) -> StoreError:
    return StoreError(f"refusing to import {archive}: {reason}")


def _unpack(archive_path: Path, destination: Path) -> None:
    """Extract only plain files, folders and links that stay inside `destination`."""
    try:
        with tarfile.open(archive_path, "r:*") as archive:
            for member in archive.getmembers():
                parts = PurePosixPath(member.name).parts
                if member.name.startswith("/") or ".." in parts:
                    raise _refuse(archive_path, f"member {member.name!r} escapes the archive")
                if member.name != MANIFEST_FILE and (not parts or parts[0] != OBJECTS_FOLDER):
                    raise _refuse(archive_path, f"unexpected member {member.name!r}")
            archive.extractall(destination, filter="data")
    except (tarfile.TarError, EOFError, OSError) as err:
        raise _refuse(archive_path, f"cannot read it ({err})") from err


def _verify(archive_path: Path, unpacked: Path, store: Store) -> _Verified:
    """Check every config against its dref and every tree against its rref."""
    try:
        manifest = json.loads((unpacked / MANIFEST_FILE).read_bytes())
    except (OSError, ValueError) as err:
        raise _refuse(archive_path, "no readable manifest") from err
    if not isinstance(manifest, dict) or manifest.get("format") != ARCHIVE_FORMAT:
        raise _refuse(archive_path, f"not an {ARCHIVE_FORMAT!r} archive")
    roots_value = manifest.get("roots")
    if not isinstance(roots_value, list) or not all(is_rref(item) for item in roots_value):
        raise _refuse(archive_path, "the manifest's roots are not realization references")
    roots = [RRef(item) for item in roots_value]
    configs: dict[DRef, Config] = {}
    found: dict[RRef, Path] = {}
    objects = unpacked / OBJECTS_FOLDER
    for folder in sorted(objects.iterdir()) if objects.is_dir() else []:
        dref = f"dref:{folder.name}"
        if not is_dref(dref) or not folder.is_dir() or folder.is_symlink():
            raise _refuse(archive_path, f"unexpected entry {folder.name!r}")
        try:
            config = Config.from_canonical((folder / CONFIG_FILE).read_bytes())
        except (OSError, ValueError) as err:
            raise _refuse(archive_path, f"{dref}: unreadable config") from err
        if make_dref(config.hash_part, config.name) != dref:
            raise _refuse(archive_path, f"{dref}: its config does not hash to its reference")
        configs[DRef(dref)] = config
        for entry in sorted(folder.iterdir()):
            if entry.name == CONFIG_FILE:
                continue
            rref = f"rref:{entry.name}-{folder.name}"
            if not is_rref(rref) or not entry.is_dir() or entry.is_symlink():
                raise _refuse(archive_path, f"unexpected entry {folder.name}/{entry.name}")
            _verify_realization(archive_path, RRef(rref), entry)
            found[RRef(rref)] = entry
    realizations: list[tuple[RRef, Context, Path]] = []
    for rref in sorted(found):
        dref = rref_to_dref(rref)
        try:
            raw = json.loads((found[rref] / CONTEXT_FILE).read_bytes())
            context: Context = {
                DRef(key): [RRef(item) for item in value] for key, value in raw.items()
            }
        except (OSError, ValueError, AttributeError, TypeError) as err:
            raise _refuse(archive_path, f"{rref}: unreadable context") from err
        if sorted(context) != sorted(configs[dref].dependencies()):
            raise _refuse(archive_path, f"{rref}: its context does not match its config")
        for used in (item for items in context.values() for item in items):
            if used not in found and not store.has_realization(used):
                raise _refuse(archive_path, f"{rref} needs {used}, which is missing")
        realizations.append((rref, context, found[rref]))
    for root in roots:
        if root not in found:
            raise _refuse(archive_path, f"its root {root} is missing")
    return _Verified(roots, configs, realizations)


def _verify_realization(archive_path: Path, rref: RRef, folder: Path) -> None:
    """Every file is in the tree's hash, save a manifest equal to the one its files make and
    a build record that is one; anything else is refused."""
    try:
        manifest = manifest_of_tree(folder)
    except StoreError as err:
        raise _refuse(archive_path, f"{rref}: {err.message}") from err
    if manifest.realization_hash != folder.name:
        raise _refuse(archive_path, f"{rref}: its files do not hash to its reference")
    kept = folder / integrity.MANIFEST_FILE
    if os.path.lexists(kept) and (kept.is_symlink() or kept.read_bytes() != manifest.data):
        raise _refuse(archive_path, f"{rref}: its {kept.name} does not list its files")
    build = folder / BUILD_FILE
    if os.path.lexists(build) and build_record(build) is None:
        raise _refuse(archive_path, f"{rref}: its {BUILD_FILE} is not a build record")


def _dependencies_first(verified: _Verified) -> list[tuple[RRef, Context, Path]]:
    """Order realizations so each comes after those in its context."""
    by_rref = {rref: (rref, context, folder) for rref, context, folder in verified.realizations}

    def used(rref: RRef) -> list[RRef]:
        return [item for items in by_rref[rref][1].values() for item in items if item in by_rref]

    return [by_rref[rref] for rref in dependencies_first(sorted(by_rref), used)]


def import_closure(store: Store, archive_path: Path | str) -> list[RRef]:
    """Verify an archive, then publish what the store lacks; return the archive's roots.

    Nothing is published unless every entry verifies. Realizations already present are not
    copied again. Dependencies are published before dependents.
    """
    source = Path(archive_path)
    store.tmp.mkdir(parents=True, exist_ok=True)
    unpacked = Path(tempfile.mkdtemp(dir=store.tmp, prefix=f"import-{os.getpid()}-"))
    try:
        _unpack(source, unpacked)
        verified = _verify(source, unpacked, store)
        for config in verified.configs.values():
            store.add_derivation(config)
        for rref, context, folder in _dependencies_first(verified):
            with store.lock(rref_to_dref(rref)):
                present = store.has_realization(rref)
                if present and not store.realization_problems(rref):
                    continue
                # A damaged copy in the store is replaced by the archive's verified one.
                (folder / CONTEXT_FILE).unlink()
                (folder / integrity.MANIFEST_FILE).unlink(missing_ok=True)
                published = store.publish_realization(rref_to_dref(rref), context, folder)
            if published != rref:
                raise StoreError(f"importing {rref} from {source} published {published} instead")
        return verified.roots
    finally:
        remove_tree(unpacked)


def spack(rrefs: Iterable[RRef], out: Path | str, S: Store | Path | str | None = None) -> Path:
    """The seeds' name of `export_closure`."""
    return export_closure(as_store(S), rrefs, out)


def sunpack(archive: Path | str, S: Store | Path | str | None = None) -> list[RRef]:
    """The seeds' name of `import_closure`."""
    return import_closure(as_store(S), archive)
