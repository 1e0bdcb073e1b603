"""The remote cache seen from documents: read through it, push to it, and trust its snapshots
only when they are signed.

A block's outputs come first: a realization is fetched from the cache without its session
snapshot, which is fetched only when a later block must run from it, and then only if the
realization is signed by a key the user trusts (a snapshot is a pickle: loading it runs code).
Otherwise the session replays, and the run says so once. What documents use is pushed with its
context, signed when a key is given.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from mdrun.core.lazy import fetch_left_out, left_out, tier_named
from mdrun.core.refs import DRef, RRef
from mdrun.core.remote import FsspecBackend
from mdrun.core.signing import PublicKey, SigningKey, signers
from mdrun.core.store import Store
from mdrun.document.cache_settings import CacheSettings
from mdrun.document.record_files import SNAPSHOT_FILE, SNAPSHOT_FILES
from mdrun.errors import DamagedRealization, StoreError

if TYPE_CHECKING:
    from mdrun.document.formats.settings import Settings

FETCHED_ON_DEMAND = frozenset({SNAPSHOT_FILES})
"""What a realization is fetched without, until it is needed (fnmatch patterns): its snapshot's
index and files of variables."""

Notice = Callable[[str], None]
"""Told, once per cache, that its snapshots are not loaded, or that it cannot be read (the
command line prints it: `note: ...`, `warning: ...`)."""


class CacheTier(FsspecBackend):
    """A remote cache as a store's substituter, with the keys its snapshots must be signed by."""

    def __init__(self, url: str, trusted_keys: Sequence[PublicKey] = ()) -> None:
        super().__init__(url)
        self.trusted_keys = tuple(trusted_keys)
        self.notice: Notice | None = None
        """Told once that snapshots are not loaded, or that the cache cannot be read."""
        self._untrusted_said = False
        self._trust: dict[RRef, bool] = {}
        self.failure: StoreError | None = None
        """Why the cache could not be read; it is then not asked again in this command."""

    def realizations_of(self, dref: DRef) -> list[RRef]:
        """As the backend's, but a cache that cannot be reached is said so once, then left
        alone: the blocks it may hold are run here."""
        if self.failure is not None:
            return []
        try:
            return super().realizations_of(dref)
        except StoreError as err:
            self.failure = err
            if self.notice is not None:
                self.notice(f"warning: {err.message}; blocks are run here instead")
            return []

    def is_signed(self, store: Store, rref: RRef) -> bool:
        """Whether a realization is signed, here, by a trusted key (its manifest, checked
        locally, is what the signature must cover)."""
        known = self._trust.get(rref)
        if known is None:
            manifest = store.manifest(rref).data
            known = bool(signers(self.signatures_bytes(rref), rref, manifest, self.trusted_keys))
            self._trust[rref] = known
        return known

    def say_untrusted(self) -> None:
        """Say once that this cache's snapshots are not loaded."""
        if self._untrusted_said or self.notice is None:
            return
        self._untrusted_said = True
        reason = (
            "no key is trusted (MDRUN_TRUSTED_KEYS, [tool.mdrun] trusted-keys)"
            if not self.trusted_keys
            else "they are not signed by a trusted key"
        )
        self.notice(
            f"note: session snapshots from the cache {self.url} are not loaded: {reason}; "
            "the sessions replay their blocks instead"
        )


def open_cache(store: Store, settings: CacheSettings, notice: Notice | None = None) -> CacheTier:
    """Make the configured cache the store's substituter; snapshots are fetched on demand."""
    if settings.url is None:
        raise StoreError("no remote cache is configured")
    tier = CacheTier(settings.url, settings.trusted_keys)
    tier.notice = notice
    attach(store, tier)
    return tier


def attach(store: Store, tier: CacheTier) -> None:
    """Read `store` through an opened cache (after its own folder)."""
    if tier not in store.substituters:
        store.substituters.append(tier)
    store.fetch_on_demand = store.fetch_on_demand | FETCHED_ON_DEMAND


def usable_snapshot(store: Store, rref: RRef, snapshot: Path | None) -> Path | None:
    """The snapshot a session may load for a block's result: one here (built here, or fetched
    after its signature was checked), or one its cache holds signed by a trusted key (fetched
    when loaded, see `fetch_snapshot`); None otherwise (the session replays)."""
    if snapshot is None:
        return None
    record = left_out(store, rref)
    if record is None or SNAPSHOT_FILE not in record.entries:
        return snapshot
    tier = tier_named(store, record.tier)
    if not isinstance(tier, CacheTier):
        return None
    try:
        signed = tier.is_signed(store, rref)
    except (StoreError, OSError):
        signed = False
    if not signed:
        tier.say_untrusted()
        return None
    return snapshot


def fetch_snapshot(store: Store, rref: RRef) -> bool:
    """Bring a block's snapshot (its index and files) in from its cache right before a session
    loads it (its signature was checked by `usable_snapshot`); False when it cannot be had
    (reported)."""
    record = left_out(store, rref)
    wanted = [] if record is None else sorted(record.entries)
    try:
        return all(fetch_left_out(store, rref, path) for path in wanted)
    except DamagedRealization as damage:
        damage.consequence = "it was not loaded: the blocks before were run again instead"
        store.report_damage(damage)
    except (StoreError, OSError) as err:
        where = f"{rref}/{SNAPSHOT_FILE}"
        consequence = "the blocks before were run again instead"
        store.report_damage(DamagedRealization(where, f"not fetched: {err}", rref, consequence))
    return False


@dataclass(slots=True)
class PushReport:
    """What a push did."""

    url: str
    """The cache."""
    pushed: list[RRef] = field(default_factory=list)
    """Realizations uploaded now."""
    present: int = 0
    """Realizations the cache already held."""
    signed: int = 0
    """Realizations a signature was added to."""
    key_id: str | None = None
    """The signing key's id."""

    def summary(self) -> str:
        """One line for the terminal."""
        text = f"{len(self.pushed)} realizations pushed to {self.url}"
        if self.present:
            text += f" ({self.present} already there)"
        if self.key_id is not None:
            text += f", {self.signed} signatures added by key {self.key_id}"
        return text


def push_documents(
    documents: Sequence[str],
    store: Store,
    tier: FsspecBackend,
    settings: Settings | None = None,
    key: SigningKey | None = None,
) -> PushReport:
    """Upload the realizations the documents use now, with their contexts; sign each one
    (before its manifest is written, so that it is published signed) when a key is given."""
    from mdrun.core.substitute import push_closure
    from mdrun.document.pipeline import realizations_in_use

    if not tier.writable:
        raise StoreError(f"the cache {tier.location} is read-only: nothing can be pushed to it")
    rrefs = sorted(set(realizations_in_use(documents, store, settings)))
    report = PushReport(tier.location, key_id=None if key is None else key.public_key.key_id)
    if key is not None:
        for rref in rrefs:
            line = key.signature_line(rref, store.manifest(rref).data)
            before = tier.signatures_bytes(rref) or b""
            tier.add_signature(rref, line)
            report.signed += line.encode() not in before
    report.pushed = push_closure(store, tier, rrefs)
    report.present = len(rrefs) - len([rref for rref in report.pushed if rref in rrefs])
    return report


def download_summary(tier: FsspecBackend) -> str:
    """What a command fetched from the cache, in bytes: block outputs and records, snapshots,
    and the manifests and configs that describe them."""
    snapshots = sum(
        size for _, path, size in tier.downloads if fnmatch.fnmatchcase(path, SNAPSHOT_FILES)
    )
    total = sum(size for _, _, size in tier.downloads)
    realizations = len({rref for rref, _, _ in tier.downloads})
    return (
        f"fetched {realizations} realizations from the cache {tier.location}: "
        f"{total - snapshots} bytes of outputs and records, {snapshots} bytes of snapshots "
        f"(and {tier.bytes_of_records} bytes of manifests and configs)"
    )
