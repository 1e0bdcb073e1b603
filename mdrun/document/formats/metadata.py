"""What a document says about itself: its front matter's settings and its project's `_quarto.yml`.

The front matter was read when the document was parsed (`front_matter`, PyYAML's safe loader: no
object is ever constructed from a document); what the keys mean for blocks is each format reader's.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from mdrun.document.front_matter import load_yaml
from mdrun.document.parse import Document
from mdrun.errors import Location, ParseError

QUARTO_PROJECT_FILE = "_quarto.yml"
"""A Quarto project's settings; its `execute:` sets defaults for every document under it."""


def front_matter_data(document: Document) -> tuple[dict[str, Any], str | None]:
    """The front matter as YAML (empty when there is none), and a warning if it is not YAML.

    Front matter that is not YAML is another tool's business, unless it sets mdrun's keys:
    then it is an error, since mdrun cannot tell what it asks for.
    """
    front_matter = document.front_matter
    data = dict(front_matter.checked_data())
    problem = front_matter.problem
    if problem is None:
        return data, None
    return data, f"{problem.location}: front matter is {problem.message}; its keys are ignored"


def project_file(base_dir: Path) -> Path | None:
    """The nearest `_quarto.yml` in the document's folder or above it."""
    for folder in (base_dir, *base_dir.parents):
        path = folder / QUARTO_PROJECT_FILE
        if path.is_file():
            return path
    return None


def project_execute(path: Path | None) -> dict[str, Any]:
    """The `execute:` of a `_quarto.yml` ({} without one)."""
    if path is not None:
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as err:
            raise ParseError(f"cannot read it: {err}", Location(str(path))) from err
        data = load_yaml(text, Location(str(path)))
        execute = data.get("execute") if isinstance(data, dict) else None
        return execute if isinstance(execute, dict) else {}
    return {}


def mdrun_setting(data: Mapping[str, Any], name: str) -> Any:
    """`mdrun.NAME: value` in the front matter, else None."""
    return data.get(f"mdrun.{name}")


def languages_setting(value: Any, location: Location) -> frozenset[str]:
    """The front matter's `mdrun.languages`: a list (`[bash, r]`) or comma-separated text."""
    if value is None:
        return frozenset()
    if isinstance(value, dict):
        raise ParseError("`mdrun.languages` is a list of languages, such as [bash, r]", location)
    items: Iterable[Any] = value if isinstance(value, list) else str(value).split(",")
    names = frozenset(str(item).strip().lower() for item in items)
    if not all(names) or any(isinstance(item, dict | list) for item in items):
        raise ParseError("`mdrun.languages` is a list of languages, such as [bash, r]", location)
    return names


def boolean_setting(value: Any, name: str, location: Location) -> bool:
    """A front matter boolean (`true`/`false`, YAML's spellings)."""
    if value is None:
        return False
    if isinstance(value, bool):
        return value
    raise ParseError(f"`mdrun.{name}` is true or false, not `{value}`", location)


def nested(data: Mapping[str, Any], *keys: str) -> Any:
    """`data[a][b]...`, or None where a level is missing or not a mapping."""
    value: Any = data
    for key in keys:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value
