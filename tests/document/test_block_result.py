"""The block result: one frozen value per execution, its error built once from the kernel's
message, and the one rule (`is_accepted`) that says whether it is the block's result."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mdrun.core.config import Config
from mdrun.core.store import Store
from mdrun.document.block_result import BlockResult, error_output, execution_error
from mdrun.document.outputs import Output
from mdrun.document.results import (
    build_block,
    lookup,
    lookup_with_failure,
    record_failure,
    result_key,
    store_result,
)
from mdrun.document.status import ExecutionStatus, is_accepted
from mdrun.errors import InternalError

RAISED: Output = {
    "output_type": "error",
    "ename": "KeyError",
    "evalue": "'a'",
    "traceback": ["Traceback (most recent call last):", "KeyError: 'a'"],
}
PRINTED: Output = {"output_type": "stream", "name": "stdout", "text": "started\n"}
STATUSES: tuple[ExecutionStatus, ...] = ("ok", "error", "timeout", "runaway", "died")


def test_an_error_is_built_from_the_kernels_message() -> None:
    result = BlockResult.of("error", (PRINTED, RAISED), 1.5)
    assert result.error is not None
    assert result.note == "KeyError: 'a'"
    assert (result.error.ename, result.error.evalue) == ("KeyError", "'a'")
    assert result.error.traceback == ("Traceback (most recent call last):", "KeyError: 'a'")
    assert result.error.exit_code == 1


def test_an_interrupted_block_says_why_whatever_it_printed() -> None:
    assert BlockResult.of("timeout", (PRINTED,)).note == (
        "interrupted: the block ran past its timeout"
    )
    assert "max_output" in BlockResult.of("runaway", (PRINTED,)).note
    assert BlockResult.of("died", (RAISED,)).note == "the kernel died while running this block"


def test_a_shell_error_without_a_name_says_its_exit_status() -> None:
    error = error_output("", "2")
    assert execution_error("error", (error,)).message == "exit status 2"
    assert execution_error("error", ()).message == "the block failed"


def test_a_block_that_went_well_has_no_error() -> None:
    result = BlockResult.of("ok", (PRINTED,))
    assert result.error is None and result.note == ""


def test_a_kernel_that_could_not_start_is_a_failed_result_not_an_exception() -> None:
    result = BlockResult.kernel_lost("KernelError", "the kernel python3 did not start")
    assert result.status == "died" and not result.is_accepted(allow_error=True)
    assert result.outputs[0]["output_type"] == "error"


def test_a_block_result_is_frozen() -> None:
    result = BlockResult.of("ok", ())
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.status = "error"  # type: ignore[misc]


@given(st.sampled_from(STATUSES), st.booleans())
def test_only_a_success_or_an_allowed_exception_is_accepted(
    status: ExecutionStatus, allow_error: bool
) -> None:
    accepted = BlockResult.of(status, (RAISED,)).is_accepted(allow_error)
    assert accepted == is_accepted(status, allow_error)
    assert accepted == (status == "ok" or (status == "error" and allow_error))


def _config(code: str) -> Config:
    return Config({"name": "b1", "mdrun": "block", "code": code, "upstream": None})


def test_a_stored_result_reads_back_with_its_outputs_key_and_timing(tmp_path: Path) -> None:
    store = Store.initialize(tmp_path / "store")
    config = _config("print('started')")
    result = BlockResult.of("ok", (PRINTED,), 2.5, state="f" * 64)
    stored = store_result(store, config, result, result_key(result, config))
    assert lookup(store, config) == stored
    assert stored.outputs == (PRINTED,) and stored.seconds() == 2.5 and not stored.failed
    # The key is what the block produced: equal outputs and state, equal key, whatever the code.
    other = _config("print('started')  # edited")
    assert stored.key == result_key(result, other)
    assert stored.key != result_key(BlockResult.of("ok", (PRINTED,), state="e" * 64), config)


def test_a_failure_is_recorded_apart_from_the_blocks_result(tmp_path: Path) -> None:
    store = Store.initialize(tmp_path / "store")
    config = _config("raise KeyError('a')")
    result = BlockResult.of("error", (RAISED,))
    record_failure(store, config, result, result_key(result, config))
    assert lookup(store, config) is None
    recorded = lookup_with_failure(store, config)
    assert recorded is not None and recorded.failed and recorded.outputs == (RAISED,)


def test_a_result_whose_folder_is_not_a_build_folder_of_the_store_is_refused(
    tmp_path: Path,
) -> None:
    store = Store.initialize(tmp_path / "store")
    elsewhere = tmp_path / "documents"
    elsewhere.mkdir()
    result = BlockResult.of("ok", (PRINTED,), folder=elsewhere)
    config = _config("print('started')")
    with pytest.raises(InternalError, match="must be in the store"):
        store_result(store, config, result, result_key(result, config))
    assert elsewhere.is_dir() and lookup(store, config) is None


def test_building_a_block_stores_only_an_accepted_result_and_leaves_no_build_folder(
    tmp_path: Path,
) -> None:
    store = Store.initialize(tmp_path / "store")
    config = _config("raise KeyError('a')")
    folders: list[Path] = []

    def run(folder: Path) -> BlockResult:
        folders.append(folder)
        (folder / "_state.json").write_text("{}")
        return BlockResult.of("error", (RAISED,), folder=folder)

    build = build_block(store, config, run, allow_error=False, force=False)
    assert build.stored is None and build.result is not None and build.result.note
    assert lookup(store, config) is None and not folders[0].exists()
    build = build_block(store, config, run, allow_error=True, force=False)
    assert build.stored is not None and build.stored == lookup(store, config)
    assert not folders[1].exists()  # published: moved into the store
    # Found in the store: the block is not run again, unless forced.
    assert build_block(store, config, run, allow_error=True, force=False).result is None
    assert len(folders) == 2
    assert build_block(store, config, run, allow_error=True, force=True).result is not None


def test_a_result_stored_before_seconds_were_in_its_outputs_reads_them_from_its_record(
    tmp_path: Path,
) -> None:
    """Realizations made by earlier versions keep their time in `_execution.json`."""
    import json

    from mdrun.core.jsonvalue import JSONObject
    from mdrun.core.realization import run_realizer
    from mdrun.core.refs import DRef
    from mdrun.core.registry import Derivation
    from mdrun.core.store import Context
    from mdrun.document.results import block_matcher, read_result

    store = Store.initialize(tmp_path / "store")
    config = _config("print('started')")
    dref = store.add_derivation(config)

    def old_writer(
        store: Store, dref: DRef, context: Context, arguments: JSONObject
    ) -> list[Path]:
        del context, arguments
        folder = store.new_build_folder(dref)
        record = {"status": "ok", "outputs": [PRINTED], "key": "k"}
        (folder / "outputs.json").write_text(json.dumps(record))
        (folder / "_execution.json").write_text(json.dumps({"seconds": 4.5}))
        return [folder]

    derivation = Derivation(dref, config, block_matcher(), old_writer)
    rref = run_realizer(store, derivation, {}, {})[0]
    stored = read_result(Store(store.root), rref)
    assert stored.outputs == (PRINTED,) and stored.seconds() == 4.5
