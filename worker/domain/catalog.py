"""The campaigns as loaded: ``Catalog`` (the good ones by slug, the problems of the others)
and ``CatalogHolder`` (the current catalog, replaced on a reload). Reading them from disk is
``worker.adapters.campaign_folders``."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from worker.domain.campaigns import Campaign
from worker.domain.render import Renderer
from worker.errors import NotFound, Problem

log = logging.getLogger(__name__)


@dataclass
class Catalog:
    """Loaded campaigns by slug, plus the problems of the ones that failed."""

    campaigns: dict[str, Campaign] = field(default_factory=dict)
    problems: dict[str, list[Problem]] = field(default_factory=dict)
    partial: dict[str, Campaign] = field(default_factory=dict)  # broken, read as far as it goes
    renderer: Renderer | None = None
    signature: tuple[tuple[str, float], ...] = ()

    def get(self, slug: str) -> Campaign:
        if slug in self.campaigns:
            return self.campaigns[slug]
        if slug in self.problems:
            first = self.problems[slug][0]
            raise NotFound(f"campaign {slug!r} has problems (run `nurture check {slug}`): {first}")
        raise NotFound(f"no campaign {slug!r} (known: {', '.join(sorted(self.campaigns)) or 'none'})")

    @property
    def digest(self) -> str:
        """A short fingerprint of the files this catalog was read from."""
        return hashlib.sha256(repr(self.signature).encode()).hexdigest()[:16]

    def skip(self, slug: str, problem: Problem) -> None:
        """Stop using a loaded campaign that went past a sandbox limit at run time: its leads
        wait (as for any broken campaign) until its files change. Logged once."""
        camp = self.campaigns.pop(slug, None)
        if camp is None:
            return
        self.partial[slug] = camp
        self.problems[slug] = [problem]
        log.warning("action=campaign_skipped campaign=%s problem=%r detail=%r", slug, str(problem),
                    "its leads wait until the campaign's files change (see `nurture check`)")

    def all_problems(self) -> list[Problem]:
        return sorted(p for probs in self.problems.values() for p in probs)



class CatalogHolder:
    """The campaigns as they are now. A reload replaces them while the worker runs, so
    use-cases keep the holder's ``get`` and call it each time, never a copy."""

    def __init__(self, load: Callable[[], Catalog]) -> None:
        self._load = load
        self._current: Catalog | None = None

    def get(self) -> Catalog:
        """The current campaigns (read from disk on first use)."""
        if self._current is None:
            self._current = self._load()
        return self._current

    def replace(self, fresh: Catalog) -> None:
        """Put freshly loaded campaigns in place of the current ones."""
        self._current = fresh
