"""Reply-to-stop latency: from a reply landing in the IMAP mailbox (Dovecot, IDLE) to the
lead's enrolment being `replied`.

    python bench/reply_latency.py [--replies 60] [--interval 0.3]

Starts its own Dovecot and SMTP server on loopback, runs the worker in this process, sends
step one to N leads, then appends one reply every ``interval`` seconds and times each from
its APPEND to the status change recorded by the worker. Prints p50, p95, p99 and max. A
baseline in the same run: the bare IDLE notification delay of the same Dovecot (an
imapclient IDLE session timing APPEND -> EXISTS), so the ratio shows what Nurture adds.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import select

from tests.servers.dovecot import Dovecot
from tests.servers.smtp import ScriptedSmtpServer
from tests.workspace import make_app, two_steps
from worker.adapters.db import models as m


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def idle_baseline(dovecot: Dovecot, count: int, interval: float) -> list[float]:
    """APPEND -> EXISTS seen by a bare IDLE client on the same server."""
    account = dovecot.add_user()
    delays: list[float] = []
    with dovecot.client(account) as watcher:
        watcher.select_folder("INBOX")
        watcher.idle()
        for n in range(count):
            start = time.monotonic()
            dovecot.append(account, "INBOX", f"Subject: b{n}\r\n\r\nx\r\n".encode())
            while True:
                if any(r[1] == b"EXISTS" for r in watcher.idle_check(timeout=5)):
                    break
            delays.append(time.monotonic() - start)
            time.sleep(interval)
        watcher.idle_done()
    return delays


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--replies", type=int, default=60)
    parser.add_argument("--interval", type=float, default=0.3)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="nurture-bench-"))
    dovecot = Dovecot().start()
    smtp = ScriptedSmtpServer().start()
    try:
        baseline = idle_baseline(dovecot, args.replies, args.interval)
        account = dovecot.add_user()
        two_steps(tmp, "latency", subject="Hi")
        app = make_app(tmp, OUTBOUND__TRANSPORT="smtp", SMTP__HOST=smtp.host,
                       SMTP__PORT=str(smtp.port), INBOUND__TRANSPORT="imap",
                       IMAP__HOST=account.host, IMAP__PORT=str(account.port),
                       IMAP__USERNAME=account.username, IMAP__PASSWORD=account.password,
                       LOGGING__LEVEL="WARNING")
        runner = app.make_runner()
        thread = threading.Thread(target=lambda: asyncio.run(runner.run()), daemon=True)
        thread.start()
        leads = [f"lead{i}@latency.test" for i in range(args.replies)]
        for address in leads:
            app.service.intake({"email": address}, campaign="latency")
        smtp.wait_for(len(leads), 60)
        sent = {msg.rcpt_tos[0]: msg.message_id for msg in smtp.messages}
        appended: dict[int, datetime] = {}
        for address in leads:
            lead = app.db.lead_by_email(address)
            assert lead is not None
            raw = (f"From: {address}\r\nTo: dana@acme.example\r\nSubject: Re: Hi\r\n"
                   f"In-Reply-To: {sent[address]}\r\nMessage-ID: <r.{address}>\r\n\r\n"
                   "Thanks, let's talk.\r\n").encode()
            appended[lead.id] = datetime.now(UTC)
            dovecot.append(account, "INBOX", raw)
            time.sleep(args.interval)
        deadline = time.monotonic() + 30
        stopped: dict[int, datetime] = {}
        while len(stopped) < len(leads) and time.monotonic() < deadline:
            with app.db.session() as s:
                stopped = dict(s.execute(select(m.StatusChange.lead_id, m.StatusChange.at)
                                         .where(m.StatusChange.new == "replied")).all())
            time.sleep(0.2)
        runner.stop()
        thread.join(30)
        delays = [(stopped[i] - appended[i]).total_seconds() for i in appended if i in stopped]
    finally:
        smtp.close()
        dovecot.close()
    print(f"replies: {len(delays)} of {len(leads)} stopped")
    for name, values in (("nurture reply->replied", delays), ("bare IDLE append->EXISTS", baseline)):
        print(f"{name:26s} p50 {statistics.median(values):.3f}s  p95 {percentile(values, 95):.3f}s"
              f"  p99 {percentile(values, 99):.3f}s  max {max(values):.3f}s")
    print(f"ratio p99 nurture/bare IDLE: {percentile(delays, 99) / percentile(baseline, 99):.2f}")
    return 0 if len(delays) == len(leads) else 1


if __name__ == "__main__":
    sys.exit(main())
