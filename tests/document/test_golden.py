"""Golden documents: `tests/golden/<case>/input.md` run by mdrun must give `expected.md`.

The comparison normalises only what honestly varies between machines and runs (memory
addresses, the interpreter's install path, temporary folders). A case whose expected document
shows a failure must exit 1, any other 0. Set MDRUN_UPDATE_GOLDEN=1 to rewrite the expected
documents after a deliberate change, then review the diff.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
from pathlib import Path

import pytest

from tests.document.conftest import Mdrun, no_kernel_starts

GOLDEN = Path(__file__).parent.parent / "golden"
CASES = sorted(path.name for path in GOLDEN.iterdir() if (path / "input.md").is_file())
UPDATE = os.environ.get("MDRUN_UPDATE_GOLDEN") == "1"


def normalise(text: str, folder: Path) -> str:
    """Replace what varies between runs and machines by placeholders."""
    for prefix in sorted({sys.prefix, sys.base_prefix, sys.exec_prefix}, key=len, reverse=True):
        text = text.replace(prefix, "<python>")
    text = text.replace(str(folder), "<folder>")
    return re.sub(r"\b0x[0-9a-fA-F]{6,}\b", "0x<address>", text)


def test_there_are_golden_cases() -> None:
    assert {"demo", "containers", "failure", "options", "image"} <= set(CASES)


@pytest.mark.kernel
@pytest.mark.parametrize("case", CASES)
def test_golden(case: str, mdrun: Mdrun) -> None:
    source = GOLDEN / case
    shutil.copyfile(source / "input.md", mdrun.path("input.md"))
    completed = mdrun("run", "input.md")
    rendered = normalise(mdrun.read("input.md"), mdrun.folder)
    expected_path = source / "expected.md"
    if UPDATE:
        expected_path.write_bytes(rendered.encode("utf-8"))
    expected = expected_path.read_bytes().decode("utf-8")
    assert rendered == expected
    assert completed.code == (1 if "**failed**" in expected else 0), completed.err
    if completed.code == 0:
        # The expected document is a fixed point: running it again reads everything from
        # the store and changes nothing.
        with no_kernel_starts():
            assert mdrun("check", "input.md").code == 0
    # Images named in the document exist beside it.
    for link in re.findall(r"\]\((input_files/[^)]+)\)", expected):
        assert mdrun.path(link).is_file()
