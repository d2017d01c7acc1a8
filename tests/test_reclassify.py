"""`nurture inbox reclassify` on the embedded default (Maildir, SQLite): a reply classed
`unsubscribe` corrected to `human/interested` lifts the suppression, restores the enrolment
before the human action ends it as `replied`, writes the interested task, and `lead show`
shows the correction (issue 14)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from email import message_from_bytes
from pathlib import Path

import pytest
from sqlalchemy import select

from tests.migrationkit import downgrade, schema_diff
from tests.test_intent_e2e import CORPUS, drop_reply, workspace
from tests.workspace import REPO, env_for, outbox, run_once
from worker.adapters.db import models as m

GLORIA = "gfernandez@fernandez-dental.example"
pytestmark = pytest.mark.skipif(not CORPUS.is_dir(), reason="../shared/intent is absent")


def nurture(tmp: Path, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    """The command as a subprocess on the workspace in ``tmp``."""
    env = {**os.environ, **env_for(tmp, NOTIFY__DEFAULT_OWNER="owner@acme.example")}
    done = subprocess.run([sys.executable, "-m", "worker", "--config",
                           str(REPO / "config" / "nurture.toml"), *args], cwd=tmp,
                          capture_output=True, env=env, timeout=60, text=True)
    assert (done.returncode == 0) == ok, done.stderr[-3000:] + done.stdout[-2000:]
    return done


def test_reclassify_lifts_a_wrong_unsubscribe_and_acts_as_interested(tmp_path: Path) -> None:
    # Given a lead whose reply was read as an unsubscribe: suppressed, enrolment closed
    app = workspace(tmp_path)
    app.service.intake({"email": GLORIA, "company": "Fernandez Dental"}, campaign="sales")
    assert run_once(app) == 0
    [sent] = [message_from_bytes(raw)["Message-ID"] for raw in outbox(tmp_path)]
    drop_reply(tmp_path, "011-unsubscribe-en.eml", sent)
    assert run_once(app) == 0
    lead = app.db.lead_by_email(GLORIA)
    assert lead is not None
    assert app.db.suppression_for(GLORIA) == "unsubscribed"
    assert app.db.enrollments_of(lead.id, "sales")[0].status == "unsubscribed"
    shown = json.loads(nurture(tmp_path, "lead", "show", GLORIA, "--json").stdout)
    [mail_in] = shown["inbound"]
    assert mail_in["class"] == "unsubscribe"

    # When a person corrects it to human/interested
    out = nurture(tmp_path, "inbox", "reclassify", str(mail_in["id"]), "human/interested",
                  "--by", "dana@acme.example").stdout

    # Then the suppression is lifted, the enrolment went back to active before the reply
    # ended it as replied, and the owner has the interested task
    assert f"mail in #{mail_in['id']}: unsubscribe -> human/interested" in out
    assert app.db.suppression_for(GLORIA) is None
    [sales] = app.db.enrollments_of(lead.id, "sales")
    assert sales.status == "replied"
    with app.db.session() as s:
        changes = [(c.old, c.new) for c in s.scalars(select(m.StatusChange).where(
            m.StatusChange.enrollment_id == sales.id).order_by(m.StatusChange.id))]
        tasks = [t.task_text for t in s.scalars(select(m.Touch).where(m.Touch.kind == "task"))]
    assert changes == [(None, "active"), ("active", "unsubscribed"), ("unsubscribed", "active"),
                       ("active", "replied")]
    assert [t for t in tasks if t.endswith(": interested")] == tasks and len(tasks) == 1
    # and lead show names the correction, who and what was undone
    shown = json.loads(nurture(tmp_path, "lead", "show", GLORIA, "--json").stdout)
    [fix] = shown["reclassifications"]
    assert (fix["old"], fix["new"], fix["by"]) == ("unsubscribe", "human/interested",
                                                   "dana@acme.example")
    assert "suppression (unsubscribed) lifted" in fix["undone"]
    assert "sales unsubscribed -> active" in fix["undone"]
    assert shown["inbound"][0]["intent"] == "interested"
    text = nurture(tmp_path, "lead", "show", GLORIA).stdout
    assert "reclassified" in text and "dana@acme.example" in text

    # and the same class again is a no-op; an unknown class is refused by name
    again = nurture(tmp_path, "inbox", "reclassify", str(mail_in["id"]), "human/interested")
    assert "already human/interested: nothing to do" in again.stdout
    bad = nurture(tmp_path, "inbox", "reclassify", str(mail_in["id"]), "human/keen", ok=False)
    assert "unknown subclass 'keen' for class human" in bad.stderr
    bad = nurture(tmp_path, "inbox", "reclassify", "999999", "human", ok=False)
    assert "no inbound message #999999" in bad.stderr


def test_the_migration_matches_the_model_and_downgrades(tmp_path: Path) -> None:
    from sqlalchemy import inspect

    from worker.adapters.db.reclassifications import ReclassificationRow

    app = workspace(tmp_path)
    engine = app.db.conn.engine
    assert schema_diff(engine, ReclassificationRow.metadata, "reclassif") == []
    downgrade(engine, "0005")
    assert "reclassifications" not in inspect(engine).get_table_names()
    app.db.migrate()
    assert "reclassifications" in inspect(engine).get_table_names()
