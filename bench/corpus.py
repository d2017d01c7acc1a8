"""The labelled inbound-mail corpus, shared by ``bench/classify_corpus.py`` and the tests.

The corpus lives beside the repository (``../shared/corpus``) and is read in place: several
of its folders are under licences that must not travel with Nurture (see its README).
Body-only files (the ``reply-bodies-*`` folders) are wrapped into a reply exactly as the
corpus README describes; every other file is read as it is.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CORPUS = REPO_ROOT.parent / "shared" / "corpus"
#: Messages written for Nurture and never tuned on: the held-out check (tests/heldout/README.md).
HELDOUT = REPO_ROOT / "tests" / "heldout"

#: The step a wrapped body answers, and the addresses on both ends.
STEP_SUBJECT = "Your free report"
STEP_MESSAGE_ID = "<step-1.enrolment-42@nurture.test>"
LEAD_ADDRESS = "lead@example.com"
MAILBOX_ADDRESS = "dana@acme.example"
WRAP_DATE = datetime(2026, 3, 2, 14, 30, tzinfo=UTC)


@dataclass(frozen=True)
class Row:
    """One line of labels.csv."""

    file: str
    cls: str
    subclass: str
    rfc822: bool
    return_date: str
    uncertain: bool
    note: str


def corpus_dir(override: str | os.PathLike[str] | None = None) -> Path:
    """The corpus folder: ``override``, else ``$NURTURE_CORPUS``, else ``../shared/corpus``."""
    if override:
        return Path(override)
    env = os.environ.get("NURTURE_CORPUS")
    return Path(env) if env else DEFAULT_CORPUS


def load_rows(corpus: Path) -> list[Row]:
    """Every labelled file, in labels.csv order."""
    with open(corpus / "labels.csv", newline="", encoding="utf-8") as fh:
        return [
            # The held-out set (tests/heldout) has only file, class, subclass, return_date.
            Row(file=r["file"], cls=r["class"], subclass=r["subclass"],
                rfc822=r.get("rfc822", "yes") == "yes", return_date=r["return_date"],
                uncertain=r.get("uncertain") == "yes", note=r.get("source_note", ""))
            for r in csv.DictReader(fh)
        ]


def needs_wrapping(row: Row) -> bool:
    """Body-only reply texts get headers; the one binary Outlook file is fed as it is."""
    return not row.rfc822 and row.file.startswith("reply-bodies-")


def wrap_body(body: bytes, index: int = 0) -> bytes:
    """A body-only reply wrapped as the README says: a lead answering the first step."""
    head = (
        f"From: Lee Lead <{LEAD_ADDRESS}>\r\n"
        f"To: Dana at Acme <{MAILBOX_ADDRESS}>\r\n"
        f"Subject: Re: {STEP_SUBJECT}\r\n"
        f"Date: {format_datetime(WRAP_DATE)}\r\n"
        f"Message-ID: <reply-{index}@example.com>\r\n"
        f"In-Reply-To: {STEP_MESSAGE_ID}\r\n"
        f"References: {STEP_MESSAGE_ID}\r\n"
        "MIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        "Content-Transfer-Encoding: 8bit\r\n\r\n"
    )
    return head.encode("ascii") + body


def message_bytes(corpus: Path, row: Row, index: int = 0) -> bytes:
    """The bytes the classifier sees for ``row``."""
    data = (corpus / row.file).read_bytes()
    return wrap_body(data, index) if needs_wrapping(row) else data
