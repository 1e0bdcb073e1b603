"""The up-to-date check: a document exactly as the last clean run wrote it is not even parsed,
and any change to what that run depended on sends the next run through the full pipeline."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mdrun.core.store import remove_tree
from tests.document.conftest import Mdrun

pytestmark = pytest.mark.kernel

DOCUMENT = """\
```python inputs=data.txt
words = open("data.txt").read().split()
print(len(words), "words")
```

```python session=pictures
import base64
from IPython.display import Image
Image(data=base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
))
```
"""


def _run(mdrun: Mdrun) -> dict[str, str]:
    completed, report = mdrun.run_reported("run", "doc.md")
    assert completed.code == 0, completed.err
    return report.statuses


def test_an_unchanged_document_is_reported_cached_without_parsing_it(mdrun: Mdrun) -> None:
    mdrun.write("data.txt", "one two\n")
    mdrun.write("doc.md", DOCUMENT)
    assert set(_run(mdrun).values()) == {"executed"}
    assert _run(mdrun) == {"b1": "cached", "pictures-1": "cached"}

    probe = (
        "import sys; from mdrun.cli import main; code = main(sys.argv[1:]); "
        "print(sorted(m for m in ('markdown_it', 'jupyter_client', 'zmq') if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe, "--store", str(mdrun.store), "run", "doc.md"],
        cwd=mdrun.folder,
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.strip() == "[]"
    assert "2 blocks, 0 executed, 2 cached" in done.stderr


def test_what_the_last_run_depended_on_is_checked(mdrun: Mdrun) -> None:
    mdrun.write("data.txt", "one two\n")
    mdrun.write("doc.md", DOCUMENT)
    _run(mdrun)

    mdrun.write("data.txt", "one two three\n")
    assert _run(mdrun) == {"b1": "executed", "pictures-1": "cached"}
    assert "3 words" in mdrun.read("doc.md")

    images = mdrun.path("doc_files")
    shutil.rmtree(images)
    assert _run(mdrun) == {"b1": "cached", "pictures-1": "cached"}
    assert len(list(images.iterdir())) == 1

    # A realization collected behind the document's back: the full pipeline runs it again.
    for folder in Path(mdrun.store, "store").glob("*-b1"):
        remove_tree(folder)
    assert _run(mdrun) == {"b1": "executed", "pictures-1": "cached"}


def test_a_failed_or_uncached_block_disables_the_shortcut(mdrun: Mdrun) -> None:
    mdrun.write("doc.md", "```python cache=false\nprint(1)\n```\n")
    mdrun("run", "doc.md")
    assert _run(mdrun) == {"b1": "executed"}
