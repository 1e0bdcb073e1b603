"""The MkDocs plugin `mdrun`: each page's blocks run through the store while the site builds.

Pages are run in `on_files`, before navigation and rendering: the page's own text (front matter
included, so options and line numbers are mdrun's), not the Markdown that MkDocs hands later
events with its front matter cut off. The rendered page replaces the file's content in memory;
the source on disk is written only with `write_back: true`. Images become generated files of the
site, at the path the page links (`PAGE_files/HASH.png` beside the page), so MkDocs copies them
into the site and checks the links as for any other file; nothing is written into docs/.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path
from typing import Literal

from mkdocs.config import base, config_options
from mkdocs.config.defaults import MkDocsConfig
from mkdocs.exceptions import PluginError
from mkdocs.plugins import BasePlugin, get_plugin_logger
from mkdocs.structure.files import File, Files, InclusionLevel

from mdrun.core.store import Store, default_store_root
from mdrun.document.pipeline import write_result
from mdrun.errors import MdrunError
from mdrun.integrations.site_page import PageRun, failure_line, run_page
from mdrun.terminal import summary_line

log = get_plugin_logger("mdrun")

STYLESHEET = "assets/mdrun.css"
"""Where the outputs' stylesheet is served in the site (added to `extra_css`)."""


class MdrunPluginConfig(base.Config):  # type: ignore[no-untyped-call]
    """The options under `plugins: - mdrun:` in mkdocs.yml."""

    enabled = config_options.Type(bool, default=True)
    """Run the blocks at all (`enabled: !ENV [MDRUN, true]` turns it off from the shell)."""
    store = config_options.Optional(config_options.Type(str))
    """The store, relative to mkdocs.yml (default: `$MDRUN_STORE`, else the user's cache)."""
    fail_on_error = config_options.Type(bool, default=True)
    """A failed block fails the build; with false it is logged as a warning and shown."""
    keep_going = config_options.Type(bool, default=False)
    """After a block fails, run the rest of its session anyway."""
    write_back = config_options.Type(bool, default=False)
    """Also write each page's outputs into its source file, as `mdrun run` would."""


class MdrunPlugin(BasePlugin[MdrunPluginConfig]):  # type: ignore[no-untyped-call]
    """Runs every page's blocks through the store; unchanged pages cost only lookups."""

    def __init__(self) -> None:
        self.serving = False
        self.store: Store | None = None

    def on_startup(
        self,
        *,
        command: Literal["build", "gh-deploy", "serve"],
        dirty: bool,  # noqa: ARG002 (MkDocs passes it by name)
    ) -> None:
        """Kept across `mkdocs serve` rebuilds (the presence of this method asks for that)."""
        self.serving = command == "serve"

    def on_config(self, config: MkDocsConfig) -> MkDocsConfig | None:
        """Open the store; add the stylesheet and `md_in_html` (which reads the output divs)."""
        if not self.config.enabled:
            return config
        root = default_store_root()
        if self.config.store:
            root = Path(config.config_file_path or ".").absolute().parent / self.config.store
        try:
            self.store = Store.initialize(root)
        except MdrunError as err:
            raise PluginError(f"mdrun: {err}") from err
        if STYLESHEET not in config.extra_css:
            config.extra_css.append(STYLESHEET)
        if "md_in_html" not in config.markdown_extensions:
            config.markdown_extensions.append("md_in_html")
        return config

    def on_files(self, files: Files, *, config: MkDocsConfig) -> Files | None:
        """Run each page; fail the build, naming every failed block, if one failed."""
        if not self.config.enabled or self.store is None:
            return files
        inclusion = InclusionLevel.is_in_serve if self.serving else InclusionLevel.is_included
        failures: list[str] = []
        totals = {"blocks": 0, "executed": 0, "cached": 0}
        for file in files.documentation_pages(inclusion=inclusion):
            page = self._run(file, config, self.store)
            evaluation = page.result.evaluation
            totals["blocks"] += sum(1 for o in evaluation.outcomes if o.status != "skipped")
            totals["executed"] += evaluation.count("executed")
            totals["cached"] += evaluation.count("cached")
            shown = evaluation.plan.document.path
            failures += [failure_line(outcome, shown) for outcome in page.failures]
            for name, data in page.images().items():
                _add_generated(files, config, _beside(file.src_uri, name), data)
        _add_generated(files, config, STYLESHEET, _stylesheet())
        log.info(
            f"{totals['blocks']} blocks, {totals['executed']} executed, {totals['cached']} "
            f"cached, {len(failures)} failed"
        )
        if failures and self.config.fail_on_error:
            raise PluginError(
                "mdrun: a block failed (set `fail_on_error: false` to build anyway):\n"
                + "\n".join(failures)
            )
        for line in failures:
            log.warning(line)
        return files

    def _run(self, file: File, config: MkDocsConfig, store: Store) -> PageRun:
        """Run one page and put its rendered text in place of the file's content."""
        path = Path(file.abs_src_path or os.path.join(config.docs_dir, file.src_uri))
        source = file.abs_src_path
        try:
            text = file.content_string
        except UnicodeDecodeError as err:
            raise PluginError(f"mdrun: {_shown(path)}: not UTF-8 text") from err
        try:
            page = run_page(text, path, _shown(path), store, keep_going=self.config.keep_going)
        except MdrunError as err:
            raise PluginError(f"mdrun: {err}") from err
        evaluation = page.result.evaluation
        if evaluation.count("executed") or evaluation.failed:
            log.info(f"{_shown(path)}: {summary_line(evaluation).removeprefix('mdrun: ')}")
        writes = self.config.write_back and source is not None and page.result.changed
        if writes and not write_result(page.result, store, str(source)):
            log.warning(f"{_shown(path)} changed while its blocks ran: not written back")
        if page.site_markdown != text:
            file.content_string = page.site_markdown
        return page


def _shown(path: Path) -> str:
    """A page's path as messages name it: relative to the working folder when inside it."""
    try:
        return path.relative_to(Path.cwd()).as_posix()
    except ValueError:
        return str(path)


def _beside(page_uri: str, relative: str) -> str:
    """The site path of a file linked from a page by a path relative to the page's folder."""
    folder = page_uri.rpartition("/")[0]
    return f"{folder}/{relative}" if folder else relative


def _add_generated(files: Files, config: MkDocsConfig, uri: str, content: bytes) -> None:
    """Add a file that exists only in the site (an image is named by its content: a file
    already there under that name, from the docs folder, holds the same bytes)."""
    if files.get_file_from_path(uri) is None:
        files.append(File.generated(config, uri, content=content))


def _stylesheet() -> bytes:
    return resources.files("mdrun.integrations").joinpath("mkdocs.css").read_bytes()
