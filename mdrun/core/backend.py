"""Where realizations are kept: the seam between the store's logic and its storage.

A store reads through tiers in order (its own folder first, then remote caches) and builds
only what no tier holds, as Nix substituters do. Every tier speaks this small protocol, in the
terms the store already trusts: a derivation's canonical config, a realization's manifest (whose
SHA-256 is its reference) and the entries the manifest lists. A tier is never trusted: whoever
reads from one checks the config against its dref and the manifest against its rref, and every
entry against the manifest (`substitute` does), so a tier may be a shared folder, an object
store or an HTTP server anyone could have written to.

An entry is named by its path inside the realization, as the manifest lists it; for a regular
file its bytes are the file's content, for a link the link's target text (the manifest records
the SHA-256 of either). A writer publishes a realization's entries and build record first and
its manifest last, so a reader never lists a half-written realization. A tier that cannot be
read at all (a missing mount, a network error) raises StoreError or OSError; `substitute` warns
and goes on to the next tier.

Tiers in mdrun.core: `folder_backend.FolderBackend` (a store's own folder, `Store.local`) and
`memory_backend.MemoryBackend`; `tests/core/backend_contract.py` is the test suite every tier
must pass.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol, runtime_checkable

from mdrun.core.refs import DRef, RRef


@runtime_checkable
class StoreBackend(Protocol):
    """One tier of storage for derivations and realizations."""

    @property
    def location(self) -> str:
        """Where it is, for messages (a folder, a URL)."""
        ...

    @property
    def writable(self) -> bool:
        """False for a tier that can only be read (an HTTP cache)."""
        ...

    def config_bytes(self, dref: DRef) -> bytes | None:
        """The canonical config stored for a derivation, unchecked; None when absent."""
        ...

    def realizations_of(self, dref: DRef) -> list[RRef]:
        """The realizations of a derivation whose manifest is published, sorted."""
        ...

    def manifest_bytes(self, rref: RRef) -> bytes | None:
        """A realization's manifest, unchecked; None when absent."""
        ...

    def build_record_bytes(self, rref: RRef) -> bytes | None:
        """A realization's build record (`__build__.json`), unchecked; None when absent."""
        ...

    def read_entry(self, rref: RRef, path: str) -> bytes:
        """The bytes of one entry (see the module docstring), unchecked.

        Raises KeyError when the tier does not hold it."""
        ...

    def copy_entry(self, rref: RRef, path: str, destination: Path) -> None:
        """Write one file entry's bytes to `destination` without holding them all in memory.

        Raises KeyError when the tier does not hold it."""
        ...

    def put_realization(self, dref: DRef, config: bytes, rref: RRef, folder: Path) -> None:
        """Store a verified realization read from a local folder: config, entries and build
        record first, the manifest last. Storing one already present does nothing."""
        ...

    def remove_realization(self, rref: RRef) -> None:
        """Forget a realization (its manifest first, so readers stop seeing it at once)."""
        ...
