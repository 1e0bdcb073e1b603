"""Run a Markdown document's blocks with markdown-exec, as MkDocs would: `python DRIVER IN OUT`.

Runs in markdown-exec's own environment (tests/bench/.envs/markdown-exec). markdown-exec's
documented set-up for Python-Markdown: pymdownx.superfences with its `formatter` and `validator`
as the custom fence for each language. Blocks with `exec="on" session="doc"` share globals.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path


def main(source: str, target: str) -> None:
    # Imported by name: these live in markdown-exec's environment, not in mdrun's.
    markdown = importlib.import_module("markdown")
    markdown_exec = importlib.import_module("markdown_exec")
    formatter, validator = markdown_exec.formatter, markdown_exec.validator

    fences = [
        {"name": name, "class": name, "validator": validator, "format": formatter}
        for name in ("python", "py")
    ]
    html = markdown.markdown(
        Path(source).read_text(encoding="utf-8"),
        extensions=["pymdownx.superfences"],
        extension_configs={"pymdownx.superfences": {"custom_fences": fences}},
    )
    Path(target).write_text(html, encoding="utf-8")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
