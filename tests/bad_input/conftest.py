"""Fixtures of the bad-input suites."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.bad_input._support import Workspace, workspace


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    """A SQLite workspace for the whole module (examples keep to addresses of their own)."""
    with workspace(tmp_path_factory.mktemp("import")) as opened:
        yield opened
