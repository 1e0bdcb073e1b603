"""Shared test fixtures.

Sections: store isolation and Hypothesis settings (used by every test), then the core's store
fixtures. Kernel fixtures for the document tests belong in their own section below those.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from mdrun.core.default_store import fsinit, set_default_store
from mdrun.core.registry import Registry
from mdrun.core.store import STORE_ENVIRONMENT_VARIABLE, Store

# -- every test: no default store of the user's, Hypothesis without deadlines -----------------

settings.register_profile(
    "mdrun",
    deadline=None,
    max_examples=50,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile("mdrun")


@pytest.fixture(autouse=True)
def _isolated_default_store(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Path]:
    """Point `MDRUN_STORE` at a fresh folder so no test touches the user's default store (nor
    a remote cache the user's environment names), and keep the `mdrun` processes tests start
    away from the mdrun server (tests/server starts its own, in folders of its own)."""
    root = tmp_path_factory.mktemp("default-store")
    monkeypatch.setenv(STORE_ENVIRONMENT_VARIABLE, str(root))
    monkeypatch.setenv("MDRUN_SERVER", "off")
    monkeypatch.delenv("MDRUN_SERVER_FOLDER", raising=False)
    monkeypatch.delenv("MDRUN_CACHE", raising=False)
    monkeypatch.delenv("MDRUN_TRUSTED_KEYS", raising=False)
    set_default_store(None)
    yield root
    set_default_store(None)


# -- the core's store fixtures -----------------------------------------------------------------


@pytest.fixture
def store(tmp_path: Path) -> Store:
    """A fresh store of its own (also made the default store for the test)."""
    return fsinit(tmp_path / "store")


@pytest.fixture
def registry(store: Store) -> Registry:
    """A fresh registry on the test's store."""
    return Registry(store)


# -- kernel fixtures (document tests) ------------------------------------------------------------
