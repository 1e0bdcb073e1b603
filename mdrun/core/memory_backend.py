"""A storage tier held in memory (dicts of bytes): for tests, and a model of the protocol.

It keeps exactly what `backend.StoreBackend` names (configs, manifests, build records and the
bytes of each entry) and publishes a realization by writing its manifest last, as a remote
cache does, so what it lists is whole. It checks nothing it is given or asked for: whoever reads
from it checks (see `substitute.py`).
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from mdrun.core.integrity import BUILD_FILE, published_entries
from mdrun.core.refs import DRef, RRef, rref_to_dref
from mdrun.errors import StoreError

__all__ = ["MemoryBackend"]


class MemoryBackend:
    """Derivations and realizations as bytes in this process's memory."""

    def __init__(self, location: str = "memory", *, writable: bool = True) -> None:
        self._location = location
        self._writable = writable
        self.configs: dict[DRef, bytes] = {}
        """Each derivation's config, as it was put."""
        self.manifests: dict[RRef, bytes] = {}
        """Each published realization's manifest (written last: what is listed)."""
        self.entries: dict[RRef, dict[str, bytes]] = {}
        """Each realization's entries by path: a file's bytes or a link's target text."""
        self.build_records: dict[RRef, bytes] = {}
        """Each realization's build record, when it had one."""
        self._lock = threading.Lock()

    @property
    def location(self) -> str:
        """The name it was given, for messages."""
        return self._location

    @property
    def writable(self) -> bool:
        """As it was made."""
        return self._writable

    def config_bytes(self, dref: DRef) -> bytes | None:
        """The config put for a derivation; None when absent."""
        return self.configs.get(dref)

    def realizations_of(self, dref: DRef) -> list[RRef]:
        """The realizations of `dref` whose manifest is there, sorted."""
        with self._lock:
            published = list(self.manifests)
        return sorted(rref for rref in published if rref_to_dref(rref) == dref)

    def manifest_bytes(self, rref: RRef) -> bytes | None:
        """A realization's manifest; None when absent."""
        return self.manifests.get(rref)

    def build_record_bytes(self, rref: RRef) -> bytes | None:
        """A realization's build record; None when absent."""
        return self.build_records.get(rref)

    def read_entry(self, rref: RRef, path: str) -> bytes:
        """One entry's bytes; KeyError when absent."""
        return self.entries[rref][path]

    def copy_entry(self, rref: RRef, path: str, destination: Path) -> None:
        """Write one entry's bytes to a new file `destination`; KeyError when absent."""
        data = self.entries[rref][path]
        destination.write_bytes(data)

    def put_realization(self, dref: DRef, config: bytes, rref: RRef, folder: Path) -> None:
        """Copy a realization folder's entries in as its manifest lists them, the manifest last."""
        self._check_writable()
        with self._lock:
            self.configs.setdefault(dref, config)
            if rref in self.manifests:
                return
        manifest, entries = published_entries(folder)
        stored = self.entries.setdefault(rref, {})
        for entry in entries:
            source = folder / entry.path
            if entry.kind == "link":
                stored[entry.path] = os.readlink(source).encode("utf-8", "surrogateescape")
            elif entry.kind != "dir":
                stored[entry.path] = source.read_bytes()
        build = folder / BUILD_FILE
        if build.is_file() and not build.is_symlink():
            self.build_records[rref] = build.read_bytes()
        with self._lock:
            self.manifests[rref] = manifest.data

    def remove_realization(self, rref: RRef) -> None:
        """Forget a realization, its manifest first."""
        self._check_writable()
        with self._lock:
            self.manifests.pop(rref, None)
            self.entries.pop(rref, None)
            self.build_records.pop(rref, None)

    def _check_writable(self) -> None:
        if not self._writable:
            raise StoreError(f"{self._location} is a read-only storage tier")

    def __repr__(self) -> str:
        return f"MemoryBackend({self._location!r}, {len(self.manifests)} realizations)"
