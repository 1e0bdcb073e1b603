"""The MkDocs plugin against a real `mkdocs build` (Material theme) of a small site.

Each block appends its name to a file outside the site, so the tests see which blocks really
executed, as a user would notice a slow rebuild; the plugin's log line says the same.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.kernel, pytest.mark.slow]

CONFIG = """\
site_name: Small site
theme:
  name: material
plugins:
  - mdrun:
      store: store
"""


PLOT = "import matplotlib.pyplot as plt\nplt.figure(figsize=(2, 1))\nplt.plot([1, 2])\nplt.show()"
"""A block that shows a small figure."""


def page(runs: Path, *blocks: tuple[str, str]) -> str:
    """A page whose blocks each record their name in `runs` before running their code."""
    parts = ["# A page\n"]
    for name, code in blocks:
        parts.append(
            f"```python id={name}\nopen({str(runs)!r}, 'a').write({name + ' '!r})\n{code}\n```\n"
        )
    return "\n".join(parts)


def build(site: Path) -> subprocess.CompletedProcess[str]:
    """`mkdocs build` as a user runs it, in the site's folder."""
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build"],
        cwd=site,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )


def executed(runs: Path) -> list[str]:
    """The blocks that executed since the file was last emptied (then empties it)."""
    names = runs.read_text().split() if runs.exists() else []
    runs.write_text("")
    return names


@pytest.fixture
def site(tmp_path: Path) -> Path:
    folder = tmp_path / "site-project"
    (folder / "docs" / "guide").mkdir(parents=True)
    (folder / "mkdocs.yml").write_text(CONFIG)
    return folder


def test_build_renders_outputs_then_reuses_them_then_reruns_one_edited_block(
    site: Path, tmp_path: Path
) -> None:
    runs = tmp_path / "runs.txt"
    index = page(runs, ("greet", "print('hello from the greet block')"), ("answer", "21 * 2"))
    plot = page(runs, ("plot", PLOT))
    (site / "docs" / "index.md").write_text(index)
    (site / "docs" / "guide" / "plot.md").write_text(plot)

    cold = build(site)
    assert cold.returncode == 0, cold.stderr
    assert sorted(executed(runs)) == ["answer", "greet", "plot"]
    html = (site / "site" / "index.html").read_text()
    output = re.search(r'class="mdrun-output" data-mdrun-block="greet">(.*?)</div>', html, re.S)
    assert output is not None and "hello from the greet block" in output.group(1)
    assert ">42" in html
    image = re.search(r'<img alt="output of plot" src="([^"]+)"', (
        site / "site" / "guide" / "plot" / "index.html").read_text())  # fmt: skip
    assert image is not None
    served = (site / "site" / "guide" / "plot" / image.group(1)).resolve()
    assert served.read_bytes().startswith(b"\x89PNG")
    assert (site / "site" / "assets" / "mdrun.css").is_file()
    # The sources are as they were: no outputs, no image folder in docs/.
    assert (site / "docs" / "index.md").read_text() == index
    assert sorted(p.name for p in (site / "docs" / "guide").iterdir()) == ["plot.md"]

    warm = build(site)
    assert warm.returncode == 0, warm.stderr
    assert executed(runs) == []
    assert "mdrun: 3 blocks, 0 executed, 3 cached, 0 failed" in warm.stderr
    assert (site / "site" / "index.html").read_text() == html

    (site / "docs" / "index.md").write_text(index.replace("21 * 2", "20 * 2"))
    edited = build(site)
    assert edited.returncode == 0, edited.stderr
    # Only `answer` runs again (`greet` may be replayed silently, without output, to give it
    # the state it starts from); the other page is not touched.
    ran = executed(runs)
    assert ran.count("answer") == 1 and set(ran) <= {"greet", "answer"}
    assert "docs/index.md: 2 blocks, 1 executed, 1 cached" in edited.stderr
    assert "mdrun: 3 blocks, 1 executed, 2 cached, 0 failed" in edited.stderr
    assert ">40" in (site / "site" / "index.html").read_text()


def test_a_failing_block_fails_the_build_with_its_line_unless_configured(
    site: Path, tmp_path: Path
) -> None:
    runs = tmp_path / "runs.txt"
    (site / "docs" / "index.md").write_text(page(runs, ("plot", PLOT), ("broken", "1 / 0")))

    failed = build(site)
    assert failed.returncode == 1
    assert "docs/index.md:11: block broken: ZeroDivisionError: division by zero" in failed.stderr
    assert "fail_on_error: false" in failed.stderr

    # Configured otherwise: the build goes on, and (write_back) the source gets the outputs.
    options = "      fail_on_error: false\n      write_back: true\n"
    (site / "mkdocs.yml").write_text(CONFIG + options)
    built = build(site)
    assert built.returncode == 0, built.stderr
    source = (site / "docs" / "index.md").read_text()
    assert "<!-- mdrun:output id=broken -->\n``` error\n" in source
    assert re.search(r"!\[output of plot\]\(index_files/[0-9a-f]{16}\.png\)", source)
    assert sorted(p.suffix for p in (site / "docs" / "index_files").iterdir()) == [".png"]
    assert "WARNING -  mdrun: docs/index.md:11: block broken: ZeroDivisionError" in built.stderr
    # A failure is not stored: `broken` runs again (after `plot` is replayed for its state).
    assert executed(runs).count("broken") == 2
    assert "mdrun: 2 blocks, 0 executed, 1 cached, 1 failed" in built.stderr
    look_at(site / "site" / "index.html", tmp_path / "failed-page.png")


def look_at(html: Path, screenshot: Path) -> None:
    """The page in Chromium: the figure loads, the error reads as one (red, on a tint)."""
    from playwright.sync_api import sync_playwright

    from tests.document.test_browser import CHROMIUM, CHROMIUM_ARGUMENTS

    assert CHROMIUM.exists(), f"{CHROMIUM} is missing: `make browser` installs it"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGUMENTS)
        try:
            page = browser.new_page(viewport={"width": 1000, "height": 800})
            page.goto(html.as_uri(), wait_until="load")
            image = page.locator(".mdrun-output img")
            assert image.is_visible()
            assert image.evaluate("element => element.complete && element.naturalWidth") > 0
            error = page.locator(".mdrun-output .mdrun-error code")
            assert error.is_visible() and "ZeroDivisionError" in error.inner_text()
            red, green, _blue = error.evaluate(
                "e => getComputedStyle(e).color.match(/\\d+/g).map(Number)"
            )
            assert red > 2 * green, "the traceback is shown in red"
            page.screenshot(path=str(screenshot), full_page=True)
        finally:
            browser.close()
    print(f"screenshot: {screenshot}")
