"""The storage tiers of mdrun.core, each held to the one backend contract."""

from __future__ import annotations

from pathlib import Path

import pytest

from mdrun.core.backend import StoreBackend
from mdrun.core.folder_backend import FolderBackend
from mdrun.core.memory_backend import MemoryBackend
from mdrun.core.store import Store
from tests.core.backend_contract import BackendContract


class TestFolderBackend(BackendContract):
    """A store's own folder (another store's, used as a tier)."""

    @pytest.fixture
    def backend(self, tmp_path: Path) -> StoreBackend:
        return FolderBackend(tmp_path / "tier")


class TestTheStoresOwnFolder(BackendContract):
    """The folder tier a `Store` reads through (`store.local`)."""

    @pytest.fixture
    def backend(self, tmp_path: Path) -> StoreBackend:
        return Store.initialize(tmp_path / "tier-store").local


class TestMemoryBackend(BackendContract):
    """Dicts of bytes."""

    @pytest.fixture
    def backend(self, tmp_path: Path) -> StoreBackend:
        return MemoryBackend("memory-tier")
