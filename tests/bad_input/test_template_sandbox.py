"""Template sandbox escapes: known Jinja server-side template injection payloads in campaign
templates (and in a step's ``when``).

* ``nurture check`` reports each as ``path:line: message`` (the payload's own line) and exits 1;
* the worker loads such a campaign, and at send time records the step ``failed`` with the
  reason, sends nothing and carries on (a payload that goes past a size limit makes the worker
  skip its campaign instead: its leads wait);
* nothing is executed: every payload that would run code tries to create a canary file, and
  the file never appears.

Payloads that would exhaust CPU or memory instead (nested ranges, huge repetitions, padding
widths, doubling in a loop, recursive macros) are refused before they allocate: `nurture check`
runs on each in a child process with a time and memory limit, beside a control campaign that
must pass within the same limit.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import select

from tests.bad_input._support import Workspace, run_cli, workspace
from tests.workspace import REPO, email_template, outbox, run_once, write_campaign
from worker.adapters.db import models as m

CANARY = "SANDBOX-CANARY"
TOUCH = f"touch {CANARY}"
PAYLOADS = [p.replace("CANARY", CANARY).replace("CMD", TOUCH) for p in [
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ cycler.__init__.__globals__.os.system('CMD') }}",
    "{{ lipsum.__globals__['os'].system('CMD') }}",
    "{{ joiner.__init__.__globals__.os.popen('CMD').read() }}",
    "{{ config }}",
    "{{ config.__class__.__init__.__globals__['os'].system('CMD') }}",
    "{{ self._TemplateReference__context }}",
    "{{ self.__init__.__globals__.__builtins__.open('CANARY', 'w') }}",
    "{{ request }}",
    "{{ request.application.__globals__.__builtins__.__import__('os').system('CMD') }}",
    "{{ lead|attr('__class__')|attr('__mro__') }}",
    "{{ ''|attr('\\x5f\\x5fclass\\x5f\\x5f') }}",
    "{{ lead['__class__'] }}",
    "{% set x = ''.__class__.__mro__[1].__subclasses__() %}{{ x }}",
    "{% set ns = namespace(v=lead) %}{{ ns.v.__class__ }}",
    "{% set f = range.__globals__ %}{{ f['os'].system('CMD') }}",
    "{{ '%s'|format(''.__class__.__mro__) }}",
    "{{ '{0.__class__.__mro__}'.format(lead) }}",
    "{{ '{0.__globals__[os]}'.format(range) }}",
    "{{ '{0.__init__.__globals__}'.format(dict) }}",
    "{{ dict.__base__.__subclasses__() }}",
    "{{ namespace.__init__.__globals__ }}",
    "{{ lead.fields.__class__.__base__ }}",
    "{{ lead.update({'email': 'someone@else.test'}) }}",
    "{{ lead.fields.clear() }}",
    "{% set _ = lead.__setitem__('email', 'x@y.test') %}{{ lead.email }}",
    "{{ unsubscribe_url.__class__ }}",
    "{{ lead.email.__len__() }}",
    "{% import 'os' as os %}{{ os.system('CMD') }}",
    "{% include '/etc/passwd' %}",
    "{% from '/etc/hostname' import x %}{{ x }}",
    "{{ range(10**9)|list }}",
    "{{ range(10**9)|length }}",
    "{% for c in [].__class__.__base__.__subclasses__() %}{{ c }}{% endfor %}",
]]
#: Payloads refused by a size limit: the worker skips their campaign (its leads wait).
LIMITED = {"{{ range(10**9)|list }}", "{{ range(10**9)|length }}"}
#: Each would exhaust CPU or memory without the sandbox's limits, in `check` and at send time
#: (those marked "load" already while the worker loads its campaigns).
EXHAUSTING = {
    "nested-range": "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}"
                    "{% endfor %}",
    "load-str-repeat": "{{ 'x' * 10**8 }}",
    "load-list-repeat": "{{ [1] * 10**9 }}",
    "render-repeat": "{{ lead.email * 100000000 }}",
    "render-concat-repeat": "{{ (lead.email ~ lead.email) * 99999999 }}",
    # issue 12: each got past the limits of the time (a MemoryError traceback, 3.3 GB, 60 s)
    "percent-width": "{{ '%0300000000d' % 1 }}",
    "center-filter": "{{ 'x'|center(300000000) }}",
    "ljust": "{{ lead.email.ljust(300000000) }}",
    "rjust": "{{ 'x'.rjust(300000000) }}",
    "zfill": "{{ '1'.zfill(300000000) }}",
    "format-width": "{{ '{:>300000000}'.format(1) }}",
    "format-filter": "{{ '%.300000000f'|format(1.0) }}",
    "power": "{{ 7 ** 20000000 }}",
    "namespace-doubling": "{% set ns = namespace(s='x') %}{% for i in range(40) %}"
                          "{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s|length }}",
    "namespace-plus": "{% set ns = namespace(s='x') %}{% for i in range(40) %}"
                      "{% set ns.s = ns.s + ns.s %}{% endfor %}{{ ns.s|length }}",
    "recursive-macro": "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}",
    "join-big-separator": "{{ range(1000)|join('x' * 100000) }}",
    "replace-growth": "{{ ('x' * 100000).replace('x', 'yyyyyyyyyyyyyyyyyyyy') }}",
}
CONTROL = "{{ lead.first_name | default('there') }} {% for i in range(3) %}{{ i }}{% endfor %}"
CAMPAIGN = """
    name = "Payload"
    kind = "sequence"
    sender = "Dana <dana@acme.example>"
    [[step]]
    id = "one"
    wait = "0"
    window = false
    template = "01.md"
"""
WHEN = """
    name = "Payload in when"
    kind = "sequence"
    sender = "Dana <dana@acme.example>"
    [[step]]
    id = "one"
    wait = "0"
    window = false
    template = "01.md"
    when = "cycler.__init__.__globals__.os.system('CMD') or lipsum.__globals__.os.system('CMD')"
""".replace("CMD", TOUCH)
LINE = 5  # ---, subject, ---, "Dear reader,", the payload


def template(payload: str) -> str:
    return email_template("Hello", f"Dear reader,\n{payload}\nBye.")


@dataclass
class Payloads:
    ws: Workspace
    slugs: dict[str, str]  # slug -> payload


@pytest.fixture(scope="module")
def payloads(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Payloads]:
    tmp = tmp_path_factory.mktemp("sandbox")
    with workspace(tmp) as ws:
        slugs = {}
        for number, payload in enumerate(PAYLOADS):
            slug = f"p{number:02d}"
            write_campaign(tmp / "campaigns", slug, CAMPAIGN, {"01.md": template(payload)})
            slugs[slug] = payload
        write_campaign(tmp / "campaigns", "when", WHEN, {"01.md": template("Hi.")})
        yield Payloads(ws, slugs)


def canary_absent(ws: Workspace) -> bool:
    return not any(ws.tmp.rglob(CANARY)) and not Path(CANARY).exists()


def test_check_reports_every_payload_at_its_line(payloads: Payloads) -> None:
    # Given one campaign per payload
    # When the marketer runs `nurture check`
    result = run_cli("check")
    # Then each payload is a problem named by its file and line, and nothing ran
    assert result.code == 1 and "Traceback" not in result.err
    for slug, payload in payloads.slugs.items():
        where = f"campaigns/{slug}/01.md:{LINE}: "
        assert any(line.startswith(where) for line in result.lines), (payload, result.out)
    assert canary_absent(payloads.ws)


def test_the_worker_records_the_step_failed_and_sends_nothing(payloads: Payloads) -> None:
    # Given a lead enrolled in every payload campaign, and in one whose `when` is a payload
    app = payloads.ws.app
    app.service.intake({"email": "victim@acme.test", "first_name": "Vic"})
    lead = app.db.lead_by_email("victim@acme.test")
    assert lead is not None
    for slug in [*payloads.slugs, "when"]:
        app.service.enroll(lead.id, slug)
    # When the worker makes a pass
    assert run_once(app) == 0
    # Then every payload step is failed with the reason, the `when` step skipped, nothing
    # sent; a payload that goes past a size limit skips its campaign instead: the lead waits
    with app.db.session() as s:
        touches = {t.campaign: t for t in s.scalars(select(m.Touch))}
    statuses = {e.campaign: e.status for e in app.db.enrollments_of(lead.id)}
    for slug, payload in payloads.slugs.items():
        if payload in LIMITED:
            assert slug not in touches and statuses[slug] == "active", (payload, statuses[slug])
            assert slug in app.catalog.problems, payload
            continue
        touch = touches[slug]
        assert touch.state == "failed", (payload, touch.state)
        assert touch.note and touch.note.startswith("cannot render: ") and \
            f"01.md:{LINE}:" in touch.note, (payload, touch.note)
        assert statuses[slug] == "failed", payload
    assert touches["when"].state == "skipped"
    assert outbox(payloads.ws.tmp) == []
    assert canary_absent(payloads.ws)


# --- exhaustion: a child process per payload, with limits ---------------------------------------

# The limit that counts is each child's own CPU time (the kernel stops a child past it, so the
# load of a shared machine cannot fail the test); the wall-clock limit is only a safety net.
CPU_LIMIT_S = 30
TIME_LIMIT_S = 600.0  # for all children together
MEMORY_LIMIT = 2 << 30


def _limits() -> None:  # pragma: no cover - runs in the child
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))
    resource.setrlimit(resource.RLIMIT_CPU, (CPU_LIMIT_S, CPU_LIMIT_S))


def _limits_and_low_priority() -> None:  # pragma: no cover - runs in the child
    _limits()
    os.nice(19)  # the control and the rest of the suite keep the CPU


@dataclass
class Children:
    procs: dict[str, subprocess.Popen[str]]
    started_at: float


@pytest.fixture(scope="module", autouse=True)
def exhausting_checks(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Children]:
    """Start `nurture check` on each exhausting payload, and on a control, when the module
    starts, so they run beside the other tests."""
    root = tmp_path_factory.mktemp("exhaust")
    (root / "templates").symlink_to(REPO / "templates")
    env = {k: v for k, v in os.environ.items() if not k.startswith("NURTURE_")}
    env.update(NURTURE_CONFIG=str(REPO / "config" / "nurture.toml"), PYTHONPATH=str(REPO),
               NURTURE_TEMPLATES__DIR=str(root / "templates"))
    children = Children({}, time.monotonic())
    for name, payload in {**EXHAUSTING, "control": CONTROL}.items():
        write_campaign(root / name, "c", CAMPAIGN, {"01.md": template(payload)})
        children.procs[name] = subprocess.Popen(
            [sys.executable, "-m", "worker", "check"], cwd=root / name,
            env={**env, "NURTURE_CAMPAIGNS__DIR": str(root / name)}, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True,
            preexec_fn=_limits if name == "control" else _limits_and_low_priority)
    try:
        yield children
    finally:
        for proc in children.procs.values():
            if proc.poll() is None:
                proc.kill()
            proc.communicate()


@pytest.fixture(scope="module")
def exhaustion(exhausting_checks: Children) -> dict[str, tuple[int | None, str]]:
    """Each child's exit code (None: killed at the time limit) and output."""
    deadline = exhausting_checks.started_at + TIME_LIMIT_S
    results: dict[str, tuple[int | None, str]] = {}
    for name, proc in exhausting_checks.procs.items():
        try:
            out, _ = proc.communicate(timeout=max(deadline - time.monotonic(), 0.1))
            results[name] = (proc.returncode, out)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
            results[name] = (None, out)
    return results


def test_the_control_campaign_is_checked_within_the_limits(
        exhaustion: dict[str, tuple[int | None, str]]) -> None:
    code, out = exhaustion["control"]
    assert code == 0, out


@pytest.mark.parametrize("name", sorted(EXHAUSTING))
def test_an_exhausting_template_is_refused_by_check_within_limits(
        exhaustion: dict[str, tuple[int | None, str]], name: str) -> None:
    code, out = exhaustion[name]
    assert code == 1 and f"c/01.md:{LINE}: " in out, (code, out[-500:])
