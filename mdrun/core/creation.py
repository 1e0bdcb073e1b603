"""Creating and opening a store's root: its skeleton, its version file, made to appear at once.

A new store is made complete (folders and version file) in a folder beside its root and renamed
into place, so several processes opening the same new store at the same moment each see either
nothing (and make their own, which loses the race harmlessly) or the whole store, never a store
without its version. Where the parent folder cannot take that (read-only, or a mount point),
the store is made in place with the version file written last; a process that finds such a
store in the making completes it the same way. The default root, when none is named, is chosen
here too. The rest of the store lives in `store.py`.
"""

from __future__ import annotations

import os
from pathlib import Path

from mdrun.core.files import remove_tree, replaced_atomically
from mdrun.errors import NO_SPACE_ERRNOS, StoreError, os_error

STORE_VERSION = 2
"""2: every file of a realization is hashed, through the manifest it keeps."""
VERSION_TEXT = f"mdrun-store {STORE_VERSION}\n"
VERSION_FILE = "version"
STORE_FOLDERS = ("store", "tmp", "locks")
STORE_ENTRIES = frozenset({VERSION_FILE, *STORE_FOLDERS, "documents", "roots"})
"""What a store's root holds (`documents` is the evaluator's record of runs, `roots` the
realizations each document used, see `roots.py`)."""


STORE_ENVIRONMENT_VARIABLE = "MDRUN_STORE"


def default_store_root() -> Path:
    """`$MDRUN_STORE`, else `$XDG_CACHE_HOME/mdrun/store` (`~/.cache/mdrun/store`)."""
    configured = os.environ.get(STORE_ENVIRONMENT_VARIABLE)
    if configured:
        return Path(configured)
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(cache) / "mdrun" / "store"


def open_store_root(root: Path) -> None:
    """Create the store at `root` unless it has a version file; then check that version."""
    if not (root / VERSION_FILE).exists():
        _create(Path(os.path.realpath(root)))
    check_version(root)


def check_version(root: Path) -> None:
    """Refuse a folder that is not a store of this version."""
    version_file = root / VERSION_FILE
    try:
        text = version_file.read_text()
    except FileNotFoundError:
        raise StoreError(
            f"{root} is not an mdrun store (no version file); create it with fsinit"
        ) from None
    except OSError as err:
        raise os_error(err, version_file, "cannot read the store's version") from err
    if text != VERSION_TEXT:
        raise StoreError(
            f"{root} holds a store of another version ({text.strip()!r}); this mdrun reads "
            f"{VERSION_TEXT.strip()!r}. A store is a cache: remove it, or choose another "
            "folder (--store, $MDRUN_STORE)"
        )


def _create(target: Path) -> None:
    """Make the store complete beside `target`, then rename it into place."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise os_error(err, target.parent, "cannot create the store's folder") from err
    import tempfile  # here: opening an existing store (every run) does not need it

    staging: Path | None = None
    try:
        staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.new-"))
        _write_skeleton(staging)
        os.chmod(staging, 0o755)
        os.rename(staging, target)
        return
    except OSError as err:
        if err.errno in NO_SPACE_ERRNOS:
            raise os_error(err, target, "cannot create the store") from err
        # Another process made it first, or `target` is a folder that holds something (or
        # cannot be replaced): complete it in place, if it is a store in the making.
    finally:
        if staging is not None and os.path.lexists(staging):
            remove_tree(staging)
    _create_in_place(target)


def _write_skeleton(folder: Path) -> None:
    """The store's folders, then its version file (written whole, then renamed)."""
    for name in STORE_FOLDERS:
        (folder / name).mkdir(exist_ok=True)
    with replaced_atomically(folder / VERSION_FILE) as temporary:
        temporary.write_text(VERSION_TEXT)
        os.chmod(temporary, 0o644)


def _create_in_place(target: Path) -> None:
    """Write the store into a folder that holds nothing but a store in the making."""
    if (target / VERSION_FILE).exists():
        return
    try:
        entries = os.listdir(target) if target.is_dir() else []
    except OSError as err:
        raise os_error(err, target, "cannot read the store's folder") from err
    foreign = [
        entry
        for entry in entries
        if entry not in STORE_ENTRIES and not entry.startswith(f".{VERSION_FILE}.")
    ]
    if foreign:
        raise StoreError(
            f"{target} is not an mdrun store (no version file) and is not empty "
            f"(it holds {sorted(foreign)[0]!r}...); choose an empty or new folder"
        )
    try:
        target.mkdir(parents=True, exist_ok=True)
        _write_skeleton(target)
    except OSError as err:
        raise os_error(err, target, "cannot create the store") from err
