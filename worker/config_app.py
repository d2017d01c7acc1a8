"""The workspace's settings (issue 17): ``[app]`` and ``[team]``."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class AppSettings:
    """The workspace under ``/app/`` (issue 17)."""

    enabled: bool = True
    session_days: int = 14


@dataclass(frozen=True)
class TeamSettings:
    """Who may sign in to the workspace besides the leads' owners."""

    reps: tuple[str, ...] = ()
    managers: tuple[str, ...] = ()
