"""mdrun's own docs/ as a MkDocs site (what `make site` builds), seen in headless Chromium.

To stay quick, the pages whose blocks run mdrun many times (tutorial, howto, cache) are left
out here; `make site` builds them all. The screenshot is kept in the test's tmp folder (its path
is printed) for a person to look at.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.document.test_browser import CHROMIUM, CHROMIUM_ARGUMENTS

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.kernel, pytest.mark.slow]


def test_docs_build_as_a_site_whose_outputs_are_set_apart(tmp_path: Path) -> None:
    config = tmp_path / "mkdocs.yml"
    config.write_text(
        f"INHERIT: {ROOT / 'mkdocs.yml'}\n"
        f"docs_dir: {ROOT / 'docs'}\n"
        f"site_dir: {tmp_path / 'site'}\n"
        "strict: false\n"
        "exclude_docs: |\n  tutorial.md\n  howto.md\n  cache.md\n"
        "plugins:\n  - search\n  - mdrun:\n"
        f"      store: {tmp_path / 'store'}\n"
    )
    built = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "-f", str(config)],
        cwd=ROOT,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert built.returncode == 0, built.stderr
    assert "0 failed" in built.stderr
    page_url = (tmp_path / "site" / "store" / "index.html").as_uri()
    assert CHROMIUM.exists(), f"{CHROMIUM} is missing: `make browser` installs it"
    from playwright.sync_api import sync_playwright

    screenshot = tmp_path / "store-page.png"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGUMENTS)
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 900})
            page.goto(page_url, wait_until="load")
            outputs = page.locator(".mdrun-output")
            assert outputs.count() >= 5
            first = outputs.first
            assert first.is_visible()
            # Set apart: a rule on the left, and no code-block background of its own.
            border = first.evaluate("element => getComputedStyle(element).borderLeftStyle")
            assert border == "solid"
            code = page.locator(".highlight").first
            code_background = code.evaluate("e => getComputedStyle(e.querySelector('pre > code'))"
                                            ".backgroundColor")  # fmt: skip
            output_background = first.evaluate(
                "e => getComputedStyle(e.querySelector('pre > code')).backgroundColor"
            )
            assert output_background != code_background
            page.screenshot(path=str(screenshot), full_page=True)
        finally:
            browser.close()
    print(f"screenshot: {screenshot}")
