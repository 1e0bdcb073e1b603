"""Block results in the store: what a block's realization holds, the key chain, and failures.

A block's realization holds `outputs.json` (status, nbformat outputs, result key, seconds;
earlier versions kept the seconds in `_execution.json`), `_state.json` (the state digest, the
variables the block changed or removed, what could not be saved) and, where one was worth
taking, a snapshot (the index `_snapshot.json` and its files of variables, see `record_files`);
all of them are in its hash. Each record is checked against the realization's manifest when it
is read; the snapshot is checked by the kernel right before loading it: its index against the
digest the manifest records, each file against the index. A block's config carries the *result
key* of the block upstream of it (the digest of what that block produced and the state it left,
see `result_key` and `plan.block_config`), not the upstream block's derivation; a pure block's
config carries the digests of what it reads instead (`block_keys`). So looking a document up in
the store walks each session in order: a block is cached when its upstream key is known and a
sound realization of the config built from that key exists. Writing a
result is a plain function of the executor's `BlockResult` (`store_result`, `record_failure`); a
result is published in one pass, its records written from memory (`Store.publish_records`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, cast

from mdrun.core.build import build_metadata, write_build_metadata
from mdrun.core.config import Config
from mdrun.core.hashing import canonical_json, sha256_hex
from mdrun.core.jsonvalue import JSONObject, JSONValue
from mdrun.core.matchers import match_latest
from mdrun.core.publication import PreparedRecords
from mdrun.core.realization import realize_derivation
from mdrun.core.refs import DRef, RRef
from mdrun.core.registry import Derivation, Matcher
from mdrun.core.store import Context, Store
from mdrun.core.substitute import substitute
from mdrun.document.block_keys import (
    Upstream,
    followed,
    keyed_config,
    produced_key,
    stored_pure_key,
)
from mdrun.document.block_result import BlockResult
from mdrun.document.outputs import Output
from mdrun.document.plan import OUTPUTS_FILE, Plan, derivation_ref
from mdrun.document.record_files import EXECUTION_FILE, SNAPSHOT_FILE, STATE_FILE
from mdrun.document.remembered_results import (
    recall,
    recall_record,
    remember,
    remember_record,
    signature,
)
from mdrun.document.session_state import SessionState
from mdrun.errors import DamagedRealization, InternalError, os_error


def block_matcher() -> Matcher:
    """A block re-run (cache=false, --force) may leave several realizations: the newest wins."""
    return match_latest(1)


def result_key(result: BlockResult, config: Config) -> str:
    """What a block produced: its status, its outputs and the state digest it left.

    Two runs with equal keys are interchangeable for every block after them. Without a state
    digest (a kernel mdrun cannot inspect), the block's own config stands in, so the key
    changes whenever the block or anything before it does: no cutoff, but never a wrong one.
    """
    if result.state is not None:
        return produced_key(result.status, result.outputs, result.state)
    outputs = cast(list[JSONValue], list(result.outputs))
    produced: JSONObject = {"status": result.status, "outputs": outputs}
    produced["config"] = config.hash_part
    return sha256_hex(canonical_json(produced))


@dataclass(frozen=True, slots=True)
class StoredResult:
    """A block's realization, read back (its outputs checked against its reference)."""

    rref: RRef
    """The realization."""
    key: str
    """Its result key."""
    outputs: tuple[Output, ...]
    """The stored nbformat outputs."""
    store: Store
    """The store it is in (its other records are read, and checked, on demand)."""
    snapshot_sha256: str | None = None
    """The digest its manifest records for its snapshot; None when it has none."""
    failed: bool = False
    """A failure record (see `record_failure`): what the block's last run produced, never
    reused as the block's own result."""
    recorded_seconds: float | None = None
    """How long the block took, as `outputs.json` records it (None: a realization made
    before it did, whose `_execution.json` says)."""
    status: str = "ok"
    """The status it ran with (an allowed error's is "error")."""

    def seconds(self) -> float:
        """How long the block took to execute when it was built."""
        if self.recorded_seconds is not None:
            return self.recorded_seconds
        value = self._record(EXECUTION_FILE).get("seconds", 0.0)
        return float(value) if isinstance(value, int | float) else 0.0

    def state(self) -> dict[str, Any]:
        """What the state capture recorded ({} when none ran)."""
        return self._record(STATE_FILE)

    @property
    def snapshot(self) -> Path | None:
        """The session snapshot taken after this block, if one was kept."""
        if self.snapshot_sha256 is None:
            return None
        return self.store.realization_path(self.rref) / SNAPSHOT_FILE  # the kernel loads it

    def _record(self, name: str) -> dict[str, Any]:
        """A small record of the realization; {} when it has none, or it is damaged (which is
        reported, and the record not used). Shared: callers must not change it."""
        remembered = recall_record(self.store, self.rref, name)
        if remembered is not None:
            return remembered
        if self.store.recorded_digest(self.rref, name) is None:
            return {}
        try:
            data = json.loads(self.store.read_file(self.rref, name))
        except DamagedRealization as damage:
            self.store.report_damage(damage)
            return {}
        except ValueError:
            return {}
        if not isinstance(data, dict):
            return {}
        remember_record(self.store, self.rref, name, data)
        return data


def read_result(store: Store, rref: RRef) -> StoredResult:
    """Read a block's realization; DamagedRealization when it does not match its reference."""
    data = store.read_file(rref, OUTPUTS_FILE)
    try:
        loaded = json.loads(data)
    except ValueError:
        loaded = None
    if (
        not isinstance(loaded, dict)
        or not isinstance(loaded.get("outputs"), list)
        or not isinstance(loaded.get("key"), str)
    ):
        where = str(store.realization_path(rref) / OUTPUTS_FILE)
        raise DamagedRealization(where, "not a block's result", rref)
    outputs = tuple(cast(list[Output], loaded["outputs"]))
    snapshot = store.recorded_digest(rref, SNAPSHOT_FILE)
    failed = loaded.get("failed") is True
    seconds = loaded.get("seconds")
    recorded = float(seconds) if isinstance(seconds, int | float) else None
    status = loaded.get("status")
    status = status if isinstance(status, str) else "ok"
    return StoredResult(rref, loaded["key"], outputs, store, snapshot, failed, recorded, status)


def lookup(store: Store, config: Config) -> StoredResult | None:
    """The stored result of a block config, if there is a sound one (damage is reported)."""
    dref = derivation_ref(config)
    remembered = recall(store, dref)
    if remembered is not None:
        return remembered
    seen = signature(store, dref)
    chosen = block_matcher()(store, store.realizations_in_context(dref, {}))
    if chosen is None:
        return None
    try:
        found = read_result(store, chosen[0])
    except DamagedRealization as damage:
        store.report_damage(damage)
        return None
    if seen is not None:
        remember(store, dref, found, seen=seen)
    return found


def failure_config(config: Config) -> Config:
    """The derivation that records a block's failures: the block's config, marked, so that a
    failure is never taken for the block's result (a failing block runs again every time)."""
    return Config({**config.data, "mdrun": "failure"})


BlockRun = Callable[[Path], BlockResult]
"""Runs a block; the executor may write its state record and snapshot into the folder given."""


@dataclass(frozen=True, slots=True)
class Build:
    """What building a block gave."""

    stored: StoredResult | None
    """Its result in the store: stored now, or found there (built meanwhile by another
    process); None when the block failed."""
    result: BlockResult | None = None
    """What running it produced; None when it was found in the store."""


Publish = Callable[[Callable[[], None]], None]
"""Runs a publication job later (in a thread of its own, see `evaluate`); the job raises what
publishing raised."""


def build_block(
    store: Store,
    config: Config,
    run: BlockRun,
    *,
    allow_error: bool,
    force: bool,
    publish_later: Publish | None = None,
) -> Build:
    """Run a block and store its result when it is accepted, as `realize_derivation` builds a
    stage: under the derivation's lock, looking up again first (another process may have
    built it while this one waited), in a build folder that nothing outlives but a published
    realization.

    With `publish_later`, a result without a snapshot is hashed now (its reference is known)
    and written into the store by the job handed to it, which releases the lock and removes
    what is left of the build folder: the kernel runs the next block meanwhile. A snapshot is
    published at once: the next block's may link its files."""
    dref = derivation_ref(config)
    lock = store.lock(dref)
    lock.acquire()
    handed_over = False
    try:
        found = None if force else lookup(store, config) or substituted(store, config)
        if found is not None:
            return Build(found)
        # Damaged realizations found while looking up go now, so the build replaces them.
        store.discard_damaged(dref)
        folder = store.new_build_folder(dref, config)
        try:  # whatever fails (the block, a full disk), no partial build is left behind
            result = run(folder)
            if not result.is_accepted(allow_error):
                return Build(None, result)
            key = result_key(result, config)
            if publish_later is None or result.snapshot is not None or result.folder is None:
                return Build(store_result(store, config, result, key), result)
            pending = prepare_result(store, config, result, key)

            def publish() -> None:
                try:
                    publish_result(store, pending)
                    remember(store, dref, pending.stored, result.state_record)
                finally:
                    store.discard_build_folder(folder)
                    lock.release()
                store.prepare_build_folder()  # the next block's, while its kernel still runs

            publish_later(publish)
            handed_over = True
            return Build(pending.stored, result)
        finally:
            if not handed_over:
                store.discard_build_folder(folder)  # gone already once published
    finally:
        if not handed_over:
            lock.release()


def substituted(store: Store, config: Config) -> StoredResult | None:
    """The block's result fetched, verified, from the store's substituters (a remote cache),
    if one holds it; call it holding the derivation's lock, after the local lookup missed."""
    if not store.substituters:
        return None
    dref = store.add_derivation(config)  # (what is fetched is published into its folder)
    chosen = substitute(store, dref, {}, block_matcher())
    if not chosen:
        return None
    try:
        return read_result(store, chosen[0])
    except DamagedRealization as damage:
        store.report_damage(damage)
        return None


def store_result(store: Store, config: Config, result: BlockResult, key: str) -> StoredResult:
    """Publish an accepted block result as a realization of the block's config.

    Its build folder is the one the executor wrote the state record and snapshot into, if any.
    Call it holding the derivation's lock (`Store.lock`), as the build that ran the block did.
    """
    temporary = result.folder is None
    if temporary:
        result = replace(result, folder=store.new_build_folder(derivation_ref(config), config))
    try:
        pending = prepare_result(store, config, result, key)
        publish_result(store, pending)
    finally:
        if temporary and result.folder is not None:
            store.discard_build_folder(result.folder)  # gone already once published
    remember(store, derivation_ref(config), pending.stored, result.state_record)
    return pending.stored


@dataclass(frozen=True, slots=True)
class PendingResult:
    """A block result hashed for publication (its reference known), not yet in the store."""

    prepared: PreparedRecords
    """The build folder and records, hashed."""
    build: bytes
    """The build record."""
    stored: StoredResult
    """The result as the store will hold it."""


def prepare_result(store: Store, config: Config, result: BlockResult, key: str) -> PendingResult:
    """The first half of `store_result`: the records made and hashed with the build folder."""
    started = time.time()
    folder = result.folder
    if folder is None or store.tmp not in folder.parents:
        raise InternalError(f"{config.name}: a block's build folder must be in the store: {folder}")
    record: JSONObject = {
        "status": result.status,
        "outputs": cast(list[JSONValue], list(result.outputs)),
        "key": key,
        "seconds": result.seconds,
    }
    data = json.dumps(record, ensure_ascii=False, sort_keys=True).encode("utf-8")
    build = json.dumps(build_metadata(started, time.time())).encode("utf-8")
    records = {**dict(result.records), OUTPUTS_FILE: data}
    prepared = store.prepare_records(config, folder, records, doing=_DOING)
    snapshot = prepared.manifest.files.get(SNAPSHOT_FILE)
    rref = prepared.rref
    stored = StoredResult(
        rref, key, result.outputs, store, snapshot, False, result.seconds, result.status
    )
    return PendingResult(prepared, build, stored)


def publish_result(store: Store, pending: PendingResult) -> None:
    """The second half of `store_result`: the records written, the realization published."""
    folder = pending.prepared.folder
    try:
        store.finish_records(pending.prepared, pending.build, doing=_DOING)
    except OSError as err:
        raise os_error(err, err.filename or folder, _DOING) from err


_DOING = "cannot store the block's result"


def record_failure(store: Store, config: Config, result: BlockResult, key: str) -> StoredResult:
    """Store what a failed block produced and the key of the state it left.

    The blocks after it are then looked up with that key, so a failure identical to the last
    one keeps them cached (early cutoff), and an export without running shows the failure. Each
    record is a new realization (it holds when it was made); the newest one counts.
    """
    record_config = failure_config(config)
    dref = store.add_derivation(record_config)
    record: JSONObject = {
        "status": result.status,
        "outputs": cast(list[JSONValue], list(result.outputs)),
        "key": key,
        "failed": True,
        "recorded": time.time(),
    }
    # Its state record: the blocks after it follow the state it left (`session_state`).
    writer = _writer(record, None, None, result.state_record)
    derivation = Derivation(dref, record_config, block_matcher(), writer)
    rrefs, _ = realize_derivation(store, derivation, {}, force=True)
    return read_result(store, rrefs[0])


def _writer(
    outputs: JSONObject,
    execution: JSONObject | None,
    folder: Path | None,
    state: Mapping[str, Any] | None = None,
) -> Callable[..., list[Path]]:
    """A realizer that writes a block's records into `folder` (else a new build folder), and
    `state` as its state record if given."""

    def write(store: Store, dref: DRef, _context: Context, _arguments: JSONObject) -> list[Path]:
        started = time.time()
        if folder is not None and store.tmp not in folder.parents:
            raise InternalError(f"{dref}: a block's build folder must be in the store: {folder}")
        target = folder if folder is not None else store.new_build_folder(dref)
        _write(target / OUTPUTS_FILE, json.dumps(outputs, ensure_ascii=False, sort_keys=True))
        if execution is not None:
            _write(target / EXECUTION_FILE, json.dumps(execution))
        if state is not None:
            _write(target / STATE_FILE, json.dumps(state))
        # Its start orders it among the block's realizations (`block_matcher`).
        try:
            write_build_metadata(target, started, time.time())
        except OSError as err:
            raise os_error(err, target, "cannot store the block's result") from err
        return [target]

    return write


def _write(path: Path, text: str) -> None:
    """Write a record of a block's build; a full disk is an error that names the file."""
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as err:
        raise os_error(err, path, "cannot store the block's result") from err


def lookup_with_failure(store: Store, config: Config) -> StoredResult | None:
    """The block's stored result, else the record of its last failure, else None."""
    return lookup(store, config) or lookup(store, failure_config(config))


def cached_results(plan: Plan, store: Store) -> dict[int, StoredResult]:
    """For each block whose result is in the store, the result a run would use (no running).

    Sessions are walked as the evaluator walks them (`block_keys`). A block whose last run
    failed has its failure record (`failed`), which gives the blocks after it their upstream
    key. A block after a stale one is not looked up (its upstream key is not known until it
    runs) unless it is pure and reads nothing that a stale pure block before it names.
    """
    found: dict[int, StoredResult] = {}
    known: dict[int, Upstream] = {}
    states: dict[object, SessionState | None] = {}
    for index, planned in enumerate(plan.blocks):
        if not planned.executable:
            continue
        state = states.setdefault(planned.session, SessionState())
        upstream = None if planned.upstream is None else known.get(planned.upstream)
        keyed = keyed_config(planned, state, upstream)
        result = None if keyed is None else lookup_with_failure(store, keyed.config)
        if keyed is None or result is None:
            if keyed is not None and keyed.pure is not None and state is not None:
                # A pure block changes only what it names: the blocks after it that read
                # none of that can still be looked up.
                state.forget(keyed.pure.names)
            else:
                states[planned.session] = None
            continue
        found[index] = result
        pure = keyed.pure is not None
        identity = derivation_ref(keyed.config)
        key = stored_pure_key(identity, planned, upstream, result.key) if pure else result.key
        known[index] = Upstream(identity, key, pure, result.status, result.outputs)
        record = None if state is None else result.state()
        states[planned.session] = followed(state, record, keyed.pure)
    return found
