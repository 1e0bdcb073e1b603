"""Plan: each executable block of a document becomes a derivation of the store.

A block's config holds everything that can change its output: its code, its language and
kernel (with the language version), the options that change what it produces, the hashes of its
input files, and the *result key* of the previous block of its session: a digest of what that
block produced (its outputs and the session state it left), not of what it was. So a block that
re-runs but produces the same thing (a comment edited) leaves the blocks after it cached: early
cutoff. The result key is known only once the upstream block is realized, so planning gives a
base config and `block_config` completes it during evaluation. Options that only change how
outputs are shown (echo, output) stay out, so toggling them re-runs nothing; the output limit
is in, since it changes what is stored (only when it is not the default, so that keys made
before it existed still hold). The fields, and what a change of each means to `mdrun status`,
are listed once, in `KEY_FIELDS`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from mdrun.core.config import SELFREF, Config
from mdrun.core.hashing import file_sha256
from mdrun.core.jsonvalue import JSONObject, JSONValue
from mdrun.core.refs import DRef, make_dref
from mdrun.document.formats.cell import Cell
from mdrun.document.formats.reading import Format, read_cells
from mdrun.document.formats.settings import Settings
from mdrun.document.kernels import PYTHON_LANGUAGES, KernelChoice, resolve_kernel
from mdrun.document.options import BlockOptions, cell_options, document_defaults
from mdrun.document.output_limit import DEFAULT_MAX_OUTPUT
from mdrun.document.parse import Block, Document
from mdrun.errors import InternalError, KernelNotFound, Location, ParseError

OUTPUTS_FILE = "outputs.json"
"""The artifact every block realization holds: its status and nbformat outputs."""

_NAME_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")

_CODE = "its code changed"
_OPTIONS = "its options changed"
_INPUTS = "an input file changed"
_KERNEL = "the kernel changed"
_FORMAT = "mdrun keys blocks differently now"

KEY_FIELDS: Mapping[str, str] = {
    "code": _CODE,
    "allow_error": _OPTIONS,
    "id": _OPTIONS,
    "name": _OPTIONS,
    "doctest": _OPTIONS,
    "max_output": _OPTIONS,
    "inputs": _INPUTS,
    "kernel": _KERNEL,
    "language": _KERNEL,
    "mdrun": _FORMAT,
    "outputs": _FORMAT,
}
"""Every field of a block's base config, and what a change of it means, as `status` says why a
block is stale (in this order). `base_config` writes no other field: a new one comes with its
reason here."""


@dataclass(frozen=True, slots=True)
class SessionKey:
    """Blocks with the same session name and kernel share one kernel and one chain."""

    name: str
    """The `session=` option (default `main`)."""
    kernel: str
    """The kernel that runs the session's blocks."""

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True, slots=True)
class PlannedBlock:
    """A block with its options, identity and (for executable ones) its derivation."""

    block: Block
    """The block as parsed."""
    options: BlockOptions
    """Its validated options (front matter defaults applied)."""
    block_id: str
    """Its stable name: `id=`, else its position within its session (`b3`, `extra-2`)."""
    kernel: KernelChoice | None
    """The kernel that runs it; None when the block is never run."""
    session: SessionKey | None
    """Its session; None when the block is never run."""
    base_config: JSONObject | None
    """Its config without the upstream result key; None when the block is never run."""
    upstream: int | None
    """Index (in the plan) of the previous executable block of its session."""
    cell: Cell | None = None
    """What its format reader made of it; None for a block that is text."""

    @property
    def code(self) -> str:
        """The code its kernel runs (option lines removed), or its content if it is text."""
        return self.block.code if self.cell is None else self.cell.code

    @property
    def line(self) -> int:
        """1-based line of the opening fence, for messages."""
        return self.block.start_line + 1

    @property
    def executable(self) -> bool:
        """True when the block runs in a kernel."""
        return self.base_config is not None


@dataclass(frozen=True, slots=True)
class Plan:
    """Every block of a document, planned."""

    document: Document
    """The parsed document."""
    blocks: tuple[PlannedBlock, ...]
    """One entry per fenced block, in document order."""
    base_dir: Path
    """The folder that relative paths (inputs, images, the kernel's cwd) start from."""
    format: Format = "markdown"
    """The conventions the document was read with."""
    notes: tuple[str, ...] = ()
    """Warnings from reading its blocks (options accepted but ignored), `path:line: ...`."""
    settings: Settings = field(default_factory=Settings)
    """What the command line asked for (languages, doctest mode)."""
    sources: tuple[str, ...] = ()
    """Files besides the document that its reading depends on (a project's `_quarto.yml`)."""

    @property
    def warnings(self) -> tuple[str, ...]:
        """Every warning about the document: the parser's, then the readers'."""
        return (*self.document.warnings, *self.notes)


def kernel_identity(kernel: KernelChoice) -> JSONObject:
    """What the cache key records about a kernel: its name, language and version."""
    identity: JSONObject = {"name": kernel.name, "language": kernel.language.lower()}
    known = kernel.known_language_info()
    if known is not None:
        identity["version"] = known.get("version", "")
    else:
        identity["argv"] = [arg for arg in kernel.argv if "{connection_file}" not in arg]
    return identity


def input_hashes(
    paths: tuple[str, ...], base_dir: Path, location: Location
) -> dict[str, JSONValue]:
    """The SHA-256 of each input file, so editing a data file re-runs the blocks reading it."""
    hashes: dict[str, JSONValue] = {}
    for name in paths:
        path = base_dir / name
        try:
            hashes[name] = file_sha256(path)
        except FileNotFoundError:
            raise ParseError(f"input file {name!r} does not exist ({path})", location) from None
        except IsADirectoryError:
            raise ParseError(f"input {name!r} is a folder, not a file", location) from None
    return hashes


def base_config(
    planned_id: str,
    *,
    block: Block,
    cell: Cell,
    options: BlockOptions,
    kernel: KernelChoice,
    inputs: Mapping[str, JSONValue],
) -> JSONObject:
    """A block's config, but for its upstream result key (see the module docstring)."""
    name = _NAME_UNSAFE.sub("_", planned_id).strip("_") or "block"
    # The language as written, as before format readers: keys of existing blocks stay put.
    language = block.language if block.language in PYTHON_LANGUAGES else cell.language
    config: JSONObject = {
        "name": name,
        "mdrun": "block",
        "id": planned_id,
        "code": cell.code,
        "language": language,
        "kernel": kernel_identity(kernel),
        "allow_error": options.allow_error,
        "inputs": dict(inputs),
        "outputs": [SELFREF, OUTPUTS_FILE],
    }
    if cell.is_doctest:
        config["doctest"] = True
    if options.max_output != DEFAULT_MAX_OUTPUT:
        config["max_output"] = options.max_output
    assert config.keys() <= KEY_FIELDS.keys(), "every key field has a status reason"
    return config


def key_changes(old: Mapping[str, JSONValue], new: Mapping[str, JSONValue]) -> list[str]:
    """What differs between two base configs, in `KEY_FIELDS`'s words (each reason once)."""
    reasons: list[str] = []
    for name, reason in KEY_FIELDS.items():
        if old.get(name) != new.get(name) and reason not in reasons:
            reasons.append(reason)
    unknown = (old.keys() | new.keys()) - KEY_FIELDS.keys()  # from another version of mdrun
    if any(old.get(name) != new.get(name) for name in unknown) and _FORMAT not in reasons:
        reasons.append(_FORMAT)
    return reasons


def block_config(planned: PlannedBlock, upstream_key: str | None) -> Config:
    """The config of a block's derivation, once its upstream block's result key is known."""
    if planned.base_config is None:
        raise InternalError(f"block {planned.block_id} is not executable: it has no config")
    return Config({**planned.base_config, "upstream": upstream_key})


def derivation_ref(config: Config) -> DRef:
    """The dref of a block's config."""
    return make_dref(config.hash_part, config.name)


def default_block_id(session: str, position: int) -> str:
    """`b3` in the main session, `<session>-3` in others: counting within the session keeps
    ids (and so the keys of other sessions' blocks) stable when a block is inserted elsewhere."""
    return f"b{position}" if session == "main" else f"{session}-{position}"


def _kernel(
    language: str,
    name: str | None,
    location: Location,
    known: dict[tuple[str, str | None], KernelChoice],
) -> KernelChoice:
    """The kernel for a block, looked up once per language and name (kernelspecs are files)."""
    if (language, name) not in known:
        try:
            known[language, name] = resolve_kernel(language, name)
        except KernelNotFound as err:
            raise KernelNotFound(err.message, location) from None
    return known[language, name]


def plan_document(document: Document, base_dir: Path, settings: Settings | None = None) -> Plan:
    """Read every block by its format's rules, validate the options of those that run, and
    compute each executable block's config."""
    reading = read_cells(document, base_dir, settings or Settings())
    defaults = document_defaults(document, reading.defaults, reading.defaults_line)
    planned: list[PlannedBlock] = []
    last_of_session: dict[SessionKey, int] = {}
    counters: dict[str, int] = {}
    seen_ids: dict[str, int] = {}
    kernels: dict[tuple[str, str | None], KernelChoice] = {}
    for block, cell in zip(document.blocks, reading.cells, strict=True):
        if cell is None:
            # Text: its info string is never read.
            planned.append(PlannedBlock(block, defaults, "", None, None, None, None))
            continue
        explicit_id = dict(cell.options).get("id")
        # A block without `id=` is named (b3) only once planned: its line names it here.
        block_location = Location(document.path, block.line_number, explicit_id)
        options = cell_options(cell, block_location, defaults)
        session_name = options.session
        counters[session_name] = counters.get(session_name, 0) + 1
        block_id = options.id or default_block_id(session_name, counters[session_name])
        location = Location(document.path, block.start_line + 1, block_id)
        if block_id in seen_ids:
            # Two blocks with one id would share a region and a cache entry.
            raise ParseError(
                f"id `{block_id}` is already used by the block at line {seen_ids[block_id]};"
                " give each block its own id (blocks without one are named b1, b2... in the"
                " main session, NAME-1, NAME-2... in session NAME)",
                location,
            )
        seen_ids[block_id] = block.start_line + 1
        if not options.eval:
            planned.append(PlannedBlock(block, options, block_id, None, None, None, None, cell))
            continue
        kernel = _kernel(cell.language, options.kernel, location, kernels)
        session = SessionKey(session_name, kernel.name)
        upstream_index = last_of_session.get(session)
        inputs = input_hashes(options.inputs, base_dir, location)
        config = base_config(
            block_id, block=block, cell=cell, options=options, kernel=kernel, inputs=inputs
        )
        planned.append(
            PlannedBlock(block, options, block_id, kernel, session, config, upstream_index, cell)
        )
        last_of_session[session] = len(planned) - 1
    settings = settings or Settings()
    return Plan(
        document, tuple(planned), base_dir, reading.format, reading.notes, settings, reading.sources
    )
