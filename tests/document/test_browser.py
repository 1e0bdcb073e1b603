"""An exported HTML page as a reader sees it: headless Chromium (Debian's) driven by Playwright.

`make browser` (a step of `make test`) installs Chromium with apt-get when it is missing. The
test is skipped only where that cannot work (not Linux, or no apt-get); anywhere else a missing
browser is a failure, so CI cannot pass without running it.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from mdrun.cli import main
from tests.document.test_export import PNG_BLOCK

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGUMENTS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

DOCUMENT = f"""\
# Seen in a browser

```python
print("visible output text")
```

{PNG_BLOCK}"""

pytestmark = [
    pytest.mark.kernel,
    pytest.mark.skipif(
        not sys.platform.startswith("linux") or shutil.which("apt-get") is None,
        reason="Chromium comes from Debian's packages: needs Linux with apt-get",
    ),
]


def test_exported_page_shows_its_output_and_loads_its_image(tmp_path: Path) -> None:
    assert CHROMIUM.exists(), f"{CHROMIUM} is missing: `make browser` installs it"
    from playwright.sync_api import sync_playwright

    document = tmp_path / "page.md"
    document.write_text(DOCUMENT, encoding="utf-8")
    assert main(["--store", str(tmp_path / "store"), "export", str(document), "--to", "html"]) == 0
    page_url = (tmp_path / "page.html").as_uri()
    requested: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGUMENTS)
        try:
            page = browser.new_page()
            page.on("request", lambda request: requested.append(request.url))
            page.goto(page_url, wait_until="load")
            output = page.locator(".mdrun-output", has_text="visible output text")
            assert output.is_visible()
            image = page.locator(".mdrun-output img")
            assert image.is_visible()
            source = image.get_attribute("src") or ""
            assert source.startswith("data:image/png;base64,")
            width, complete = image.evaluate("element => [element.naturalWidth, element.complete]")
            assert complete and width == 6
            assert page.title() == "Seen in a browser"
        finally:
            browser.close()
    # Self-contained: the page asked for nothing but itself and its data URIs.
    assert {url for url in requested if not url.startswith("data:")} == {page_url}


HOSTILE_DOCUMENT = """\
# Evil &lt;/title&gt;&lt;script&gt;window.injected = "title"&lt;/script&gt;

```python
print(":::")
print('<script>window.injected = "output"</script>')
print(":::")
print('<img src="x" onerror="window.injected = &quot;image&quot;">')
```
"""


def test_nothing_a_block_prints_or_a_heading_holds_runs_as_a_script(tmp_path: Path) -> None:
    assert CHROMIUM.exists(), f"{CHROMIUM} is missing: `make browser` installs it"
    from playwright.sync_api import sync_playwright

    document = tmp_path / "hostile.md"
    document.write_text(HOSTILE_DOCUMENT, encoding="utf-8")
    assert main(["--store", str(tmp_path / "store"), "export", str(document), "--to", "html"]) == 0
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGUMENTS)
        try:
            page = browser.new_page()
            page.goto((tmp_path / "hostile.html").as_uri(), wait_until="load")
            page.wait_for_timeout(200)  # an image's onerror runs after the load event
            assert page.evaluate("() => window.injected") is None
            assert page.title() == 'Evil </title><script>window.injected = "title"</script>'
            shown = page.locator(".mdrun-output pre").inner_text()
            assert shown.splitlines() == [
                ":::",
                '<script>window.injected = "output"</script>',
                ":::",
                '<img src="x" onerror="window.injected = &quot;image&quot;">',
            ]
        finally:
            browser.close()


def test_the_preview_of_a_hostile_output_runs_only_its_own_reload_script(tmp_path: Path) -> None:
    assert CHROMIUM.exists(), f"{CHROMIUM} is missing: `make browser` installs it"
    from playwright.sync_api import sync_playwright

    from mdrun.document.outputs import StreamOutput
    from mdrun.document.serve import Preview, PreviewServer
    from tests.document.test_export import BlockStatusLike, exported_page

    printed = ':::\n<script>window.injected = "preview"</script>\n:::\n'
    output = StreamOutput(output_type="stream", name="stdout", text=printed)
    preview = Preview()
    preview.publish(exported_page(tmp_path, BlockStatusLike("executed", (output,), "")))
    with PreviewServer(preview) as server, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGUMENTS)
        try:
            page = browser.new_page()
            page.goto(server.url, wait_until="load")
            assert page.evaluate("() => window.injected") is None
            assert ":::" in page.locator(".mdrun-output pre").inner_text()
            # The preview's own script still runs: a publication reloads the page.
            preview.publish(b"<html><body><p id=second>second run</p></body></html>")
            page.wait_for_selector("#second", timeout=10_000)
        finally:
            browser.close()
