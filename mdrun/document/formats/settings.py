"""The run settings the command line adds to what a document says: languages to run, and
doctest mode. Standard library only: the command line reads them before deciding whether a
document needs parsing at all."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Settings:
    """What the command line asks of a run, beyond what the document says."""

    languages: frozenset[str] = frozenset()
    """Languages other than Python whose blocks run (`--languages bash,r`)."""
    doctest: bool = False
    """Run interactive-session blocks and rewrite their expected outputs (`--doctest`)."""

    def key(self) -> str:
        """A stable text for records that must change when the settings do."""
        return f"languages={','.join(sorted(self.languages))};doctest={self.doctest}"


def parse_languages(text: str) -> frozenset[str]:
    """`bash, r` → {bash, r}; ValueError for an empty name."""
    names = [part.strip().lower() for part in text.split(",")]
    if not all(names):
        raise ValueError("a comma-separated list of languages, none empty (bash,r)")
    return frozenset(names)
