"""The documentation cannot drift from the code: every page in docs/ passes `mdrun check` from
an empty store, and docs/api.md is what tools/apidoc.py generates from the docstrings today."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PAGES = sorted(DOCS.glob("*.md"))
MDRUN = [sys.executable, "-c", "from mdrun.cli import console_main; console_main()"]


def test_the_docs_have_their_pages() -> None:
    names = {page.name for page in PAGES}
    assert {"tutorial.md", "howto.md", "store.md", "cache.md", "api.md"} <= names


def test_api_reference_equals_a_fresh_generation() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "apidoc.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr


def test_api_reference_names_every_public_name() -> None:
    import mdrun.core

    text = (DOCS / "api.md").read_text(encoding="utf-8")
    missing = [name for name in mdrun.core.__all__ if f"`{name}`" not in text]
    assert missing == []


@pytest.mark.kernel
@pytest.mark.parametrize("page", PAGES, ids=[page.name for page in PAGES])
def test_page_is_up_to_date_from_an_empty_store(page: Path, tmp_path: Path) -> None:
    done = subprocess.run(
        [*MDRUN, "--store", str(tmp_path / "store"), "check", str(page)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=240,
    )
    assert done.returncode == 0, f"{page.name} is out of date (run `make docs`):\n" + (
        done.stdout + done.stderr
    )
