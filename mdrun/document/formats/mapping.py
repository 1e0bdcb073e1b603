"""Quarto, knitr and MyST-NB cell options mapped onto mdrun's options.

The conventions share most meanings (`eval`, `echo`, `include`...) under slightly different
names and values (YAML `false`, R's `FALSE`, MyST-NB tags). Options that only change how a page
looks (`fig-cap`, `code-fold`, `hide-input`) change nothing mdrun does: they are accepted and
ignored. Options that would make mdrun run other code than the block's (`file`, `child`) are
refused, so that no block silently runs something else.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from mdrun.document.formats.cell import OptionPairs

NATIVE_OPTIONS = frozenset(
    {"id", "session", "eval", "echo", "output", "timeout", "allow_error", "cache", "inputs",
     "kernel", "snapshot", "warning"}
)  # fmt: skip
"""mdrun's own option names, which cell options may use too."""

IGNORED_NOTED = frozenset(
    {"freeze", "cache-path", "cache-vars", "cache-lazy", "cache-rebuild", "cache-comments",
     "dependson", "autodep", "daemon", "message"}
)  # fmt: skip
"""Accepted, but worth a warning: the author expects them to do something mdrun does not."""

IGNORED_KEYS = frozenset(
    {"classes", "attr", "comment", "collapse", "prompt", "tidy", "tidy-opts", "highlight",
     "strip-white", "size", "background", "indent", "purl", "dev", "dev-args", "dpi",
     "render", "split", "animation-hook", "interval", "aniopts", "external", "sanitize",
     "opts-label", "r-options", "filename", "lang", "column", "panel", "ipynb", "debug",
     "output-location", "title", "class", "mystnb",
     "source-line-numbers", "number-source-lines", "ref-label", "engine", "engine-path",
     "engine-opts", "layout", "tags"}
)  # fmt: skip
"""Display and tool-specific options that change nothing mdrun does (listed in docs/howto.md)."""

IGNORED_PREFIXES = (
    "fig-", "tbl-", "tab-", "code-", "out-", "lst-", "layout-", "cap-", "html-", "class-",
    "attr-", "cell-", "fold", "output-", "warning-", "error-", "message-",
)  # fmt: skip
"""Families of display options (Quarto's `fig-*`, knitr's `fig.*`, `out.*`...)."""

REFUSED = {
    "file": "reads the cell's code from a file",
    "code": "replaces the cell's code",
    "child": "includes another document",
    "load": "loads the cell's code from a file",
}
"""Options that would run something other than the block's code."""

TAG_OPTIONS: Mapping[str, OptionPairs] = {
    "remove-input": (("echo", "false"),),
    "remove-output": (("output", "false"),),
    "remove-cell": (("echo", "false"), ("output", "false")),
    "remove-stderr": (("warning", "false"),),
    "raises-exception": (("allow_error", "true"),),
    "skip-execution": (("eval", "false"),),
}
"""MyST-NB cell tags that mdrun honours; `hide-*` and the others only change the page."""


@dataclass(frozen=True, slots=True)
class Mapped:
    """Cell options as mdrun options, with what was ignored and what could not be."""

    options: OptionPairs
    """mdrun options with text values, in the order given."""
    notes: tuple[str, ...]
    """Options accepted but ignored that deserve a warning."""
    problem: str | None
    """An option mdrun cannot honour, or a value of the wrong kind."""


def option_text(value: object) -> str:
    """A YAML or R value as mdrun's option text (`true`, `2.5`, `a.csv,b.csv`)."""
    if value is True:
        return "true"
    if value is False:
        return "false"
    if value is None:
        return "none"
    if isinstance(value, list | tuple):
        return ",".join(option_text(item) for item in value)
    return str(value)


def normal_key(key: str) -> str:
    """Quarto's `fig-cap`, knitr's `fig.cap` and `fig_cap` under one spelling."""
    return key.strip().lower().replace(".", "-").replace("_", "-")


def map_options(values: Mapping[str, object]) -> Mapped:
    """Map a cell's (or a document's `execute:`) options; later keys override earlier ones."""
    options: dict[str, str] = {}
    notes: list[str] = []
    problem: str | None = None
    hidden = False
    for raw_key, value in values.items():
        key = normal_key(str(raw_key))
        native = key.replace("-", "_")
        if key == "label":
            options["id"] = option_text(value)
        elif key == "include":
            hidden = option_text(value).lower() in ("false", "no", "0", "off")
        elif key == "error":
            options["allow_error"] = option_text(value)
        elif key == "echo":
            options["echo"] = "true" if value == "fenced" else option_text(value)
        elif key == "output":
            options["output"] = "true" if value == "asis" else option_text(value)
        elif key == "results":
            options["output"] = "false" if value == "hide" else "true"
        elif key == "cache" and isinstance(value, int) and not isinstance(value, bool):
            options["cache"] = "true" if value else "false"
        elif key == "enabled":
            options["eval"] = option_text(value)
        elif native in NATIVE_OPTIONS:
            options[native] = option_text(value)
        elif key in REFUSED:
            refused = f"option `{raw_key}` {REFUSED[key]}: mdrun runs the code in the block"
            problem = problem or refused
        elif key in IGNORED_NOTED:
            notes.append(f"option `{raw_key}` is ignored: mdrun's store decides what runs again")
        elif not _is_display_option(key):
            notes.append(f"unknown cell option `{raw_key}` is ignored")
    if hidden:
        options["echo"] = options["output"] = "false"
    return Mapped(tuple(options.items()), tuple(notes), problem)


def map_tags(tags: Iterable[object]) -> OptionPairs:
    """MyST-NB tags as mdrun options (unknown tags change only the page)."""
    pairs: list[tuple[str, str]] = []
    for tag in tags:
        pairs.extend(TAG_OPTIONS.get(str(tag), ()))
    return tuple(pairs)


def _is_display_option(key: str) -> bool:
    return key in IGNORED_KEYS or key.startswith(IGNORED_PREFIXES) or key.startswith("hide-")
