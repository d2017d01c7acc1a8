"""Peers: the same templated mails to the same SMTP sink, by Nurture and by `mailmerge`.

    python bench/peers.py                  # 2,000 mails each, one round
    python bench/peers.py --mails 500 --rounds 3

One Postfix `smtp-sink` on loopback (``tests/servers/smtpsink.py``) counts accepted messages.
Both tools read the same CSV (email, first_name, company) and render equivalent templates: a
subject and a short personalised body ("{first_name}, your free report" / "Hello
{first_name}, here is the report for {company}.").

* Nurture: the CSV is imported (`nurture leads import --campaign bench`, not timed) into a
  one-step campaign (wait "0", no send window) on SQLite; then `nurture run --once` is
  started with the SMTP transport (``smtp.connections`` as configured, 10 by default) and
  timed from its start to the sink's count reaching every mail. Its mails are what it always
  sends: multipart text + HTML in the shared layout, with List-Unsubscribe headers.
* mailmerge (PyPI, https://github.com/awdeorio/mailmerge): `mailmerge --no-dry-run
  --no-limit` with a Markdown template (so it too sends text + HTML), a CSV database and a
  `mailmerge_server.conf` pointing at the same sink without security; timed from its start to
  the sink's count reaching every mail. It opens one SMTP connection per message, in order.

Prints each tool's rate (messages/s) from its start to the last mail accepted, the rate after
its first mail (without start-up), the ratios, and the size of one message of each.
"""

from __future__ import annotations

import argparse
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

from _common import REPO, child_env, table

from tests.servers.smtpsink import SmtpSink

CAMPAIGN = """
    name = "Peer benchmark"
    kind = "sequence"
    sender = "Dana at Acme <dana@acme.example>"

    [[step]]
    id = "report"
    wait = "0"
    window = false
    template = "01-report.md"
"""
NURTURE_TEMPLATE = """
    ---
    subject: "{{ lead.first_name | default('Hi') }}, your free report"
    ---
    Hello {{ lead.first_name | default("there") }},

    here is the report for {{ lead.company | default("your team") }}.
"""
MAILMERGE_TEMPLATE = """
    TO: {{email}}
    SUBJECT: {{first_name}}, your free report
    FROM: Dana at Acme <dana@acme.example>
    CONTENT-TYPE: text/markdown

    Hello {{first_name}},

    here is the report for {{company}}.
"""
MAILMERGE_CONF = """
    [smtp_server]
    host = 127.0.0.1
    port = {port}
    ratelimit = 0
"""


@dataclass
class Run:
    tool: str
    mails: int
    seconds: float        # start to the last mail accepted
    first_s: float        # start to the first mail accepted

    @property
    def rate(self) -> float:
        return self.mails / self.seconds

    @property
    def steady_rate(self) -> float:
        """After the first mail: without process start-up and loading."""
        return (self.mails - 1) / max(self.seconds - self.first_s, 1e-9)


def wait_all(sink: SmtpSink, base: int, count: int, started: float, timeout_s: float
             ) -> tuple[float, float]:
    """(seconds to the first accepted mail, seconds to the last) since ``started``."""
    sink.wait_for(base + 1, timeout_s)
    first = time.perf_counter() - started
    sink.wait_for(base + count, timeout_s)
    return first, time.perf_counter() - started


def write_csv(path: Path, count: int) -> None:
    names = ["Ada", "Björn", "Chloé", "Dmitri", "Eve", "Fatima", "Grace", "Hiro"]
    with open(path, "w", encoding="utf-8", newline="") as handle:
        handle.write("email,first_name,company\n")
        for i in range(count):
            handle.write(f"lead{i}@peers.test,{names[i % len(names)]},Company {i % 97}\n")


def nurture_env(root: Path, sink: SmtpSink) -> dict[str, str]:
    return child_env(
        NURTURE_CONFIG=str(REPO / "config" / "nurture.toml"),
        NURTURE_DATABASE__URL=f"sqlite:///{root}/var/nurture.db",
        NURTURE_CAMPAIGNS__DIR=str(root / "campaigns"),
        NURTURE_TEMPLATES__DIR=str(root / "templates"),
        NURTURE_OUTBOUND__TRANSPORT="smtp", NURTURE_SMTP__HOST=sink.host,
        NURTURE_SMTP__PORT=str(sink.port), NURTURE_INBOUND__TRANSPORT="maildir",
        NURTURE_INBOUND__MAILDIR=str(root / "var" / "inbox"), NURTURE_HTTP__ENABLED="false",
        NURTURE_LOGGING__LEVEL="WARNING", NURTURE_SECRET_KEY=secrets.token_urlsafe(32))


def nurture(cmd: list[str], root: Path, env: dict[str, str], **kwargs: object
            ) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "worker", *cmd], cwd=root, env=env,
                            **kwargs)  # type: ignore[call-overload]


def run_nurture(sink: SmtpSink, csv_path: Path, count: int, timeout_s: float) -> Run:
    root = Path(tempfile.mkdtemp(prefix="nurture-peers-"))
    try:
        folder = root / "campaigns" / "bench"
        folder.mkdir(parents=True)
        (folder / "campaign.toml").write_text(textwrap.dedent(CAMPAIGN).lstrip())
        (folder / "01-report.md").write_text(textwrap.dedent(NURTURE_TEMPLATE).lstrip())
        shutil.copytree(REPO / "templates", root / "templates")
        env = nurture_env(root, sink)
        for cmd in (["init"], ["leads", "import", str(csv_path), "--campaign", "bench"]):
            done = nurture(cmd, root, env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            out, _ = done.communicate(timeout=600)
            if done.returncode != 0:
                raise RuntimeError(f"nurture {' '.join(cmd)} failed:\n{out.decode()[-2000:]}")
        base = sink.count
        started = time.perf_counter()
        worker = nurture(["run", "--once"], root, env, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE)
        first, seconds = wait_all(sink, base, count, started, timeout_s)
        _, err = worker.communicate(timeout=60)
        if worker.returncode != 0:
            raise RuntimeError(f"nurture run --once failed:\n{err.decode()[-2000:]}")
        return Run("nurture", count, seconds, first)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def mailmerge_files(root: Path, sink: SmtpSink) -> list[str]:
    (root / "mailmerge_template.txt").write_text(textwrap.dedent(MAILMERGE_TEMPLATE).lstrip())
    (root / "mailmerge_server.conf").write_text(
        textwrap.dedent(MAILMERGE_CONF).lstrip().format(port=sink.port))
    return ["--template", str(root / "mailmerge_template.txt"), "--config",
            str(root / "mailmerge_server.conf")]


def run_mailmerge(sink: SmtpSink, csv_path: Path, count: int, timeout_s: float) -> Run:
    root = Path(tempfile.mkdtemp(prefix="mailmerge-peers-"))
    try:
        args = mailmerge_files(root, sink)
        exe = shutil.which("mailmerge")
        cmd = [exe] if exe else [sys.executable, "-m", "mailmerge"]
        base = sink.count
        started = time.perf_counter()
        proc = subprocess.Popen([*cmd, *args, "--database", str(csv_path), "--no-dry-run",
                                 "--no-limit", "--output-format", "raw"], cwd=root,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        first, seconds = wait_all(sink, base, count, started, timeout_s)
        _, err = proc.communicate(timeout=60)
        if proc.returncode != 0:
            raise RuntimeError(f"mailmerge failed:\n{err.decode()[-2000:]}")
        return Run("mailmerge", count, seconds, first)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def message_sizes(sink: SmtpSink, csv_path: Path) -> dict[str, int]:
    """Bytes of the first message of each tool, as it would be sent."""
    root = Path(tempfile.mkdtemp(prefix="peers-sizes-"))
    try:
        sizes = {}
        exe = shutil.which("mailmerge")
        cmd = [exe] if exe else [sys.executable, "-m", "mailmerge"]
        dry = subprocess.run([*cmd, *mailmerge_files(root, sink), "--database", str(csv_path),
                              "--dry-run", "--limit", "1", "--output-format", "raw"], cwd=root,
                             capture_output=True, check=True)
        text = dry.stdout.decode().split(">>> message 1\n", 1)[1].split(">>> message 1 sent")[0]
        sizes["mailmerge"] = len(text.encode())
        folder = root / "campaigns" / "bench"
        folder.mkdir(parents=True)
        (folder / "campaign.toml").write_text(textwrap.dedent(CAMPAIGN).lstrip())
        (folder / "01-report.md").write_text(textwrap.dedent(NURTURE_TEMPLATE).lstrip())
        shutil.copytree(REPO / "templates", root / "templates")
        env = nurture_env(root, sink)
        subprocess.run([sys.executable, "-m", "worker", "preview", "bench", "report", "--out",
                        str(root / "out")], cwd=root, env=env, capture_output=True, check=True)
        sizes["nurture"] = next((root / "out").glob("*.eml")).stat().st_size
        return sizes
    finally:
        shutil.rmtree(root, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mails", type=int, default=2000, help="mails per tool per round")
    parser.add_argument("--rounds", type=int, default=1, help="rounds (medians are shown)")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per run")
    args = parser.parse_args()
    runs: list[Run] = []
    with SmtpSink() as sink, tempfile.TemporaryDirectory() as tmp:
        csv_path = Path(tmp) / "leads.csv"
        write_csv(csv_path, args.mails)
        for n in range(args.rounds):
            for tool in (run_nurture, run_mailmerge) if n % 2 == 0 else (run_mailmerge,
                                                                          run_nurture):
                run = tool(sink, csv_path, args.mails, args.timeout)
                runs.append(run)
                print(f"round {n + 1}: {run.tool}: {run.mails:,} mails in {run.seconds:.2f} s "
                      f"({run.rate:.1f}/s)", file=sys.stderr, flush=True)
        sizes = message_sizes(sink, csv_path)
    tools = ("nurture", "mailmerge")

    def median(tool: str, value: str) -> float:
        return statistics.median(getattr(r, value) for r in runs if r.tool == tool)

    print(table(["tool", "mails", "s to first accepted", "s to all accepted", "messages/s",
                 "messages/s after the first", "bytes per message"],
                [(tool, args.mails, median(tool, "first_s"), median(tool, "seconds"),
                  median(tool, "rate"), median(tool, "steady_rate"), sizes[tool])
                 for tool in tools]))
    whole = median("nurture", "rate") / median("mailmerge", "rate")
    steady = median("nurture", "steady_rate") / median("mailmerge", "steady_rate")
    print(f"\nratio nurture / mailmerge: {whole:.1f}x from start to all accepted, "
          f"{steady:.1f}x after the first mail (median of {args.rounds} round(s), same sink, "
          "same CSV)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
