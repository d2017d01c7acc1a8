"""``nurture inbox classify FILE... [--json]``: classify saved messages, touching no mailbox.

Needs no database, secret or configuration. Prints one line per file (or one JSON object
per line with ``--json``: ``file``, ``class``, ``subclass``, ``reason``, ``return_date`` (an
out-of-office's return, a ``not_now``'s date), ``referrals`` (a referral's addresses)). A
file that cannot be read is reported on ``err`` with its name; the others are still
classified and the exit code is 1.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TextIO

from worker.domain.classify import Classification, classify_bytes


def _line(path: str, result: Classification) -> str:
    back = f" return={result.return_date.isoformat()}" if result.return_date else ""
    sub = f"/{result.subclass}" if result.subclass else ""
    return f"{path}: {result.cls.value}{sub} ({result.reason}){back}"


def _record(path: str, result: Classification) -> str:
    return json.dumps({
        "file": path,
        "class": result.cls.value,
        "subclass": result.subclass,
        "reason": result.reason,
        "return_date": result.return_date.isoformat() if result.return_date else None,
        "referrals": list(result.referrals),
    }, ensure_ascii=False)


def run_classify(paths: list[str], as_json: bool, out: TextIO, err: TextIO) -> int:
    """Classify each file and print the verdicts; 0 if all were read, 1 if any was not."""
    status = 0
    for path in paths:
        try:
            raw = Path(path).read_bytes()
        except OSError as exc:
            err.write(f"{path}: cannot read: {exc.strerror or exc}\n")
            status = 1
            continue
        _parsed, result = classify_bytes(raw)
        out.write((_record(path, result) if as_json else _line(path, result)) + "\n")
    return status
