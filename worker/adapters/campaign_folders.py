"""The campaigns on disk: reads `campaigns/` and `templates/`, parses each folder, and keeps
the good ones. A broken campaign never stops the others; its problems are kept for `check`
and the worker's log.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from worker.config import Settings
from worker.domain.campaigns import Campaign, inspect_campaign
from worker.domain.catalog import Catalog
from worker.domain.render import Renderer
from worker.errors import NotFound, Problem

log = logging.getLogger(__name__)


class FolderSource:
    """A campaign folder on disk, as the domain's ``CampaignSource``."""

    def __init__(self, folder: Path, display: str) -> None:
        self.folder = folder
        self.slug = folder.name
        self.path = display

    def _inside(self, name: str) -> Path | None:
        path = (self.folder / name).resolve()
        if not path.is_relative_to(self.folder.resolve()) or not path.is_file():
            return None
        return path

    def read_text(self, name: str) -> str | None:
        path = self._inside(name)
        if path is None:
            return None
        return path.read_bytes().decode("utf-8-sig", errors="replace")

    def read_bytes(self, name: str) -> bytes | None:
        path = self._inside(name)
        return path.read_bytes() if path else None

    def list(self, subdir: str) -> list[str]:
        folder = self.folder / subdir
        return sorted(p.name for p in folder.iterdir() if p.is_file()) if folder.is_dir() else []


def read_layouts(templates_dir: Path) -> dict[str, str]:
    """Every file of ``templates/`` by name."""
    if not templates_dir.is_dir():
        return {}
    return {p.name: p.read_text(encoding="utf-8-sig") for p in sorted(templates_dir.iterdir())
            if p.is_file()}


def _display(path: Path) -> str:
    """Relative to the working directory when inside it, else absolute."""
    absolute = path.resolve()
    try:
        return str(absolute.relative_to(Path.cwd()))
    except ValueError:
        return str(absolute)


def campaign_folders(target: Path) -> list[Path]:
    """A campaign folder, or every campaign folder inside a folder of campaigns."""
    if (target / "campaign.toml").is_file():
        return [target]
    if target.is_dir():
        return sorted(p for p in target.iterdir() if p.is_dir() and (p / "campaign.toml").exists())
    return []


def resolve_targets(names: list[str], campaigns_dir: Path) -> list[Path]:
    """``CAMPAIGN`` arguments: a slug under campaigns.dir, a campaign folder, or a folder of
    campaigns; none means all. Raises NotFound naming the argument."""
    if not names:
        return campaign_folders(campaigns_dir)
    folders: list[Path] = []
    for name in names:
        path = Path(name)
        found = campaign_folders(path) if path.exists() else campaign_folders(campaigns_dir / name)
        if not found:
            raise NotFound(f"{name}: no campaign folder here (a folder with campaign.toml)")
        folders.extend(found)
    return folders


def load_catalog(campaigns_dir: Path, templates_dir: Path, folders: list[Path] | None = None,
                 mailbox_names: frozenset[str] = frozenset()) -> Catalog:
    """Parse every campaign folder. Cross-campaign references (``on_finish``) and mailbox
    names in ``sender`` are checked against what is loaded."""
    renderer = Renderer(read_layouts(templates_dir))
    catalog = Catalog(renderer=renderer, signature=disk_signature(campaigns_dir, templates_dir))
    targets = folders if folders is not None else campaign_folders(campaigns_dir)
    for folder in targets:
        source = FolderSource(folder, _display(folder))
        try:
            camp, problems = inspect_campaign(source, renderer)
        except OSError as exc:
            camp, problems = None, [Problem(source.path, 1, f"cannot read: {exc}")]
        if camp is not None:
            problems = problems + _cross_check(camp, campaigns_dir, mailbox_names)
        if problems:
            catalog.problems[source.slug] = sorted(problems)
            if camp is not None:
                catalog.partial[source.slug] = camp
        elif camp is not None:
            catalog.campaigns[source.slug] = camp
    return catalog


def _cross_check(camp: Campaign, campaigns_dir: Path,
                 mailbox_names: frozenset[str]) -> list[Problem]:
    """What one folder cannot tell alone: where ``on_finish`` points, which mailbox ``sender``
    names."""
    problems: list[Problem] = []
    known = {p.name for p in campaign_folders(campaigns_dir)} | {camp.slug}
    if camp.on_finish and camp.on_finish not in known:
        problems.append(Problem(camp.file, camp.lines.get("on_finish", 1),
                                f"on_finish points to {camp.on_finish!r}, which is not a campaign"))
    for key in ("not_now_campaign", "referral_campaign"):
        target = getattr(camp, key)
        if target and target not in known:
            problems.append(Problem(camp.file, camp.lines.get(key, 1),
                                    f"{key} points to {target!r}, which is not a campaign"))
    if camp.on_finish == camp.slug:
        problems.append(Problem(camp.file, camp.lines.get("on_finish", 1),
                                "on_finish points to the campaign itself"))
    if camp.sender and "@" not in camp.sender and camp.sender not in mailbox_names:
        problems.append(Problem(camp.file, camp.lines.get("sender", 1),
                                f"sender {camp.sender!r} is neither an address nor a configured "
                                "mailbox"))
    return problems


def configured_catalog(settings: Settings) -> Catalog:
    """The campaigns the configuration names (``campaigns_dir``, ``templates_dir``, the
    mailboxes a campaign may send from), read from disk."""
    return load_catalog(settings.campaigns_dir, settings.templates_dir,
                        mailbox_names=frozenset(settings.mailboxes))


def disk_signature(campaigns_dir: Path, templates_dir: Path) -> tuple[tuple[str, float], ...]:
    """Modification times of every campaign and template file, to notice edits."""
    items: list[tuple[str, float]] = []
    for root in (campaigns_dir, templates_dir):
        if root.is_dir():
            for dirpath, _, files in os.walk(root):
                for name in files:
                    path = os.path.join(dirpath, name)
                    try:
                        items.append((path, os.stat(path).st_mtime))
                    except OSError:
                        continue
    return tuple(sorted(items))
