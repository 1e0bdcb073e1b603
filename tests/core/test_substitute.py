"""Substitution: realizations taken from another tier instead of built, and only if they verify."""

from __future__ import annotations

from pathlib import Path

import pytest

from mdrun.core.hashing import sha256_hex
from mdrun.core.memory_backend import MemoryBackend
from mdrun.core.realization import realize1
from mdrun.core.refs import DRef, RRef, make_rref, parse_dref, rref_to_dref
from mdrun.core.registry import Registry, instantiate
from mdrun.core.store import Store
from mdrun.core.substitute import fetch_realization, push_closure, push_realization
from mdrun.errors import DamagedRealization, StoreError
from tests.core.helpers import artifact, counting_text, file_stage, tmp_entries


def chain(r: Registry, log: list[str], text: object = "hello") -> DRef:
    first = file_stage(r, "first", log=log, text=text)  # type: ignore[arg-type]
    return file_stage(r, "second", deps=[first], log=log)


def built_and_pushed(root: Path, tier: MemoryBackend) -> RRef:
    """Realize the chain in a store of its own and push it to `tier`."""
    store = Store.initialize(root)
    log: list[str] = []
    rref = realize1(instantiate(chain, log, r=Registry(store)))
    assert log == ["first", "second"]
    push_closure(store, tier, [rref])
    return rref


def substituted_store(root: Path, tier: MemoryBackend) -> tuple[Store, list[DamagedRealization]]:
    store = Store.initialize(root, substituters=[tier])
    seen: list[DamagedRealization] = []
    store.on_damage = seen.append
    return store, seen


def test_what_a_tier_holds_is_fetched_instead_of_built(tmp_path: Path) -> None:
    tier = MemoryBackend("memory-tier")
    rref = built_and_pushed(tmp_path / "ci", tier)
    store, seen = substituted_store(tmp_path / "laptop", tier)
    log: list[str] = []
    assert realize1(instantiate(chain, log, r=Registry(store))) == rref
    assert log == []
    assert artifact(store, rref) == "hello"
    assert store.realization_problems(rref) == []
    assert seen == []
    assert tmp_entries(store) == []


def test_another_store_folder_serves_as_a_tier(tmp_path: Path) -> None:
    ci = Store.initialize(tmp_path / "ci")
    rref = realize1(instantiate(chain, [], r=Registry(ci)))
    store = Store.initialize(tmp_path / "laptop", substituters=[ci.local])
    log: list[str] = []
    assert realize1(instantiate(chain, log, r=Registry(store))) == rref
    assert log == []


def test_a_flipped_byte_is_refused_and_the_stage_is_built(tmp_path: Path) -> None:
    tier = MemoryBackend("memory-tier")
    rref = built_and_pushed(tmp_path / "ci", tier)
    stored = bytearray(tier.entries[rref]["artifact"])
    stored[0] ^= 1
    tier.entries[rref]["artifact"] = bytes(stored)
    store, seen = substituted_store(tmp_path / "laptop", tier)
    log: list[str] = []
    assert realize1(instantiate(chain, log, r=Registry(store))) == rref
    assert log == ["second"]  # the first stage was fetched; the damaged second one built
    assert [damage.rref for damage in seen] == [rref]
    assert "memory-tier" in str(seen[0]) and "artifact: changed" in str(seen[0])
    assert artifact(store, rref) == "hello"
    assert tmp_entries(store) == []
    with pytest.raises(DamagedRealization, match="memory-tier"):
        fetch_realization(Store.initialize(tmp_path / "third"), tier, rref)


def test_a_config_that_does_not_hash_to_its_dref_is_refused(tmp_path: Path) -> None:
    tier = MemoryBackend("memory-tier")
    rref = built_and_pushed(tmp_path / "ci", tier)
    dref = rref_to_dref(rref)
    tier.configs[dref] = b'{"name":"second","deps":[],"extra":1}'
    store, _ = substituted_store(tmp_path / "laptop", tier)
    log: list[str] = []
    with pytest.warns(UserWarning, match="memory-tier.*does not hash"):
        assert realize1(instantiate(chain, log, r=Registry(store))) == rref
    assert log == ["second"]
    with pytest.raises(StoreError, match="does not hash"):
        fetch_realization(Store.initialize(tmp_path / "third"), tier, rref)


def test_a_realization_of_another_context_is_not_fetched(tmp_path: Path) -> None:
    text = counting_text()  # the first stage makes different bytes each time it builds
    tier = MemoryBackend("memory-tier")
    ci = Store.initialize(tmp_path / "ci")
    pushed = realize1(instantiate(chain, [], text, r=Registry(ci)))
    push_closure(ci, tier, [pushed])
    store = Store.initialize(tmp_path / "laptop")
    log: list[str] = []
    realize1(instantiate(file_stage, "first", log=log, text=text, r=Registry(store)))
    store.substituters.append(tier)
    log.clear()
    rref = realize1(instantiate(chain, log, text, r=Registry(store)))
    assert log == ["second"]
    assert rref != pushed


def test_a_manifest_naming_a_path_outside_is_refused(tmp_path: Path) -> None:
    store = Store.initialize(tmp_path / "store")
    dref = rref_to_dref(built_and_pushed(tmp_path / "ci", MemoryBackend()))
    evil = b"evil\n"
    manifest = (
        f"file ../../../escaped {sha256_hex(evil)}\nfile context.json {sha256_hex(b'{}')}\n"
    ).encode()
    derivation_hash, name = parse_dref(dref)
    rref = make_rref(sha256_hex(manifest)[:32], derivation_hash, name)
    tier = MemoryBackend("crafted")
    ci_config = Store.initialize(tmp_path / "ci").config_of(dref).canonical
    tier.configs[dref] = ci_config
    tier.entries[rref] = {"../../../escaped": evil, "context.json": b"{}"}
    tier.manifests[rref] = manifest
    with pytest.raises(DamagedRealization, match="outside"):
        fetch_realization(store, tier, rref)
    assert not store.has_realization(rref)
    assert not list(tmp_path.rglob("escaped"))


def test_a_read_only_tier_takes_no_push(tmp_path: Path) -> None:
    store = Store.initialize(tmp_path / "store")
    rref = realize1(instantiate(chain, [], r=Registry(store)))
    with pytest.raises(StoreError, match="read-only"):
        push_realization(store, MemoryBackend("readonly", writable=False), rref)
