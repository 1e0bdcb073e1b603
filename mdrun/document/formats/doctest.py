"""Doctest blocks: interactive Python sessions (```` ```pycon ````, `>>>` blocks, MyST's
`{doctest}`) whose expected outputs are written under each prompt.

In doctest mode such a block runs statement by statement in its session's Python kernel, as
the `doctest` module would run it (each statement compiled alone, values shown by their repr);
its outputs are then written back under the prompts, in place of the old ones, and every other
byte of the block stays. An output that still matches what was written (doctest's comparison,
with `...` ellipses and `<BLANKLINE>`) is left as the author wrote it.
"""

from __future__ import annotations

import doctest
import re
from collections.abc import Mapping, Sequence
from typing import Any

from mdrun.document.formats.cell import Cell, Example
from mdrun.document.formats.markdown import PYTHON_LANGUAGES, is_session_transcript
from mdrun.document.outputs import strip_ansi
from mdrun.document.parse import Block, split_info

SESSION_LANGUAGES = frozenset({"pycon", "python-console", "{doctest}"})
"""Info-string languages that mark a Python session."""

DEFAULT_FLAGS = doctest.ELLIPSIS | doctest.IGNORE_EXCEPTION_DETAIL
"""As Sphinx's doctest extension does: `...` matches anything, exception details may differ."""

RESULT_MIME = "application/vnd.mdrun.doctest+json"
"""The MIME type under which the kernel reports each statement's output."""

_EXCEPTION_LINE = re.compile(r"([A-Za-z_][\w.]*)(?::|$)")
_DIRECTIVE_LINE = re.compile(r":[A-Za-z][\w-]*:.*")
_RUNNER = """
import contextlib, io, sys, traceback
results = []
for source, name in examples:
    buffer = io.StringIO()
    exception = None
    hook = sys.displayhook
    sys.displayhook = sys.__displayhook__
    try:
        with contextlib.redirect_stdout(buffer):
            exec(compile(source, name, "single"), namespace)
    except Exception as error:
        exception = "".join(traceback.format_exception_only(type(error), error))
    finally:
        sys.displayhook = hook
    results.append({"output": buffer.getvalue(), "exception": exception})
from IPython.display import display
display({mime: {"results": results}}, raw=True)
"""


def is_doctest_block(block: Block) -> bool:
    """A `pycon` or `{doctest}` fence, or a Python fence that opens with a `>>>` prompt."""
    info = block.info.strip()
    first = info.split(maxsplit=1)[0].lower() if info else ""
    if first in SESSION_LANGUAGES:
        return True
    return block.language in PYTHON_LANGUAGES and is_session_transcript(block.code)


def read_doctest(block: Block) -> Cell:
    """The session's statements, and the code that runs them and reports their outputs."""
    info = block.info.strip()
    options: tuple[tuple[str, str], ...] = ()
    problem: str | None = None
    if not info.startswith("{"):
        _language, options, problem = split_info(info)
    content = block.code.splitlines()
    skipped = 0
    if info.startswith("{"):
        while skipped < len(content) and _DIRECTIVE_LINE.fullmatch(content[skipped]):
            skipped += 1
    try:
        examples = _examples(content, skipped)
    except ValueError as err:
        return Cell("python", "", options, problem or f"not a valid doctest session: {err}")
    return Cell(
        language="python",
        code=runner_code(examples),
        options=options,
        problem=problem,
        option_lines=tuple(range(skipped)),
        examples=examples,
    )


def _examples(content: Sequence[str], skipped: int) -> tuple[Example, ...]:
    text = "".join(line + "\n" for line in content[skipped:])
    parsed = doctest.DocTestParser().get_examples(text)
    examples: list[Example] = []
    for example in parsed:
        start = skipped + example.lineno + example.source.count("\n")
        flags = DEFAULT_FLAGS
        for flag, enabled in example.options.items():
            flags = flags | flag if enabled else flags & ~flag
        examples.append(
            Example(
                source=example.source,
                want=example.want,
                output_start=start,
                output_end=start + example.want.count("\n"),
                indent=" " * example.indent,
                flags=flags,
                exception=example.exc_msg,
            )
        )
    return tuple(examples)


def runner_code(examples: Sequence[Example]) -> str:
    """Python that runs each statement in the kernel's namespace and reports the outputs.

    Only the statements are in it, never the expected outputs: rewriting those must not change
    the block's key, or a run would never be up to date.
    """
    pairs = [(example.source, f"<doctest {number}>") for number, example in enumerate(examples, 1)]
    namespace = "get_ipython().user_ns"
    scope = f'{{"namespace": {namespace}, "examples": {pairs!r}, "mime": {RESULT_MIME!r}}}'
    return f"exec({_RUNNER!r}, {scope})\n"


def reported_results(outputs: Sequence[Mapping[str, Any]]) -> list[tuple[str, str | None]] | None:
    """Each statement's (output, exception) from the kernel's report; None if it is missing or
    not of the expected shape (it is untrusted)."""
    for output in outputs:
        data = output.get("data")
        if not isinstance(data, dict) or RESULT_MIME not in data:
            continue
        report = data[RESULT_MIME]
        results = report.get("results") if isinstance(report, dict) else None
        if not isinstance(results, list):
            return None
        checked: list[tuple[str, str | None]] = []
        for result in results:
            text = result.get("output") if isinstance(result, dict) else None
            exception = result.get("exception") if isinstance(result, dict) else None
            if not isinstance(text, str) or not (exception is None or isinstance(exception, str)):
                return None
            # Printed as a terminal would see it; the page shows text, as output regions do.
            checked.append((strip_ansi(text), None if exception is None else strip_ansi(exception)))
        return checked
    return None


def rewritten_lines(
    cell: Cell, block: Block, newline: str, outputs: Sequence[Mapping[str, Any]]
) -> dict[int, tuple[int, list[str]]]:
    """Replacements for the block's expected-output lines: {first line: (end, new lines)}.

    Line numbers are the document's; new lines carry the block's prefix and line ending.
    Outputs that still match what is written are left out (kept byte for byte).
    """
    results = reported_results(outputs)
    examples = cell.examples or ()
    if results is None or len(results) != len(examples):
        return {}
    first_content = block.start_line + 1
    replacements: dict[int, tuple[int, list[str]]] = {}
    for example, (got, exception) in zip(examples, results, strict=True):
        new = _new_output(example, got, exception)
        if new is None:
            continue
        written = [
            (f"{block.prefix}{example.indent}{line}" if line else block.prefix.rstrip()) + newline
            for line in new
        ]
        replacements[first_content + example.output_start] = (
            first_content + example.output_end,
            written,
        )
    return replacements


def _new_output(example: Example, got: str, exception: str | None) -> list[str] | None:
    """The lines to write under a statement, or None when what is written still holds."""
    checker = doctest.OutputChecker()
    if exception is not None:
        if example.exception is not None and _same_exception(example, exception, checker):
            return None
        text = got + "Traceback (most recent call last):\n    ...\n" + exception
    else:
        if example.exception is None and checker.check_output(example.want, got, example.flags):
            return None
        text = got
    return [line if line.strip() else "<BLANKLINE>" for line in text.splitlines()]


def _same_exception(example: Example, got: str, checker: doctest.OutputChecker) -> bool:
    """doctest's rule: the messages match, or with IGNORE_EXCEPTION_DETAIL the types do."""
    assert example.exception is not None
    if checker.check_output(example.exception, got, example.flags):
        return True
    if not example.flags & doctest.IGNORE_EXCEPTION_DETAIL:
        return False
    return _exception_type(example.exception) == _exception_type(got)


def _exception_type(message: str) -> str:
    """`module.Error: details` → `Error`."""
    for line in message.splitlines():
        match = _EXCEPTION_LINE.match(line)
        if match is not None:
            return match.group(1).rsplit(".", 1)[-1]
    return message.strip()
