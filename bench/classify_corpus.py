"""Classify the labelled inbound corpus and print how well it went.

    python bench/classify_corpus.py [--corpus DIR | --heldout] [--show-errors] [--intents]

Without --corpus or --heldout it reports on ../shared/corpus and then on the authored
held-out set in tests/heldout.

Prints the confusion matrix (rows: label, columns: predicted), precision/recall/accuracy per
class, the bounce subclass matrix, return-date hits and parse+classify throughput.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import classify_intent
from bench.corpus import HELDOUT, Row, corpus_dir, load_rows, message_bytes
from worker.domain.classify import Classification, classify_bytes

CLASSES = ("human", "auto_reply", "bounce", "unsubscribe", "other")
BOUNCE_SUBS = ("hard", "soft", "policy")


@dataclass(frozen=True)
class Outcome:
    """One corpus row and what the classifier made of it."""

    row: Row
    result: Classification

    @property
    def predicted(self) -> str:
        return self.result.cls.value

    @property
    def class_ok(self) -> bool:
        return self.predicted == self.row.cls

    @property
    def subclass_scored(self) -> bool:
        """Bounce rows whose label names a subclass (``uncertain`` accepts any)."""
        return self.row.cls == "bounce" and self.class_ok and self.row.subclass in BOUNCE_SUBS

    @property
    def subclass_ok(self) -> bool:
        return self.result.subclass == self.row.subclass

    @property
    def date_ok(self) -> bool:
        got = self.result.return_date.isoformat() if self.result.return_date else ""
        return got == self.row.return_date


@dataclass(frozen=True)
class Run:
    """All outcomes of one pass over the corpus, and how long it took."""

    outcomes: list[Outcome]
    seconds: float

    @property
    def accuracy(self) -> float:
        return sum(o.class_ok for o in self.outcomes) / max(len(self.outcomes), 1)

    @property
    def bounce_subclass_accuracy(self) -> float:
        scored = [o for o in self.outcomes if o.subclass_scored]
        return sum(o.subclass_ok for o in scored) / max(len(scored), 1)

    @property
    def dated(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.row.return_date]

    @property
    def per_second(self) -> float:
        return len(self.outcomes) / self.seconds if self.seconds else float("inf")


def run(corpus: Path) -> Run:
    """Parse and classify every labelled file (bytes are read before the clock starts)."""
    rows = load_rows(corpus)
    data = [message_bytes(corpus, row, i) for i, row in enumerate(rows)]
    start = time.perf_counter()
    results = [classify_bytes(raw)[1] for raw in data]
    seconds = time.perf_counter() - start
    return Run([Outcome(r, c) for r, c in zip(rows, results, strict=True)], seconds)


def _matrix(title: str, pairs: list[tuple[str, str]], labels: tuple[str, ...]) -> list[str]:
    counts = Counter(pairs)
    width = max(len(x) for x in labels) + 2
    lines = [title, "label \\ predicted".ljust(20) + "".join(p.rjust(width) for p in labels)]
    for want in labels:
        cells = "".join(str(counts[(want, got)]).rjust(width) for got in labels)
        lines.append(want.ljust(20) + cells)
    return lines


def report(result: Run, show_errors: bool) -> str:
    """The printed report."""
    outs = result.outcomes
    lines = [f"{len(outs)} messages, class accuracy {result.accuracy:.2%}", ""]
    lines += _matrix("Confusion matrix (rows: label, columns: predicted)",
                     [(o.row.cls, o.predicted) for o in outs], CLASSES)
    lines += ["", "class         precision    recall  accuracy   support"]
    for cls in CLASSES:
        tp = sum(o.row.cls == cls and o.predicted == cls for o in outs)
        predicted = sum(o.predicted == cls for o in outs)
        support = sum(o.row.cls == cls for o in outs)
        tn = sum(o.row.cls != cls and o.predicted != cls for o in outs)
        precision = f"{tp / predicted:.2%}" if predicted else "-"
        recall = f"{tp / support:.2%}" if support else "-"
        accuracy = (tp + tn) / len(outs)
        lines.append(f"{cls:<12}{precision:>11}{recall:>10}{accuracy:>10.2%}{support:>10}")
    scored = [o for o in outs if o.subclass_scored]
    pairs = [(o.row.subclass, o.result.subclass or "-") for o in scored]
    lines += [""] + _matrix("Bounce subclass matrix (rows with a definite subclass label)",
                            pairs, BOUNCE_SUBS)
    lines.append(f"bounce subclass accuracy {result.bounce_subclass_accuracy:.2%} "
                 f"({sum(o.subclass_ok for o in scored)}/{len(scored)}); "
                 f"'uncertain' rows accept any: {sum(o.row.subclass == 'uncertain' for o in outs)}")
    auto = [o for o in outs if o.row.cls == "auto_reply" and o.class_ok]
    lines.append(f"auto-reply subclass {sum(o.subclass_ok for o in auto)}/{len(auto)}")
    dated = result.dated
    lines.append(f"return dates {sum(o.date_ok for o in dated)}/{len(dated)}")
    lines.append(f"throughput {result.per_second:.0f} messages/second "
                 f"({result.seconds:.2f} s parse+classify)")
    if show_errors:
        lines += ["", "Errors:"]
        for o in outs:
            wrong_sub = o.subclass_scored and not o.subclass_ok
            wrong_date = bool(o.row.return_date) and not o.date_ok
            if not o.class_ok or wrong_sub or wrong_date:
                got = f"{o.predicted}/{o.result.subclass or '-'}"
                back = f" return={o.result.return_date}" if wrong_date else ""
                lines.append(f"  {o.row.file}: label {o.row.cls}/{o.row.subclass or '-'} "
                             f"got {got}{back} ({o.result.reason[:160]})")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", help="corpus folder (default ../shared/corpus)")
    parser.add_argument("--heldout", action="store_true", help="only the held-out set")
    parser.add_argument("--show-errors", action="store_true", help="list every miss")
    parser.add_argument("--intents", action="store_true",
                        help="also the reply intents: confusion matrix on ../shared/intent and "
                             "tests/heldout_intent (bench/classify_intent.py)")
    args = parser.parse_args(argv)
    if args.heldout:
        folders = [HELDOUT]
    elif args.corpus:
        folders = [corpus_dir(args.corpus)]
    else:
        folders = [corpus_dir(None), HELDOUT]
    for corpus in folders:
        if not (corpus / "labels.csv").is_file():
            print(f"{corpus}: no labels.csv here", file=sys.stderr)
            return 1
        print(f"== {corpus}")
        print(report(run(corpus), args.show_errors))
        print()
    if args.intents:
        classify_intent.main([])
    return 0


if __name__ == "__main__":
    sys.exit(main())
