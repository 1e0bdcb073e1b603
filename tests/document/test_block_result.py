"""The block result: one frozen value per execution, its error built once from the kernel's
message, and the one rule (`is_accepted`) that says whether it is the block's result."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mdrun.document.block_result import BlockResult, error_output, execution_error
from mdrun.document.outputs import Output
from mdrun.document.status import ExecutionStatus, is_accepted

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
