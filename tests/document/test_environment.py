"""What a document shows must not depend on the machine: library paths in tracebacks, the
environment that shell blocks run in, and how a shell command's failure reads."""

from __future__ import annotations

import os
import sys
import textwrap
from pathlib import Path

import pytest

from mdrun.document.outputs import error_summary, shorten_library_paths
from tests.document.conftest import Mdrun


@pytest.mark.parametrize(
    ("line", "shown"),
    [
        (
            "File /home/me/.venv/lib/python3.11/site-packages/loguru/_logger.py:123, in f()",
            "File .../site-packages/loguru/_logger.py:123, in f()",
        ),
        (
            '  File "/usr/lib/python3/dist-packages/yaml/__init__.py", line 5, in load',
            '  File ".../dist-packages/yaml/__init__.py", line 5, in load',
        ),
        (
            "File ~/envs/x/lib/python3.12/site-packages/pkg/m.py:1",
            "File .../site-packages/pkg/m.py:1",
        ),
        ("/srv/app/site-packages.txt is not a package path", None),
        ("File /work/project/module.py:3, in g()", None),
    ],
)
def test_library_paths_are_shortened_to_the_path_inside_the_package(
    line: str, shown: str | None
) -> None:
    assert shorten_library_paths(line) == (shown or line)


def test_a_shell_error_reads_as_its_exit_status() -> None:
    assert error_summary("", "1") == "exit status 1"
    assert error_summary("ValueError", "bad") == "ValueError: bad"
    assert error_summary("KeyboardInterrupt", "") == "KeyboardInterrupt"


@pytest.mark.kernel
def test_a_traceback_through_an_installed_library_names_no_machine_path(mdrun: Mdrun) -> None:
    mdrun.write(
        "doc.md",
        "```python\nimport markdown_it\nmarkdown_it.MarkdownIt('no-such-preset')\n```\n",
    )
    assert mdrun("run", "doc.md").code == 1
    text = mdrun.read("doc.md")
    assert ".../site-packages/markdown_it/main.py" in text
    assert sys.prefix not in text and "/lib/python" not in text


@pytest.mark.kernel
def test_bash_blocks_find_mdruns_environment_first_and_fail_with_their_exit_status(
    mdrun: Mdrun, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A user whose ~/.bashrc puts another `python` first on PATH.
    home = tmp_path / "home"
    other = home / "other-bin"
    other.mkdir(parents=True)
    (other / "python").write_text("#!/bin/sh\necho not mdrun's python\n")
    (other / "python").chmod(0o755)
    (home / ".bashrc").write_text(f'export PATH="{other}:$PATH"\n')
    monkeypatch.setenv("HOME", str(home))
    mdrun.write(
        "doc.md",
        textwrap.dedent(
            """\
            ```bash kernel=bash
            command -v python
            ```

            ```bash kernel=bash
            false
            ```
            """
        ),
    )
    completed = mdrun("run", "doc.md", "--keep-going")
    assert completed.code == 1
    text = mdrun.read("doc.md")
    expected = os.path.join(os.path.dirname(sys.executable), "python")
    assert f"``` text\n{expected}\n```" in text
    failure = text.split("id=b2")[1]
    assert "``` error\nexit status 1\n```\n**failed**\n" in failure
    assert ": 1" not in failure
    assert "doc.md:5: block b2 failed: exit status 1" in completed.err
