"""The repository's pre-commit hooks, run by the real pre-commit (`try-repo`) in a scratch git
repository, without the network: the system hook uses the installed mdrun; the Python hook's
environment is built by pre-commit with pip kept off any index (see docs/ci.md)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from mdrun.cli import main

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.kernel, pytest.mark.slow]

DOCUMENT = "# Hooked\n\n```python\nprint(6 * 7)\n```\n"


def git(folder: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=folder, check=True, capture_output=True, timeout=60)


def try_repo(folder: Path, hook: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`pre-commit try-repo ROOT HOOK --all-files` in `folder`, as a user would."""
    bin_folder = str(Path(sys.executable).parent)
    return subprocess.run(
        [sys.executable, "-m", "pre_commit", "try-repo", str(ROOT), hook, "--all-files"],
        cwd=folder,
        env={**os.environ, "PATH": f"{bin_folder}{os.pathsep}{os.environ['PATH']}", **env},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.fixture
def repository(tmp_path: Path) -> Path:
    if shutil.which("git") is None:
        pytest.fail("git is needed to run pre-commit")
    folder = tmp_path / "repo"
    folder.mkdir()
    git(folder, "init", "-q")
    git(folder, "config", "user.email", "test@example.org")
    git(folder, "config", "user.name", "Test")
    (folder / "page.md").write_text(DOCUMENT)
    git(folder, "add", "page.md")
    return folder


def offline_pip(tmp_path: Path) -> dict[str, str]:
    """Environment for pre-commit to build a Python hook's venv without an index: mdrun is
    built without isolation and installed without dependencies, which come from PYTHONPATH."""
    return {
        "PRE_COMMIT_HOME": str(tmp_path / "pre-commit-home"),
        "PIP_NO_INDEX": "1",
        "PIP_NO_DEPS": "1",
        "PIP_NO_BUILD_ISOLATION": "0",
        "PYTHONPATH": sysconfig.get_paths()["purelib"],
    }


def test_check_hook_runs_stale_blocks_and_fails_until_the_document_is_run(
    repository: Path, tmp_path: Path
) -> None:
    env = {"MDRUN_STORE": str(tmp_path / "store"), "PRE_COMMIT_HOME": str(tmp_path / "home")}
    stale = try_repo(repository, "mdrun-check", env)
    assert stale.returncode == 1, stale.stdout + stale.stderr
    assert "+42" in stale.stdout and "page.md is not up to date" in stale.stdout
    assert main(["--store", env["MDRUN_STORE"], "run", str(repository / "page.md")]) == 0
    fresh = try_repo(repository, "mdrun-check", env)
    assert fresh.returncode == 0, fresh.stdout + fresh.stderr
    assert "mdrun check" in fresh.stdout and "Passed" in fresh.stdout


def test_no_exec_hook_names_missing_blocks_and_passes_once_the_store_has_them(
    repository: Path, tmp_path: Path
) -> None:
    store = tmp_path / "store"
    env = {**offline_pip(tmp_path), "MDRUN_STORE": str(store)}
    missing = try_repo(repository, "mdrun-check-no-exec", env)
    assert missing.returncode == 1, missing.stdout + missing.stderr
    assert "page.md:3: block b1: not in the store" in missing.stdout
    assert main(["--store", str(store), "run", str(repository / "page.md")]) == 0
    passed = try_repo(repository, "mdrun-check-no-exec", env)
    assert passed.returncode == 0, passed.stdout + passed.stderr
    assert "Passed" in passed.stdout
