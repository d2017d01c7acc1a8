"""Issue 12, item 2: one campaign must not freeze the worker or exhaust its memory.

A template or a step's ``when`` runs under limits (integer size, string and list size, format
widths, macro depth, rendering time), each checked before the operation allocates anything.
Going past one is a `nurture check` problem with its file and line; the worker skips that
campaign (its leads wait, logged once), keeps serving HTTP, sends the other campaigns' mails
and stops promptly on SIGTERM: rendering never runs on the event loop.
"""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.bad_input._support import examples
from tests.servers._util import free_port, healthz_s
from tests.workspace import REPO, email_template, env_for, make_app, outbox, write_campaign
from worker.domain import sandbox
from worker.domain.render import Renderer
from worker.errors import LimitError

LAYOUTS = {"layout.html": "<html><body>{{ content }}</body></html>", "layout.txt": "{{ content }}"}
LEAD = {"lead": {"email": "ann@acme.test", "first_name": "Ann", "fields": {}}}
#: Each puts a width, count or precision N where the result would be N characters long.
WIDTH_PAYLOADS = [
    "{{ '%0Nd' % 1 }}", "{{ '%.Nf' % 1.5 }}", "{{ 'x'|center(N) }}", "{{ lead.email.ljust(N) }}",
    "{{ 'x'.rjust(N) }}", "{{ '1'.zfill(N) }}", "{{ '{:>N}'.format(1) }}",
    "{{ '{:.Nf}'.format(1.0) }}", "{{ '%Ns'|format('x') }}", "{{ 'a\\nb'|indent(N) }}",
    "{{ ('x\t' * 100).expandtabs(N) }}", "{{ [1]|batch(N, 0)|list }}",
    "{{ [1]|slice(N, 0)|list }}", "{{ 'x' * N }}", "{{ [0] * N }}", "{{ 'xy'.replace('x', 'z' * (N // 1000 + 1) * 1000) }}",
]
MACRO_FAN_OUT = ("{% macro f(n) %}{% if n %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}{% endmacro %}"
                 "{{ f(24) }}")  # 2**25 calls: hours of CPU without a deadline


def compile_body(body: str) -> Callable[[], object]:
    mail = Renderer(LAYOUTS).compile("c/01.md", email_template("Hi", f"Dear,\n{body}\nBye."))
    return lambda: mail.render(LEAD)


@given(payload=st.sampled_from(WIDTH_PAYLOADS),
       size=st.integers(min_value=sandbox.MAX_SIZE + 1, max_value=10**12))
@examples(60)
def test_a_huge_width_is_refused_before_it_allocates(payload: str, size: int) -> None:
    # Given a template asking for a result of `size` characters (or items)
    render = compile_body(payload.replace("N", str(size)))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # When it is rendered, Then it is refused at its line, without the memory being taken
    with pytest.raises(LimitError) as caught:
        render()
    assert caught.value.line == 5, str(caught.value)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 200_000  # KB


# A count of 0 is an error of Jinja's own for batch and slice (division by zero), not a width.
@given(payload=st.sampled_from(WIDTH_PAYLOADS[:13]), size=st.integers(min_value=1, max_value=50))
@examples(30)
def test_a_small_width_renders(payload: str, size: int) -> None:
    compile_body(payload.replace("N", str(size)))()


def test_a_render_that_runs_too_long_is_stopped_at_the_deadline() -> None:
    # Given a macro whose calls double at each of 24 levels (within the depth limit)
    render = compile_body(MACRO_FAN_OUT)
    started = time.monotonic()
    # When it is rendered, Then it is stopped at the deadline (and located once more)
    with pytest.raises(LimitError, match="took over"):
        render()
    assert time.monotonic() - started < 4 * sandbox.RENDER_TIMEOUT_S + 10


# --- `nurture check` and `nurture run` as processes ---------------------------------------------

GOOD = """
    name = "Good"
    kind = "sequence"
    sender = "Dana <dana@acme.example>"
    [[step]]
    id = "one"
    wait = "0"
    window = false
    template = "01.md"
"""
WHEN = GOOD.replace('name = "Good"', 'name = "When"') + '    when = "EXPR"\n'
WHEN_LINE = 9
WHEN_PAYLOADS = {"when-power": "7 ** 20000000 > 0", "when-repeat": "('x' * 10**9) != ''",
                 "when-lead-repeat": "(lead.email * 10**9) != ''"}


def _memory_limit() -> None:  # pragma: no cover - runs in the child
    resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))


def test_check_refuses_a_when_past_a_limit_quickly_with_its_line(tmp_path: Path) -> None:
    # Given one campaign per exhausting `when`
    env = env_for(tmp_path)
    for slug, expr in WHEN_PAYLOADS.items():
        write_campaign(tmp_path / "campaigns", slug, WHEN.replace("EXPR", expr),
                       {"01.md": email_template("Hi")})
    # When `nurture check` runs (with 2 GB of address space)
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "worker", "check"], cwd=tmp_path,
                            env={**os.environ, **env, "PYTHONPATH": str(REPO)},
                            capture_output=True, text=True, timeout=120,
                            preexec_fn=_memory_limit)
    # Then it exits 1 within seconds, naming each file and line, without a traceback
    assert time.monotonic() - started < 30, result
    assert result.returncode == 1 and "Traceback" not in result.stderr, result
    for slug in WHEN_PAYLOADS:
        assert f"campaigns/{slug}/campaign.toml:{WHEN_LINE}: " in result.stdout, result.stdout


BAD_TEMPLATES = {"slow": MACRO_FAN_OUT, "wide": "{{ '%0300000000d' % 1 }}",
                 "doubling": "{% set ns = namespace(s=lead.email) %}{% for i in range(40) %}"
                             "{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s }}"}
GRACE_S = 5.0


def _worker(tmp: Path, leads: int) -> tuple[subprocess.Popen[bytes], int]:
    """`nurture run` on SQLite with HTTP, a good campaign and the bad ones, each with
    ``leads`` leads enrolled and due."""
    port = free_port()
    options = {"HTTP__ENABLED": "true", "HTTP__PORT": str(port), "LOGGING__LEVEL": "INFO",
               "WORKER__GRACE_S": str(GRACE_S)}
    write_campaign(tmp / "campaigns", "good", GOOD, {"01.md": email_template("Hi")})
    for slug, body in BAD_TEMPLATES.items():
        write_campaign(tmp / "campaigns", slug, GOOD, {"01.md": email_template("Hi", body)})
    app = make_app(tmp, **options)
    for number in range(leads):
        lead_id = app.service.intake({"email": f"lead{number}@acme.test"}).lead_id
        for slug in ("good", *BAD_TEMPLATES):
            app.service.enroll(lead_id, slug)
    log = open(tmp / "worker.log", "ab")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen([sys.executable, "-m", "worker", "run"], cwd=tmp,
                            env={**os.environ, **env_for(tmp, **options), "PYTHONPATH": str(REPO)},
                            stdout=log, stderr=subprocess.STDOUT, preexec_fn=_memory_limit)
    return proc, port



def _wait_for(predicate: Callable[[], bool], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_one_bad_campaign_does_not_stop_http_nor_the_other_campaigns(tmp_path: Path) -> None:
    # Given a worker whose due work includes a slow, a wide and a doubling campaign
    proc, port = _worker(tmp_path, leads=3)
    log = tmp_path / "worker.log"
    try:
        assert _wait_for(lambda: b"action=http_start" in log.read_bytes()
                         or b"worker_start" in log.read_bytes(), 60), log.read_text()
        # When it works, /healthz is asked every 0.2 s until the good campaign's mails are out
        latencies: list[float] = []
        deadline = time.monotonic() + 90
        while len(outbox(tmp_path)) < 3 and time.monotonic() < deadline:
            latencies.append(healthz_s(port))
            time.sleep(0.2)
        latencies.append(healthz_s(port))
        # Then HTTP answered promptly throughout, and the good campaign's 3 mails were sent
        assert len(outbox(tmp_path)) == 3, log.read_text()[-3000:]
        assert max(latencies) < 3.0, latencies
        # And each bad campaign was skipped once, logged once, its leads waiting, nothing failed
        assert _wait_for(lambda: log.read_text().count("action=campaign_skipped") >= 3, 30)
        text = log.read_text()
        for slug in BAD_TEMPLATES:
            assert text.count(f"action=campaign_skipped campaign={slug} ") == 1, text[-3000:]
        assert "render_failed" not in text
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=GRACE_S + 30)
    app = make_app(tmp_path)
    for number in range(3):
        lead = app.db.lead_by_email(f"lead{number}@acme.test")
        assert lead is not None
        statuses = {e.campaign: e.status for e in app.db.enrollments_of(lead.id)}
        assert statuses == {"good": "completed", "slow": "active", "wide": "active",
                            "doubling": "active"}, statuses


def test_sigterm_during_a_slow_render_exits_within_the_grace_period(tmp_path: Path) -> None:
    # Given a worker rendering the slow campaign
    proc, _ = _worker(tmp_path, leads=1)
    log = tmp_path / "worker.log"
    try:
        assert _wait_for(lambda: b"worker_start" in log.read_bytes(), 60), log.read_text()
        time.sleep(1.0)
        # When SIGTERM arrives
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        # Then the worker exits within the grace period plus a few seconds (the deadline)
        code = proc.wait(timeout=GRACE_S + 4 * sandbox.RENDER_TIMEOUT_S + 30)
        assert time.monotonic() - started < GRACE_S + 4 * sandbox.RENDER_TIMEOUT_S + 5
        assert code == 0, log.read_text()[-2000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
