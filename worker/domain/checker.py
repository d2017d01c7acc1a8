"""Where a campaign file's keys are (for ``file:line`` messages), and the problems found."""

from __future__ import annotations

import re

from worker.errors import Problem


def locate_keys(text: str) -> dict[str, int]:
    """Line of each key: ``"name"``, ``"window.hours"``, ``"step.2.wait"``, ``"step.2"``."""
    lines: dict[str, int] = {}
    table, steps = "", -1
    key_re = re.compile(r'^\s*("?)([A-Za-z0-9_-]+)\1\s*=')
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if stripped.startswith("[["):
            name = stripped.strip("[] ")
            if name == "step":
                steps += 1
                table = f"step.{steps}"
            else:
                table = name
            lines.setdefault(table, number)
        elif stripped.startswith("["):
            table = stripped.strip("[] ")
            lines.setdefault(table, number)
        else:
            match = key_re.match(line)
            if match:
                lines.setdefault(f"{table}.{match.group(2)}" if table else match.group(2), number)
    return lines


class Checker:
    """Collects the problems of one file, each with the line of the key it concerns."""

    def __init__(self, file: str, lines: dict[str, int]) -> None:
        self.file, self.lines = file, lines
        self.problems: list[Problem] = []

    def add(self, key: str, message: str, file: str | None = None, line: int | None = None) -> None:
        if line is None:
            line = self.lines.get(key) or self.lines.get(key.rpartition(".")[0]) or 1
        self.problems.append(Problem(file or self.file, line, message))
