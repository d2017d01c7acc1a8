"""Score the reply-intent reader on a labelled folder (``../shared/intent`` by default, and
the authored held-out set ``tests/heldout_intent``): confusion matrix, intent accuracy, class
accuracy (human vs unsubscribe), not_now date accuracy and referral accuracy.

Usage: ``python bench/classify_intent.py [FOLDER ...]``.
"""

from __future__ import annotations

import csv
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from worker.domain.inbound_parse import parse_message
from worker.domain.intent import INTENTS, intent_of_message

ROOT = Path(__file__).resolve().parent.parent
DEFAULTS = (ROOT.parent / "shared" / "intent", ROOT / "tests" / "heldout_intent")
OURS_DOMAIN = "@acme.example"


@dataclass
class Score:
    """Figures for one labelled folder."""

    rows: int = 0
    intent_ok: int = 0
    class_ok: int = 0
    dated: int = 0
    dated_ok: int = 0
    referral_rows: int = 0
    referral_ok: int = 0
    interested: int = 0
    interested_lost: int = 0


def predict(raw: bytes) -> tuple[str, str, str, str, str]:
    """(class, subclass, resume_on, referrals, reason) for one message."""
    msg = parse_message(raw)
    ours = [a for a in msg.to_addrs if a.endswith(OURS_DOMAIN)]
    got = intent_of_message(msg, ours)
    cls = "unsubscribe" if got.stop_request else "human"
    sub = "" if cls == "unsubscribe" else got.intent
    back = got.resume_on.isoformat() if got.resume_on else ""
    return cls, sub, back, ";".join(got.referrals), got.reason


def score(folder: Path, show: bool = True) -> tuple[Score, Counter[tuple[str, str]]]:
    """Score every row of ``folder/labels.csv``; print misses when ``show``."""
    s, confusion = Score(), Counter[tuple[str, str]]()
    with (folder / "labels.csv").open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    for row in rows:
        cls, sub, back, refs, reason = predict((folder / row["file"]).read_bytes())
        want = row["subclass"] or row["class"]
        got = sub or cls
        s.rows += 1
        confusion[(want, got)] += 1
        s.intent_ok += want == got
        s.class_ok += row["class"] == cls
        if row["subclass"] == "interested":
            s.interested += 1
            s.interested_lost += got in ("not_interested", "wrong_person", "neutral")
        if row["resume_on"]:
            s.dated += 1
            s.dated_ok += back == row["resume_on"]
        if want == "referral":
            s.referral_rows += 1
            s.referral_ok += set(filter(None, refs.split(";"))) == set(
                filter(None, row["referrals"].lower().split(";")))
        wrong = want != got or (row["resume_on"] and back != row["resume_on"])
        if show and wrong:
            print(f"  MISS {row['file']}: want {want} {row['resume_on']} got {got} {back} "
                  f"({reason})")
    return s, confusion


def _pct(a: int, b: int) -> str:
    return f"{a}/{b} = {100.0 * a / b:.1f}%" if b else "n/a"


def report(folder: Path) -> None:
    """Print the confusion matrix and the figures for one folder."""
    s, confusion = score(folder)
    labels = [*INTENTS, "unsubscribe"]
    print(f"\n{folder}  ({s.rows} rows)")
    print("want \\ got".ljust(16) + " ".join(x[:8].rjust(8) for x in labels))
    for want in labels:
        print(want.ljust(16) + " ".join(str(confusion[(want, g)]).rjust(8) for g in labels))
    print(f"intent accuracy     {_pct(s.intent_ok, s.rows)}")
    print(f"class accuracy      {_pct(s.class_ok, s.rows)}")
    print(f"interested lost     {_pct(s.interested_lost, s.interested)} "
          "(as not_interested/wrong_person/neutral)")
    print(f"not_now dates right {_pct(s.dated_ok, s.dated)}")
    print(f"referrals right     {_pct(s.referral_ok, s.referral_rows)}")


def main(argv: list[str]) -> int:
    """Report on each folder given (or the defaults that exist)."""
    folders = [Path(a) for a in argv] or [d for d in DEFAULTS if (d / "labels.csv").exists()]
    for folder in folders:
        report(folder)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
