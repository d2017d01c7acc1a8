"""``python -m worker`` is the same as the ``nurture`` command."""

from __future__ import annotations

import sys

if sys.argv[1:2] == ["run"]:
    # Before any other import: a SIGTERM while the worker starts asks for a clean stop.
    from worker.engine.signals import catch_early_stop

    catch_early_stop()

from worker.cli import main

sys.exit(main())
