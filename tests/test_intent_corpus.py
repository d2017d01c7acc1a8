"""Score the intent reader on every file of ../shared/intent (issue 14 targets) and on the
authored held-out set tests/heldout_intent. Skipped when the shared corpus is absent."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT.parent / "shared" / "intent"
HELDOUT = ROOT / "tests" / "heldout_intent"


def _bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("classify_intent", ROOT / "bench" /
                                                  "classify_intent.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


@pytest.mark.skipif(not (CORPUS / "labels.csv").exists(), reason="../shared/intent is absent")
def test_shared_corpus_meets_issue_14_targets() -> None:
    s, _confusion = _bench().score(CORPUS, show=False)
    assert s.rows == 240
    assert s.intent_ok / s.rows >= 0.95
    assert s.class_ok / s.rows >= 0.99
    assert s.interested_lost / s.interested <= 0.05
    assert s.dated_ok / s.dated >= 0.90
    assert s.referral_ok / s.referral_rows >= 0.90


def test_authored_heldout_set() -> None:
    s, _confusion = _bench().score(HELDOUT, show=False)
    assert s.rows >= 60
    assert s.intent_ok / s.rows >= 0.90
    assert s.class_ok / s.rows >= 0.95
    assert s.interested_lost / s.interested <= 0.05
    assert s.dated_ok / s.dated >= 0.90
    assert s.referral_ok / s.referral_rows >= 0.90
