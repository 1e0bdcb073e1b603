"""The files a block's realization holds besides `outputs.json` (`plan.OUTPUTS_FILE`).

Named in a module that imports nothing, so that code which must stay light (opening a remote
cache before an up-to-date document is reported) names them without loading the parser.
"""

from __future__ import annotations

EXECUTION_FILE = "_execution.json"
"""How long the block took to execute (seconds)."""
STATE_FILE = "_state.json"
"""The state record a block's capture writes: its digest, what changed, what cannot be saved."""
SNAPSHOT_FILE = "_snapshot.pickle"
"""The snapshot of the session state after a block, where one was worth taking."""
