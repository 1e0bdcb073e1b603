"""Write docs/api.md: the public names of `mdrun.core`, with signatures and docstrings.

Generated, never edited by hand: `make docs` runs this, and tests/test_docs.py checks that the
committed file equals a fresh generation. Names are grouped by the module that defines them, in
the order of `mdrun.core.__all__` within each module; aliases (`promise` for `SELFREF`) are
listed under the name they alias.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import re
import sys
from collections.abc import Sequence
from pathlib import Path

import mdrun.core

OUTPUT = Path(__file__).resolve().parent.parent / "docs" / "api.md"

HEADER = """\
# API reference: `mdrun.core`

Generated from the docstrings by `tools/apidoc.py` (`make docs`); do not edit by hand. The
signatures are marked `eval=false`, so that mdrun never runs them.
`from mdrun.core import *` gives every name below. [store.md](store.md) shows them at work.
"""


def _first_line(docstring: str | None) -> str:
    return (docstring or "").strip().splitlines()[0] if docstring else ""


_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")


class _Text:
    """Shows as its text: annotations as the source spells them, defaults without addresses."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return self.text


def _shown(annotation: object) -> object:
    if annotation is inspect.Parameter.empty:
        return annotation
    text = annotation if isinstance(annotation, str) else inspect.formatannotation(annotation)
    return _Text(text)


def _signature(value: object) -> str:
    """The call signature, as the source spells it (annotations are strings here)."""
    try:
        signature = inspect.signature(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return ""
    parameters = [
        parameter.replace(
            annotation=_shown(parameter.annotation),
            default=parameter.default
            if parameter.default is inspect.Parameter.empty
            else _Text(_ADDRESS.sub("", repr(parameter.default))),
        )
        for parameter in signature.parameters.values()
    ]
    return str(
        signature.replace(
            parameters=parameters, return_annotation=_shown(signature.return_annotation)
        )
    )


def _kind(value: object) -> str:
    if inspect.isclass(value):
        return "class"
    if callable(value):
        return "function"
    return "value"


def _entry(names: Sequence[str], value: object) -> str:
    """One name's section: heading, signature, docstring."""
    name = names[0]
    kind = _kind(value)
    lines = [f"### `{name}`", ""]
    if len(names) > 1:
        aliases = ", ".join(f"`{alias}`" for alias in names[1:])
        lines += [f"Also exported as {aliases}.", ""]
    if kind in ("class", "function"):
        prefix = "class " if kind == "class" else ""
        lines += ["```python eval=false", f"{prefix}{name}{_signature(value)}", "```", ""]
    else:
        lines += ["```python eval=false", f"{name} = {value!r}", "```", ""]
    docstring = inspect.getdoc(value) if kind != "value" else None
    if kind == "class" and docstring == inspect.getdoc(type):
        docstring = None
    if docstring:
        lines += [docstring, ""]
    if kind == "class":
        lines += _members(value)
    return "\n".join(lines)


def _members(cls: object) -> list[str]:
    """A class's public methods and properties defined on it (or on an mdrun class it is made
    of that is not public itself, as `Store` of `Publication`), with their first doc line."""
    rows: list[str] = []
    defined: dict[str, object] = {}
    for base in reversed(inspect.getmro(cls) if isinstance(cls, type) else ()):
        if base is cls or (
            base.__module__.startswith("mdrun.") and base.__name__ not in mdrun.core.__all__
        ):
            defined.update(vars(base))
    for member_name, member in sorted(defined.items()):
        if member_name.startswith("_"):
            continue
        if isinstance(member, property):
            rows.append(f"- `.{member_name}`: {_first_line(member.__doc__)}")
        elif isinstance(member, classmethod | staticmethod):
            function = member.__func__
            rows.append(
                f"- `{member_name}{_signature(function)}`: {_first_line(function.__doc__)}"
            )
        elif inspect.isfunction(member):
            rows.append(f"- `{member_name}{_signature(member)}`: {_first_line(member.__doc__)}")
    return [*rows, ""] if rows else []


def generate() -> str:
    """The text of docs/api.md."""
    sources = mdrun.core._SOURCES  # where each public name is defined, aliases included
    by_module: dict[str, dict[str, list[str]]] = {}
    for public in mdrun.core.__all__:
        module, attribute = sources[public]
        by_module.setdefault(module, {}).setdefault(attribute, []).append(public)
    parts = [HEADER]
    for module in sorted(by_module):
        imported = importlib.import_module(module)
        summary = _first_line(imported.__doc__)
        parts.append(f"## `{module}`\n\n{summary}\n")
        for attribute, publics in by_module[module].items():
            names = sorted(publics, key=lambda public: (public != attribute, public))
            parts.append(_entry(names, getattr(imported, attribute)))
    return "\n".join(parts).rstrip("\n") + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """Write the reference (or, with --check, exit 1 if the committed one is out of date)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    parser.add_argument("--output", type=Path, default=OUTPUT, help="default: docs/api.md")
    arguments = parser.parse_args(argv)
    text = generate()
    if arguments.check:
        current = arguments.output.read_text(encoding="utf-8") if arguments.output.exists() else ""
        if current != text:
            print(f"{arguments.output} is out of date: run `make docs`", file=sys.stderr)
            return 1
        return 0
    arguments.output.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
