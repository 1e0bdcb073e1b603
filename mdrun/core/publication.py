"""How builds come into the store: a realizer's folder, or a block's records written from memory.

A build is made in `tmp/` and published by one rename into its derivation's folder; a new
derivation's folder can be staged in `tmp/` with its first build inside, so that both arrive
with one rename. A damaged copy of the same realization is replaced. `Store` holds these
methods (this module keeps `store.py` readable in one sitting); what the store knows of its
folders, caches and damage is `store.py`'s.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from mdrun.core.config import Config
from mdrun.core.context import CONTEXT_FILE, context_json
from mdrun.core.files import make_read_only, remove_tree, write_new_file
from mdrun.core.folder_backend import CONFIG_FILE
from mdrun.core.hashing import KnownDigests
from mdrun.core.integrity import BUILD_FILE, MANIFEST_FILE, Manifest, build_record, manifest_of_tree
from mdrun.core.refs import DRef, RRef, make_dref, make_rref, parse_dref
from mdrun.errors import DamagedRealization, MdrunError, StoreError, os_error

if TYPE_CHECKING:
    from mdrun.core.folder_backend import FolderBackend

PUBLISHED_DIGESTS = KnownDigests()
"""The files this process hashed to publish them: a block's snapshot links the unchanged files
of the one before, which need not be read again (see `KnownDigests`)."""
RESERVED_NAMES = frozenset({CONTEXT_FILE, MANIFEST_FILE})
"""Files the store writes into a realization; a realizer may not create them."""


@dataclass(frozen=True, slots=True)
class PreparedRecords:
    """A build folder hashed with the records to add to it, not yet published (see
    `Publication.prepare_records`)."""

    config: Config
    """The derivation's config."""
    folder: Path
    """The build folder."""
    records: Mapping[str, bytes]
    """The top-level files to write into it."""
    context: bytes
    """Its context file's content."""
    manifest: Manifest
    """The manifest of the folder with the records and the context."""
    rref: RRef
    """The reference it is published as."""


class Publication:
    """The publication methods of `Store`."""

    if TYPE_CHECKING:  # what they use of the store
        local: FolderBackend
        _staged: dict[Path, Path]
        _spare_folders: list[tuple[Path, Path]]
        _cache_lock: threading.Lock
        _configs: dict[DRef, Config]
        _manifests: dict[RRef, Manifest]
        _contexts: dict[RRef, bytes]
        damaged: dict[str, DamagedRealization]

        def has_derivation(self, dref: DRef) -> bool: ...
        def add_derivation(self, config: Config) -> DRef: ...
        def realization_path(self, rref: RRef) -> Path: ...
        def realization_problems(self, rref: RRef) -> list[str]: ...
        def remove(self, path: Path) -> None: ...

    def new_build_folder(self, dref: DRef, config: Config | None = None) -> Path:
        """A fresh folder in `tmp/`, named after this process so leftovers can be cleaned.

        Given the derivation's config, for a derivation not in the store yet, the folder is
        made inside a staging copy of the derivation's folder: `publish_records` then brings
        in both with one rename (`discard_build_folder` drops both)."""
        _, name = parse_dref(dref)
        prefix = f"build-{os.getpid()}-{name}-"
        if config is None or self.has_derivation(dref):
            return self.local.temporary_folder(prefix)
        with self._cache_lock:
            spare = self._spare_folders.pop() if self._spare_folders else None
        if spare is not None:  # its config is written when it is published
            staging, folder = spare
        else:
            staging = self.local.stage_derivation(prefix, config.canonical)
            folder = self._realization_folder(staging)
        with self._cache_lock:
            self._staged[folder] = staging
        return folder

    def prepare_build_folder(self) -> None:
        """Make the next new derivation's build folder ahead of time.

        Called in a thread of its own: making folders takes milliseconds on a busy disk.
        `discard_spare_build_folders` removes what is left unused; a failure is left for
        `new_build_folder` to meet."""
        try:
            staging = self.local.temporary_folder(f"build-{os.getpid()}-next-")
            folder = self._realization_folder(staging)
        except MdrunError:
            return
        with self._cache_lock:
            self._spare_folders.append((staging, folder))

    def discard_spare_build_folders(self) -> None:
        """Remove the build folders made ahead of time and not used."""
        with self._cache_lock:
            spares, self._spare_folders[:] = list(self._spare_folders), []
        for staging, _folder in spares:
            remove_tree(staging)

    def _realization_folder(self, staging: Path) -> Path:
        """The build folder inside a staging folder (removed with it if it cannot be made)."""
        folder = staging / "realization"
        try:
            os.mkdir(folder)
            os.chmod(folder, 0o755)
        except OSError as err:
            remove_tree(staging)
            raise os_error(err, folder, "cannot make a build folder") from err
        return folder

    def discard_build_folder(self, folder: Path) -> None:
        """Delete a build folder that was not published (and its staging folder, if any)."""
        with self._cache_lock:
            staging = self._staged.pop(folder, None)
        remove_tree(folder if staging is None else staging)

    def publish_records(
        self,
        config: Config,
        folder: Path,
        records: Mapping[str, bytes],
        build_record: bytes,
        *,
        doing: str = "cannot write a build's records",
    ) -> RRef:
        """Publish a build folder with `records` added as a realization of `config`'s derivation.

        The records (top-level files) are written read-only from memory and hashed without
        being read back, beside the build record and what the builder left in the folder; the
        realization's context is empty (a block's).

        One pass over the folder hashes what is there; each record is written once, and the
        realization (with its derivation, when `new_build_folder` staged one) is moved into
        the store by one rename. Call it holding the derivation's lock. An OSError is said as
        `doing`, naming the file."""
        prepared = self.prepare_records(config, folder, records, doing=doing)
        return self.finish_records(prepared, build_record, doing=doing)

    def prepare_records(
        self,
        config: Config,
        folder: Path,
        records: Mapping[str, bytes],
        *,
        doing: str = "cannot write a build's records",
    ) -> PreparedRecords:
        """Hash a build folder and its records: the first half of `publish_records`.

        That gives the realization's reference; nothing is written. The builder must not
        change the folder before `finish_records` publishes it (which another thread may do)."""
        context_data = context_json({})
        try:
            added = {**records, CONTEXT_FILE: context_data}
            manifest = manifest_of_tree(folder, added, PUBLISHED_DIGESTS)
        except OSError as err:
            raise os_error(err, err.filename or folder, doing) from err
        derivation_hash, name = parse_dref(make_dref(config.hash_part, config.name))
        rref = make_rref(manifest.realization_hash, derivation_hash, name)
        return PreparedRecords(config, folder, dict(records), context_data, manifest, rref)

    def finish_records(
        self,
        prepared: PreparedRecords,
        build_record: bytes,
        *,
        doing: str = "cannot write a build's records",
    ) -> RRef:
        """The second half of `publish_records`: write the records and publish the folder."""
        config, folder, manifest, rref = (
            prepared.config,
            prepared.folder,
            prepared.manifest,
            prepared.rref,
        )
        dref = make_dref(config.hash_part, config.name)
        try:
            for name, data in prepared.records.items():
                write_new_file(folder / name, data)
            write_new_file(folder / CONTEXT_FILE, prepared.context)
            write_new_file(folder / BUILD_FILE, build_record)
            write_new_file(folder / MANIFEST_FILE, manifest.data)
            make_read_only(folder)
        except OSError as err:
            raise os_error(err, err.filename or folder, doing) from err
        with self._cache_lock:
            staging = self._staged.get(folder)
        if staging is not None and not os.path.lexists(staging / CONFIG_FILE):
            try:  # a folder made ahead of time (`prepare_build_folder`)
                write_new_file(staging / CONFIG_FILE, config.canonical)
            except OSError as err:
                raise os_error(err, staging / CONFIG_FILE, "cannot store a config") from err
        if staging is None:
            self.add_derivation(config)
            self._put_in_place(rref, folder, manifest)
        elif self.local.publish_staged(dref, staging, folder, manifest.realization_hash):
            with self._cache_lock:
                self._configs[dref] = config
                self._manifests[rref] = manifest
        else:  # the derivation appeared meanwhile: the realization goes into its folder
            self._put_in_place(rref, staging / manifest.realization_hash, manifest)
            remove_tree(staging)
        with self._cache_lock:
            self._staged.pop(folder, None)
            self._contexts[rref] = prepared.context
        return rref

    def publish_realization(
        self, dref: DRef, context: Mapping[DRef, list[RRef]], folder: Path
    ) -> RRef:
        """Move a finished build folder into the store; equal content is already there."""
        for name in RESERVED_NAMES:
            if os.path.lexists(folder / name):
                raise StoreError(f"{dref}: a realizer may not create {name!r} (reserved name)")
        build = folder / BUILD_FILE
        if os.path.lexists(build) and build_record(build) is None:
            raise StoreError(
                f"{dref}: {BUILD_FILE} must be a build record (a small JSON object of numbers "
                "and strings, see write_build_metadata)"
            )
        context_data = context_json(context)
        try:
            (folder / CONTEXT_FILE).write_bytes(context_data)
            manifest = manifest_of_tree(folder)
        except OSError as err:
            raise os_error(err, folder, "cannot write a build's records") from err
        derivation_hash, name = parse_dref(dref)
        rref = make_rref(manifest.realization_hash, derivation_hash, name)
        self.publish_checked(rref, folder, manifest)
        with self._cache_lock:
            self._contexts[rref] = context_data
        return rref

    def publish_checked(self, rref: RRef, folder: Path, manifest: Manifest) -> None:
        """Publish a folder whose tree `manifest` describes (its context file included) as
        `rref`: the manifest is written, the folder made read-only and renamed into place."""
        try:
            (folder / MANIFEST_FILE).write_bytes(manifest.data)
        except OSError as err:
            raise os_error(err, folder, "cannot write a build's records") from err
        self._put_in_place(rref, folder, manifest)

    def _put_in_place(self, rref: RRef, folder: Path, manifest: Manifest) -> None:
        """Rename a finished realization folder into the store (read-only)."""
        target = self.realization_path(rref)
        if target.is_dir() and self.realization_problems(rref):
            # The store's copy is damaged: ours, freshly built, takes its place.
            self.remove(target)
        self.local.publish_read_only(folder, target)
        with self._cache_lock:
            self._manifests[rref] = manifest
            self._contexts.pop(rref, None)
            self.damaged.pop(rref, None)
