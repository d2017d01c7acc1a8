from __future__ import annotations

import sys
from pathlib import Path

# The repository root, so that `worker` and `tests.servers` import without an install.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

pytest_plugins = ["tests.servers.fixtures", "tests.scenario"]
