"""mdrun.core: the store. `from mdrun.core import *` gives the seeds' API (Pylightnix names).

Each module holds one concept and lists its public names in `__all__`; this package re-exports
them. Nothing here knows Markdown.
"""

from mdrun.core.archive import *
from mdrun.core.autostage import *
from mdrun.core.build import *
from mdrun.core.config import SELFREF, Config, RefPath, is_refpath, is_selfpath, mkconfig
from mdrun.core.fetch import *
from mdrun.core.files import *
from mdrun.core.gc import *
from mdrun.core.lens import *
from mdrun.core.matchers import (
    match_all,
    match_best,
    match_exact,
    match_latest,
    match_only,
    match_some,
)
from mdrun.core.realize import (
    DryRun,
    RealizeResult,
    dry_run,
    realize,
    realize1,
    realize_all,
    realize_closure,
    realize_derivation,
    realizeMany,
)
from mdrun.core.refs import DRef, HashPart, Name, RRef, is_dref, is_rref, rref_to_dref
from mdrun.core.registry import (
    Closure,
    Derivation,
    Manager,
    Matcher,
    Realizer,
    Registry,
    current_registry,
    instantiate,
    mkdrv,
)
from mdrun.core.stages import *
from mdrun.core.store import Context, Store, current_storage, default_store, fsinit
from mdrun.errors import BuildError, PromiseError

selfref = SELFREF
"""The seeds' name of the promise-path head."""
promise = SELFREF
"""The manual's older name of the same marker."""
rref2dref = rref_to_dref
PromiseException = PromiseError
