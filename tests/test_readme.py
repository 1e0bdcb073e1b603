"""The README's examples work as written: its `sh` blocks of mdrun commands exit as it says,
its rendered region is what mdrun writes, and its Python example runs."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
MDRUN = [sys.executable, "-c", "from mdrun.cli import console_main; console_main()"]
_FENCE = re.compile(r"^(`{3,})[ \t]*([^\n`]*)\n(.*?)^\1[ \t]*$", re.MULTILINE | re.DOTALL)


def fenced(language: str) -> list[str]:
    """The contents of the README's top-level fenced blocks in `language`."""
    return [body for _fence, info, body in _FENCE.findall(README) if info.split()[:1] == [language]]


def mdrun_commands() -> list[list[str]]:
    """Each `mdrun ...` line of the `sh` blocks, split as a shell would (comments dropped)."""
    commands = []
    for body in fenced("sh"):
        for line in body.splitlines():
            words = shlex.split(line, comments=True)
            if words[:1] == ["mdrun"]:
                commands.append(words)
    return commands


HELLO = fenced("markdown")[0]
"""The README's first example document, before a run."""


def run_mdrun(words: list[str], folder: Path) -> subprocess.CompletedProcess[str]:
    environment = {
        **os.environ,
        "MDRUN_STORE": str(folder / "store"),
        "MDRUN_SERVER_FOLDER": str(folder / "servers"),  # `mdrun server status` looks here
    }
    return subprocess.run(
        [*MDRUN, *words[1:]],
        cwd=folder,
        env=environment,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def test_the_readme_shows_mdrun_commands() -> None:
    assert [words[1] for words in mdrun_commands()] == [
        "run",
        "run",
        "check",
        "status",
        "gc",
        "store",
        "export",
        "server",
    ]


@pytest.mark.kernel
def test_sh_examples_exit_as_the_readme_says(tmp_path: Path) -> None:
    """In order, on the documents they name: each exits 0 (the README's "all good")."""
    for name in ("doc.md", "doc.md.in", "other.md"):
        (tmp_path / name).write_text(HELLO, encoding="utf-8")
    for words in mdrun_commands():
        done = run_mdrun(words, tmp_path)
        assert done.returncode == 0, f"{shlex.join(words)}:\n{done.stdout}{done.stderr}"
    assert "Hello, mdrun!" in (tmp_path / "doc.md").read_text(encoding="utf-8")
    assert "Hello, mdrun!" in (tmp_path / "doc.html").read_text(encoding="utf-8")


@pytest.mark.kernel
def test_check_exits_1_on_a_stale_document_as_the_readme_says(tmp_path: Path) -> None:
    (tmp_path / "doc.md").write_text(HELLO, encoding="utf-8")
    done = run_mdrun(["mdrun", "check", "doc.md"], tmp_path)
    assert done.returncode == 1
    assert "+Hello, mdrun!" in done.stdout


@pytest.mark.kernel
def test_the_rendered_example_is_what_mdrun_writes(tmp_path: Path) -> None:
    (tmp_path / "doc.md").write_text(HELLO, encoding="utf-8")
    done = run_mdrun(["mdrun", "run", "doc.md"], tmp_path)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "doc.md").read_text(encoding="utf-8") == fenced("markdown")[1]


def test_the_python_example_runs(tmp_path: Path) -> None:
    (example,) = fenced("python")
    done = subprocess.run(
        [sys.executable, "-c", example],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    path = Path(done.stdout.strip())
    assert path.name == "dataset.txt"
    assert path.read_text() == " ".join(map(str, range(100)))
