"""Plan: each executable block of a document becomes a derivation of the store.

A block's config holds everything that can change its output: its code, its language and
kernel (with the language version), the options that change what it produces, the hashes of its
input files, and the *result key* of the previous block of its session: a digest of what that
block produced (its outputs and the session state it left), not of what it was. So a block that
re-runs but produces the same thing (a comment edited) leaves the blocks after it cached: early
cutoff. The result key is known only once the upstream block is realized, so planning gives a
base config and `block_config` completes it during evaluation. Options that only change how
outputs are shown (echo, output) stay out, so toggling them re-runs nothing.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from mdrun.core.config import SELFREF, Config
from mdrun.core.hashing import file_sha256
from mdrun.core.jsonvalue import JSONObject, JSONValue
from mdrun.core.refs import DRef, make_dref
from mdrun.document.kernels import KernelChoice, resolve_kernel
from mdrun.document.options import (
    BlockOptions,
    block_options,
    document_defaults,
    is_executable_language,
)
from mdrun.document.parse import Block, Document
from mdrun.errors import KernelNotFound, Location, ParseError

OUTPUTS_FILE = "outputs.json"
"""The artifact every block realization holds: its status and nbformat outputs."""

_NAME_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")


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
    options: BlockOptions,
    kernel: KernelChoice,
    inputs: Mapping[str, JSONValue],
) -> JSONObject:
    """A block's config, but for its upstream result key (see the module docstring)."""
    name = _NAME_UNSAFE.sub("_", planned_id).strip("_") or "block"
    return {
        "name": name,
        "mdrun": "block",
        "id": planned_id,
        "code": block.code,
        "language": block.language,
        "kernel": kernel_identity(kernel),
        "allow_error": options.allow_error,
        "inputs": dict(inputs),
        "outputs": [SELFREF, OUTPUTS_FILE],
    }


def block_config(planned: PlannedBlock, upstream_key: str | None) -> Config:
    """The config of a block's derivation, once its upstream block's result key is known."""
    if planned.base_config is None:
        raise ValueError(f"block {planned.block_id} is not executable")
    return Config({**planned.base_config, "upstream": upstream_key})


def derivation_ref(config: Config) -> DRef:
    """The dref of a block's config."""
    return make_dref(config.hash_part, config.name)


def default_block_id(session: str, position: int) -> str:
    """`b3` in the main session, `<session>-3` in others: counting within the session keeps
    ids (and so the keys of other sessions' blocks) stable when a block is inserted elsewhere."""
    return f"b{position}" if session == "main" else f"{session}-{position}"


def plan_document(document: Document, base_dir: Path) -> Plan:
    """Validate every block's options and compute each executable block's config."""
    planned: list[PlannedBlock] = []
    last_of_session: dict[SessionKey, int] = {}
    counters: dict[str, int] = {}
    seen_ids: dict[str, int] = {}
    defaults = document_defaults(document)
    for block in document.blocks:
        language = is_executable_language(block.language)
        if language is None:
            # Never-run languages keep any info string: their options are not read.
            planned.append(PlannedBlock(block, defaults, "", None, None, None, None))
            continue
        options = block_options(block, document, defaults)
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
            planned.append(PlannedBlock(block, options, block_id, None, None, None, None))
            continue
        try:
            kernel = resolve_kernel(language, options.kernel)
        except KernelNotFound as err:
            raise KernelNotFound(err.message, location) from None
        session = SessionKey(session_name, kernel.name)
        upstream_index = last_of_session.get(session)
        inputs = input_hashes(options.inputs, base_dir, location)
        config = base_config(block_id, block=block, options=options, kernel=kernel, inputs=inputs)
        planned.append(
            PlannedBlock(block, options, block_id, kernel, session, config, upstream_index)
        )
        last_of_session[session] = len(planned) - 1
    return Plan(document, tuple(planned), base_dir)
