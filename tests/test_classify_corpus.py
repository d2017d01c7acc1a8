"""The classifier against the labelled corpus in ../shared/corpus (read in place, never copied).

Thresholds are the measured figures with a small margin (see bench/classify_corpus.py):
class accuracy 99.8 % measured (asserted >= 99 %; the two misses are forwards labelled
``other`` that the classifier keeps ``human`` on purpose, as a lead may forward us a mail),
bounce subclass accuracy 89.8 % measured (asserted >= 88 %: the labels come from two bounce
libraries that disagree on the same wording, e.g. "user unknown" said by Japanese carriers'
spam filters, "relay access denied", "account disabled"), and every return date.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO.parent / "shared" / "corpus"

pytestmark = pytest.mark.skipif(not (CORPUS / "labels.csv").is_file(),
                                reason=f"corpus not found at {CORPUS} (../shared/corpus)")


def _load(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def outcomes() -> list:  # type: ignore[type-arg]
    bench = _load("bench_classify_corpus", REPO / "bench" / "classify_corpus.py")
    return bench.run(CORPUS).outcomes  # type: ignore[no-any-return]


def test_every_labelled_file_is_classified(outcomes: list) -> None:  # type: ignore[type-arg]
    # Given the corpus labels
    # When every file is parsed and classified
    # Then each row got exactly one of the five classes
    assert len(outcomes) == 876
    classes = {"human", "auto_reply", "bounce", "unsubscribe", "other"}
    assert {o.predicted for o in outcomes} <= classes


def test_class_accuracy_at_least_99_percent(outcomes: list) -> None:  # type: ignore[type-arg]
    wrong = [f"{o.row.file}: {o.row.cls} -> {o.predicted} ({o.result.reason})"
             for o in outcomes if not o.class_ok]
    assert (len(outcomes) - len(wrong)) / len(outcomes) >= 0.99, "\n".join(wrong)


def test_no_human_is_taken_for_a_machine(outcomes: list) -> None:  # type: ignore[type-arg]
    # A person's reply classed as bounce or auto-reply would silently lose a lead.
    bad = [o.row.file for o in outcomes
           if o.row.cls == "human" and o.predicted in ("bounce", "auto_reply")]
    assert bad == []


def test_no_machine_is_taken_for_a_human(outcomes: list) -> None:  # type: ignore[type-arg]
    # A bounce or auto-reply classed as human would stop a sequence for nothing.
    bad = [o.row.file for o in outcomes
           if o.row.cls in ("bounce", "auto_reply") and o.predicted == "human"]
    assert bad == []


def test_bounce_subclass_accuracy(outcomes: list) -> None:  # type: ignore[type-arg]
    scored = [o for o in outcomes if o.subclass_scored]
    right = sum(o.subclass_ok for o in scored)
    assert len(scored) > 700
    assert right / len(scored) >= 0.88


def test_delay_warnings_are_never_hard(outcomes: list) -> None:  # type: ignore[type-arg]
    delays = [o for o in outcomes if o.predicted == "bounce" and "delayed" in o.result.reason]
    assert delays, "the corpus holds delay warnings"
    assert all(o.result.subclass == "soft" for o in delays)


def test_auto_reply_subclasses(outcomes: list) -> None:  # type: ignore[type-arg]
    autos = [o for o in outcomes if o.row.cls == "auto_reply"]
    assert [(o.row.file, o.result.subclass) for o in autos if not o.subclass_ok] == []


def test_return_dates(outcomes: list) -> None:  # type: ignore[type-arg]
    dated = [o for o in outcomes if o.row.return_date]
    assert len(dated) == 5
    misses = [(o.row.file, o.row.return_date, o.result.return_date) for o in dated if not o.date_ok]
    assert misses == []
