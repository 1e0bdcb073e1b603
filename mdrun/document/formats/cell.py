"""The value every format reader produces: a block that runs, its code and its options as text.

Readers (Markdown, Quarto and R Markdown, MyST notebooks, doctest sessions) each turn their own
conventions into a `Cell`; validating option values is `options`' job, and nothing after
planning asks which format a cell came from.
"""

from __future__ import annotations

from dataclasses import dataclass

OptionPairs = tuple[tuple[str, str], ...]
"""mdrun option names (`id`, `echo`...) with their values as text, in order."""


@dataclass(frozen=True, slots=True)
class Example:
    """One statement of a doctest session and where its expected output is written."""

    source: str
    """The statement without its `>>> ` / `... ` prompts, ending with a newline."""
    want: str
    """The expected output as written (prompt indentation removed); "" for none."""
    output_start: int
    """0-based index, among the block's content lines, of its first expected-output line."""
    output_end: int
    """Exclusive end of its expected-output lines (equal to `output_start` when there are none)."""
    indent: str
    """The indentation of its prompt, which its output lines carry too."""
    flags: int
    """`doctest` option flags that compare outputs (defaults and `# doctest:` directives)."""
    exception: str | None
    """The exception message the expected output shows (a traceback), else None."""


@dataclass(frozen=True, slots=True)
class Cell:
    """A block that runs, as every format reader describes it."""

    language: str
    """The language its kernel is chosen by (`python`, `bash`, `r`...)."""
    code: str
    """What the kernel runs: the content without the lines that hold options (`#|`, `:key:`)."""
    options: OptionPairs = ()
    """Its options, mapped onto mdrun's names; `options` validates the values."""
    problem: str | None = None
    """Why its options cannot be read (a bare word, a value mdrun cannot honour...)."""
    option_lines: tuple[int, ...] = ()
    """Indexes of the content lines that hold options (exports leave them out)."""
    examples: tuple[Example, ...] | None = None
    """For a doctest session: its statements; their outputs are written inside the block."""
    notes: tuple[str, ...] = ()
    """Options accepted but ignored that a user may want to hear about (`freeze`)."""

    @property
    def is_doctest(self) -> bool:
        """Whether the block's own text holds its outputs (a doctest session)."""
        return self.examples is not None
