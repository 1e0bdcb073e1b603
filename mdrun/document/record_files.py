"""The files a block's realization holds besides `outputs.json` (`plan.OUTPUTS_FILE`).

Named in a module that imports nothing, so that code which must stay light (opening a remote
cache before an up-to-date document is reported) names them without loading the parser.
"""

from __future__ import annotations

EXECUTION_FILE = "_execution.json"
"""How long the block took to execute (seconds)."""
STATE_FILE = "_state.json"
"""The state record a block's capture writes: its digest, what changed, what cannot be saved."""
SNAPSHOT_FILE = "_snapshot.json"
"""The index of the snapshot of the session state after a block, where one was worth taking:
its files of variables (`SNAPSHOT_FILES`), with their SHA-256 (see `kernel_snapshot`). Earlier
mdrun versions wrote one `_snapshot.pickle`: such realizations are read as having none."""
SNAPSHOT_FILES = "_snapshot.*"
"""The pattern (fnmatch) of every file of a snapshot, its index included."""
