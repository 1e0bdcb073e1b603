"""What running a document does to its blocks, seen from the document and `--report`: sessions,
block options, failures (exceptions, timeouts, dead kernels), images, containers, and the state
that cached blocks leave for the blocks after them."""

from __future__ import annotations

import base64
import struct
import textwrap
import time
import zlib
from pathlib import Path

import pytest

from tests.document.conftest import Mdrun, no_kernel_starts

pytestmark = pytest.mark.kernel


def region(block_id: str, *lines: str, prefix: str = "") -> str:
    """The region that a block printing `lines` on stdout gets."""
    body = [f"<!-- mdrun:output id={block_id} -->", "``` text", *lines, "```", "<!-- mdrun:end -->"]
    return "".join(f"{prefix}{line}\n" for line in body)


# -- sessions -----------------------------------------------------------------------------------


def test_sessions_have_their_own_kernels_and_chains(mdrun: Mdrun) -> None:
    document = textwrap.dedent(
        """\
        ```python
        shared = "main"
        print("main 1")
        ```

        ```python session=other
        print("other 1:", "shared" in globals())
        ```

        ```python
        print("main 2:", shared)
        ```

        ```python session=other
        print("other 2:", len(globals()) > 0)
        ```
        """
    )
    mdrun.write("doc.md", document)
    completed, report = mdrun.run_reported("run", "doc.md")
    assert completed.code == 0
    assert report.statuses == {
        "b1": "executed",
        "other-1": "executed",
        "b2": "executed",
        "other-2": "executed",
    }
    text = mdrun.read("doc.md")
    assert region("other-1", "other 1: False") in text, "a session sees no other's variables"
    assert region("b2", "main 2: main") in text

    mdrun.write("doc.md", text.replace('print("other 1:"', 'print("other one:"'))
    completed, report = mdrun.run_reported("run", "doc.md")
    assert completed.code == 0
    assert report.statuses == {
        "b1": "cached",
        "other-1": "executed",
        "b2": "cached",
        "other-2": "executed",
    }
    assert region("other-1", "other one: False") in mdrun.read("doc.md")


def test_cached_blocks_leave_their_state_for_an_edited_block(mdrun: Mdrun, tmp_path: Path) -> None:
    document = textwrap.dedent(
        """\
        ```python
        numbers = [3, 1, 2]
        print("loaded", len(numbers))
        ```

        ```python
        def total(values):
            return sum(values)
        ```

        ```python
        print(total(numbers))
        ```
        """
    )
    mdrun.write("doc.md", document)
    assert mdrun("run", "doc.md").code == 0
    edited = mdrun.read("doc.md").replace("print(total(numbers))", "print(total(numbers) * 10)")
    mdrun.write("doc.md", edited)
    completed, report = mdrun.run_reported("run", "doc.md")
    assert completed.code == 0
    assert report.statuses == {"b1": "cached", "b2": "cached", "b3": "executed"}
    assert region("b3", "60") in mdrun.read("doc.md")

    fresh = Mdrun(tmp_path / "fresh", tmp_path / "fresh-store")
    fresh.write("doc.md", edited)
    _, fresh_report = fresh.run_reported("run", "doc.md")
    assert set(fresh_report.statuses.values()) == {"executed"}
    assert fresh.read("doc.md") == mdrun.read("doc.md")


# -- block options ------------------------------------------------------------------------------

OPTIONS_DOCUMENT = """\
---
title: Options
mdrun.timeout: 30
---

```{.python #setup}
import sys
print("set up")
```

```python echo=false
print("shown, code hidden on export")
```

```python output=false
print("runs, shows nothing")
ran_quietly = True
```

```python eval=false
print("never runs")
```

```python allow_error=true
raise ValueError("expected")
```

```python cache=false
import random
print("every time", ran_quietly)
```

```text
not a block that runs
```
"""


def test_block_options(mdrun: Mdrun) -> None:
    mdrun.write("doc.md", OPTIONS_DOCUMENT)
    completed, report = mdrun.run_reported("run", "doc.md")
    assert completed.code == 0, "an error allowed by allow_error=true does not fail the run"
    assert report.statuses == {
        "setup": "executed",
        "b2": "executed",
        "b3": "executed",
        "b5": "executed",
        "b6": "executed",
    }, "eval=false and text blocks are not in the report"
    text = mdrun.read("doc.md")
    assert region("setup", "set up") in text, "pandoc's {.python #id} names the block"
    assert region("b2", "shown, code hidden on export") in text
    assert "runs, shows nothing" not in text.split("ran_quietly = True")[1]
    assert "id=b3" not in text and "id=b4" not in text
    allowed = text.split("<!-- mdrun:output id=b5 -->\n")[1].split("<!-- mdrun:end -->")[0]
    assert allowed.startswith("``` error\n")
    assert "ValueError: expected" in allowed
    assert "**failed**" not in allowed
    assert region("b6", "every time True") in text

    # Toggling display options re-runs nothing; allow_error's result is cached as the expected
    # output; cache=false runs again, in the state the cached blocks before it leave (replaying
    # the allow_error block, which raises again as expected).
    toggled = text.replace("echo=false", "echo=true").replace("output=false", "output=true")
    mdrun.write("doc.md", toggled)
    completed, report = mdrun.run_reported("run", "doc.md")
    assert completed.code == 0
    assert report.statuses == {
        "setup": "cached",
        "b2": "cached",
        "b3": "cached",
        "b5": "cached",
        "b6": "executed",
    }
    rendered = mdrun.read("doc.md")
    assert region("b6", "every time True") in rendered
    # output=true now shows the stored output of b3 without running it.
    assert region("b3", "runs, shows nothing") in rendered


def test_front_matter_defaults_apply_and_blocks_override_them(mdrun: Mdrun) -> None:
    document = textwrap.dedent(
        """\
        ---
        mdrun.session: notes
        mdrun.allow-error: true
        ---

        ```python
        x = 1
        raise KeyError("tolerated")
        ```

        ```python allow_error=false
        print(x)
        ```
        """
    )
    mdrun.write("doc.md", document)
    completed, report = mdrun.run_reported("run", "doc.md")
    assert completed.code == 0
    assert report.statuses == {"notes-1": "executed", "notes-2": "executed"}
    assert region("notes-2", "1") in mdrun.read("doc.md")


def test_timeout_interrupts_a_block_quickly(mdrun: Mdrun) -> None:
    document = textwrap.dedent(
        """\
        ```python timeout=1
        import time
        time.sleep(30)
        ```

        ```python
        print("after")
        ```
        """
    )
    mdrun.write("doc.md", document)
    started = time.monotonic()
    completed, report = mdrun.run_reported("run", "doc.md")
    assert time.monotonic() - started < 15
    assert completed.code == 1
    assert report.statuses == {"b1": "failed", "b2": "not-run"}
    text = mdrun.read("doc.md")
    assert "interrupted" in text.split("id=b1")[1].split("<!-- mdrun:end -->")[0]


# -- failures -----------------------------------------------------------------------------------


def test_failure_shows_traceback_is_not_cached_and_stops_its_session(mdrun: Mdrun) -> None:
    document = textwrap.dedent(
        """\
        ```python
        settings = open("settings.txt").read()
        ```

        ```python
        print("settings:", globals().get("settings", "none"))
        ```
        """
    )
    mdrun.write("doc.md", document)
    completed, report = mdrun.run_reported("run", "doc.md")
    assert completed.code == 1
    assert "1 failed, 1 not run" in completed.err
    assert report.statuses == {"b1": "failed", "b2": "not-run"}
    text = mdrun.read("doc.md")
    failure = text.split("<!-- mdrun:output id=b1 -->\n")[1].split("<!-- mdrun:end -->")[0]
    assert failure.startswith("``` error\n")
    assert "Block b1, line 1" in failure
    assert "FileNotFoundError" in failure and "settings.txt" in failure
    assert "**not run**: block b1 (line 1)" in text.split("id=b2")[1]

    completed, report = mdrun.run_reported("run", "doc.md", "--keep-going")
    assert completed.code == 1
    assert report.statuses == {"b1": "failed", "b2": "executed"}, "a failure is not cached"
    assert region("b2", "settings: none") in mdrun.read("doc.md")

    mdrun.write("settings.txt", "fast")
    completed, report = mdrun.run_reported("run", "doc.md")
    assert completed.code == 0
    assert report.statuses == {"b1": "executed", "b2": "executed"}
    text = mdrun.read("doc.md")
    assert "error" not in text and "not run" not in text
    assert region("b2", "settings: fast") in text


def test_a_killed_kernel_fails_its_block_and_session_only(mdrun: Mdrun) -> None:
    document = textwrap.dedent(
        """\
        ```python
        print("before")
        ```

        ```python
        import os
        os._exit(1)
        ```

        ```python
        print("after")
        ```

        ```python session=other
        print("other session")
        ```
        """
    )
    mdrun.write("doc.md", document)
    completed, report = mdrun.run_reported("run", "doc.md")
    assert completed.code == 1
    assert report.statuses == {
        "b1": "executed",
        "b2": "failed",
        "b3": "not-run",
        "other-1": "executed",
    }
    text = mdrun.read("doc.md")
    assert "kernel died" in text.split("id=b2")[1].split("<!-- mdrun:end -->")[0]
    assert "**not run**" in text.split("id=b3")[1].split("<!-- mdrun:end -->")[0]
    assert region("other-1", "other session") in text


# -- images and containers ----------------------------------------------------------------------


def tiny_png() -> bytes:
    """A valid 1x1 PNG, built by hand."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + data))
        return struct.pack(">I", len(data)) + kind + data + crc

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\x00\xff\x00\x00")
    chunks = chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + chunks


def test_an_image_is_written_beside_the_document_and_linked(mdrun: Mdrun) -> None:
    png = tiny_png()
    document = textwrap.dedent(
        f"""\
        ```python
        import base64
        from IPython.display import Image
        Image(data=base64.b64decode("{base64.b64encode(png).decode()}"))
        ```
        """
    )
    mdrun.write("plot.md", document)
    assert mdrun("run", "plot.md").code == 0
    images = list(mdrun.path("plot_files").iterdir())
    assert len(images) == 1 and images[0].suffix == ".png"
    assert images[0].read_bytes() == png
    link = f"![output of b1](plot_files/{images[0].name})"
    assert mdrun.read("plot.md") == document + (
        f"<!-- mdrun:output id=b1 -->\n{link}\n\n<!-- mdrun:end -->\n"
    )

    with no_kernel_starts():
        assert mdrun("run", "plot.md", "-o", "sub.md").code == 0
    assert f"(sub_files/{images[0].name})" in mdrun.read("sub.md")
    assert (mdrun.path("sub_files") / images[0].name).read_bytes() == png

    # When the block stops drawing, its image goes away with it.
    mdrun.write("plot.md", document.replace("Image(data=base64.b64decode(", "print(len("))
    assert mdrun("run", "plot.md").code == 0
    assert not mdrun.path("plot_files").exists()


def test_regions_stay_inside_lists_and_block_quotes(mdrun: Mdrun) -> None:
    document = textwrap.dedent(
        """\
        1. First step:

           ```python
           print("in a list")
           ```

        2. Next.

        > Quoted:
        >
        > ```python
        > print("in a quote")
        > ```
        >
        > End of quote.
        """
    )
    mdrun.write("doc.md", document)
    assert mdrun("run", "doc.md").code == 0
    text = mdrun.read("doc.md")
    assert text == document.replace(
        '   print("in a list")\n   ```\n',
        '   print("in a list")\n   ```\n' + region("b1", "in a list", prefix="   "),
    ).replace(
        '> print("in a quote")\n> ```\n',
        '> print("in a quote")\n> ```\n' + region("b2", "in a quote", prefix="> "),
    )
    with no_kernel_starts():
        _, report = mdrun.run_reported("run", "doc.md")
    assert set(report.statuses.values()) == {"cached"}
    assert mdrun.read("doc.md") == text
