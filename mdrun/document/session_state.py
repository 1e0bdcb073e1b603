"""What mdrun knows, without asking a kernel, of the state a session's blocks leave.

Each block's state record (`kernel_state.capture`) lists the variables it changed with their
digests and which hold plain data (`kernel_touched.plain_kind`). Following the records of the
blocks evaluated so far, cached or run, gives each variable's digest before the next block; a
pure block (`pure_blocks`) is keyed by the digests of the names it mentions (`read_key`), so the
blocks after an edit that read nothing it changed stay cached. The same digests give the digest
of the whole state (`state_digest`, as the kernel computes it), which keys the block after a
pure one (`block_keys.produced_key`) and tells whether a snapshot stored with a pure block's
result holds this run's state: a pure block's result is shared by runs whose other variables
differ.

A pure block found in the store gives only the names it mentions: a session function that uses
one of them is digested again by the kernel, with that value, and keeps its earlier digest here.
The digest followed is then not the kernel's, but it still fixes the state (the function's code
and every variable's value are in it): such a state's snapshot is not loaded, and the block
after it is looked up under another key than in a run that executed the pure block.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Mapping
from typing import Any

from mdrun.core.hashing import canonical_json, sha256_hex
from mdrun.document.kernel_modules import PURE_GUARD
from mdrun.document.kernel_state import aliases_text, group_names
from mdrun.document.pure_blocks import PureBlock

READ_KEY_PREFIX = "reads:"
"""How a pure block's upstream key starts (an upstream block's result key is a bare digest)."""


class SessionState:
    """Each variable's digest (None: it cannot be digested) and plain-data kind, as the state
    records of the blocks evaluated so far say."""

    def __init__(self) -> None:
        self.digests: dict[str, str | None] = {}
        """Every variable's digest, and the state held outside variables (`<cwd>`, ...)."""
        self.kinds: dict[str, str] = {}
        """The variables holding plain data: "immutable" or "mutable"."""
        self.outside: dict[str, str | None] = {}
        """The entries of `digests` that are not variables (their names are not identifiers)."""
        self.aliases: list[list[str]] | None = []
        """The variables that share a mutable object, in groups, each with where they share
        it (`kernel_touched.ReachIndex.aliases`); None: not known."""

    def read_key(self, block: PureBlock) -> str | None:
        """The key of a pure block in this state: the digests of the names it mentions and of
        the state outside variables; None when its code could run something the key does not
        hold (a name it reads holds something else than plain data, a builtin it calls is
        shadowed, a list it extends in place may be shared)."""
        digests = self.digests
        reads: dict[str, Any] = {}
        for name in sorted(block.names):
            if name in digests:
                if digests[name] is None or name not in self.kinds:
                    return None
                reads[name] = digests[name]
            else:
                reads[name] = None
        if any(name in digests for name in block.called):
            return None
        if any(self.kinds.get(name) == "mutable" for name in block.extended):
            return None
        if PURE_GUARD in self.outside or any(digest is None for digest in self.outside.values()):
            return None  # the kernel says more than values may matter (`pure_guard`)
        if self.aliases is None:
            return None
        key: dict[str, Any] = {"reads": reads, "outside": dict(self.outside)}
        among = [group for group in self.aliases if block.names.issuperset(group_names(group))]
        if among:
            key["aliases"] = among
        read = canonical_json(key)
        return READ_KEY_PREFIX + sha256_hex(read)

    def apply(self, record: Mapping[str, Any], only: frozenset[str] | None = None) -> bool:
        """Follow a block's state record; False when it cannot be followed (it predates the
        records' digests, or is damaged): the state is then unknown. `only`: the names a pure
        block mentions, the only ones it can have changed (its record may come from a run
        whose other variables differed)."""
        digests, kinds = record.get("digests"), record.get("kinds")
        removed, since = record.get("removed"), record.get("since")
        aliases = record.get("aliases", [])
        if not isinstance(digests, dict) or not isinstance(kinds, dict):
            return False
        if not isinstance(removed, list) or not _are_groups(aliases):
            return False
        if only is None:
            self.aliases = aliases
        else:
            self.aliases = self._aliases_after(only, aliases)
        if since == "nothing":
            if only is None:
                self.digests.clear()
                self.kinds.clear()
                self.outside.clear()
            else:
                removed = [name for name in only if name not in digests]
        elif since != "the block before":
            return False
        for name in removed:
            if only is None or name in only:
                self._set(name, None, None, present=False)
        for name, digest in digests.items():
            if only is None or name in only:
                kind = kinds.get(name)
                self._set(name, digest, kind if isinstance(kind, str) else None, present=True)
        return True

    def _aliases_after(
        self, only: frozenset[str], recorded: list[list[str]]
    ) -> list[list[str]] | None:
        """The aliases after a pure block that mentions `only`, its record from a run whose
        other variables may differ. Its key holds the aliases among the names it mentions
        (`read_key`), and it can reach another name's object only through those: the groups
        of those names are its record's, the others are as before. None (not known) when a
        name it mentions was, or in its record's run became, bound to the object of a name
        it does not mention."""
        if self.aliases is None:
            return None
        for groups in (self.aliases, recorded):
            for group in groups:
                if only.intersection(group) and not only.issuperset(group_names(group)):
                    return None
        kept = [group for group in self.aliases if not only.intersection(group)]
        return sorted(kept + [group for group in recorded if only.intersection(group)])

    def forget(self, names: frozenset[str]) -> None:
        """The values of `names` are no longer known (a pure block that mentions them is not
        in the store, and what it would leave is not known until it runs): no key that
        reads one of them can be made, nor the whole state's digest."""
        for name in names:
            self._set(name, None, None, present=True)
        if self.aliases is not None and any(names.intersection(group) for group in self.aliases):
            self.aliases = None

    def _set(self, name: str, digest: Any, kind: str | None, *, present: bool) -> None:
        if not present:
            self.digests.pop(name, None)
            self.kinds.pop(name, None)
            self.outside.pop(name, None)
            return
        value = digest if isinstance(digest, str) else None
        self.digests[name] = value
        if kind is None:
            self.kinds.pop(name, None)
        else:
            self.kinds[name] = kind
        if not name.isidentifier():
            self.outside[name] = value

    def digestible(self) -> bool:
        """Whether every value has a digest and the aliases are known (else `state_digest`
        is a unique one)."""
        return self.aliases is not None and all(
            digest is not None for digest in self.digests.values()
        )

    def state_digest(self) -> str:
        """The digest of the whole state, as the kernel's capture computes it; a unique one when
        a value cannot be digested (as the kernel's is then)."""
        if not self.digestible():
            return secrets.token_hex(32)
        text = json.dumps(self.digests, sort_keys=True)
        state = hashlib.sha256(text.encode())
        state.update(aliases_text(self.aliases or []))
        return state.hexdigest()


def _are_groups(aliases: Any) -> bool:
    """Whether a record's aliases are groups of names, as `kernel_touched.ReachIndex.aliases`
    lists them."""
    return isinstance(aliases, list) and all(
        isinstance(group, list) and all(isinstance(name, str) for name in group)
        for group in aliases
    )
