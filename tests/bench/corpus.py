"""The document benchmark's corpus: four deterministic documents of Python blocks and their edits.

Every document exists in three versions (*original*, *middle*: one block in the middle changed,
*last*: only the last block changed), and every version is written in each tool's input form
(`Dialect`) from the same list of block sources, so all tools run exactly the same code.

- *small*: 10 trivial blocks;
- *medium*: 50 blocks of about 20 ms of CPU work each, each using the previous block's variable;
- *large*: 300 trivial blocks;
- *heavy*: 10 blocks of about 0.5 s each (about 0.25 s of CPU work, then a 0.25 s sleep), each
  using the previous block's variable;
- *thousand* (the edit benchmark's, `edit_corpus`): 1,000 trivial blocks;
- *array* (the edit benchmark's): block 0 makes a 500 MB array of random numbers (incompressible,
  so a store's bytes say how many copies it keeps), then 5 quick blocks, each reading one of its
  elements and the previous block's variable.

An edit changes a value that flows downstream (the middle block's constant), so every later
block's output changes too: the edit cannot be absorbed by early cutoff.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Version = Literal["original", "middle", "last"]
VERSIONS: tuple[Version, ...] = ("original", "middle", "last")
Dialect = Literal["plain", "codebraid", "markdown_exec"]

MEDIUM_WORK = 300_000
"""sum(k * k for k in range(MEDIUM_WORK)) takes ~20 ms on an idle core of the machine measured."""
HEAVY_WORK = 4_000_000
"""About 0.25 s of CPU work per heavy block on the same machine."""
HEAVY_SLEEP = 0.25
ARRAY_BYTES = 500_000_000
"""The array document's first block makes a float64 array of this many bytes."""
ARRAY_QUICK_BLOCKS = 5


@dataclass(frozen=True, slots=True)
class Document:
    """One corpus document: its name, what it is, and its blocks' sources in each version."""

    name: str
    description: str
    blocks: dict[Version, tuple[str, ...]]

    @property
    def size(self) -> int:
        return len(self.blocks["original"])


def _trivial(index: int, edited: bool) -> str:
    value = index + 1000 if edited else index
    return f"v{index} = {value}\nprint('block {index}:', v{index})\n"


def _medium(index: int, edited: bool) -> str:
    previous = f"acc{index - 1}" if index else "0"
    bonus = 7 if edited else 1
    return (
        f"acc{index} = ({previous} + sum(k * k for k in range({MEDIUM_WORK})) + {bonus})"
        " % 1_000_003\n"
        f"print('block {index}:', acc{index})\n"
    )


def _heavy(index: int, edited: bool) -> str:
    previous = f"total{index - 1}" if index else "0"
    bonus = 7 if edited else 1
    return (
        "import time\n"
        f"total{index} = ({previous} + sum(k * k for k in range({HEAVY_WORK})) + {bonus})"
        " % 1_000_003\n"
        f"time.sleep({HEAVY_SLEEP})\n"
        f"print('block {index}:', total{index})\n"
    )


def _array(index: int, edited: bool) -> str:
    bonus = 7 if edited else 1
    if index == 0:
        return (
            "import numpy\n"
            f"big = numpy.random.default_rng({bonus}).random({ARRAY_BYTES // 8})\n"
            "value0 = 0\n"
            "print('block 0:', big.nbytes)\n"
        )
    return (
        f"value{index} = (value{index - 1} + int(big[{index}] * 1000) + {bonus}) % 1_000_003\n"
        f"print('block {index}:', value{index})\n"
    )


def _document(name: str, description: str, count: int, block: object) -> Document:
    assert callable(block)
    middle = count // 2
    versions: dict[Version, tuple[str, ...]] = {
        "original": tuple(block(i, False) for i in range(count)),
        "middle": tuple(block(i, i == middle) for i in range(count)),
        "last": tuple(block(i, i == count - 1) for i in range(count)),
    }
    return Document(name, description, versions)


def corpus() -> tuple[Document, ...]:
    """The four documents, smallest work first."""
    return (
        _document("small", "10 trivial blocks", 10, _trivial),
        _document("medium", "50 blocks of ~20 ms, each using the previous one", 50, _medium),
        _document("large", "300 trivial blocks", 300, _trivial),
        _document("heavy", "10 blocks of ~0.5 s (CPU + sleep), chained", 10, _heavy),
    )


def edit_corpus() -> tuple[Document, ...]:
    """The edit benchmark's documents: the four above, 1,000 trivial blocks, the 500 MB array."""
    return (
        *corpus(),
        _document("thousand", "1,000 trivial blocks", 1000, _trivial),
        _document(
            "array", f"a 500 MB array in block 0, then {ARRAY_QUICK_BLOCKS} quick blocks",
            ARRAY_QUICK_BLOCKS + 1, _array,
        ),
    )  # fmt: skip


def _fence(code: str, dialect: Dialect) -> str:
    if dialect == "codebraid":
        opening = "```{.python .cb-run session=doc}"
    elif dialect == "markdown_exec":
        opening = '```python exec="on" session="doc"'
    else:
        opening = "```python"
    return f"{opening}\n{code}```\n"


def render(document: Document, version: Version, dialect: Dialect) -> str:
    """The Markdown text of one version of a document, in one tool's input form."""
    parts = [f"# Benchmark document: {document.name}\n", f"{document.description}.\n"]
    for index, code in enumerate(document.blocks[version]):
        parts.append(f"Block {index} computes the next value.\n")
        parts.append(_fence(code, dialect))
    return "\n".join(parts)


def script(document: Document, version: Version) -> str:
    """Every block concatenated: the floor (`python -c`)."""
    return "".join(document.blocks[version])
