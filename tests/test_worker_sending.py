"""The sending engine under a slow or throttling server, as `nurture run` (a subprocess): the
loop is idle while mail waits on SMTP, one throttling episode slows a mailbox down once, and a
deferred mail is not counted as sent."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.servers.smtp import ScriptedSmtpServer
from tests.test_processes import enrol_many, spawn, wait_until, workspace

CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_s(pid: int) -> float:
    """CPU seconds (user + system) a process has used so far, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def stop(proc: subprocess.Popen[bytes], log: Path) -> str:
    assert proc.poll() is None, log.read_text()[-3000:]
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(60) == 0
    return log.read_text()


def test_a_worker_waiting_on_a_slow_server_is_idle(tmp_path: Path,
                                                   smtp_server: ScriptedSmtpServer) -> None:
    # Given due mails and a server that takes 8 s to answer each DATA
    app, env = workspace(tmp_path, smtp_server, SMTP__CONNECTIONS="2", SMTP__TIMEOUT_S="30",
                         WORKER__RENDER_PROCESS="false")
    enrol_many(app, 20)
    smtp_server.stall(8.0, n=20)
    proc = spawn(env, tmp_path)
    log = tmp_path / "worker.log"
    try:
        # When the worker has handed its first mails over and waits for the answers
        wait_until(lambda: b"action=worker_start" in log.read_bytes(), 30, "worker start")
        wait_until(lambda: smtp_server.connections >= 3, 30, "the channels connected")
        time.sleep(1.0)
        before, started = cpu_s(proc.pid), time.monotonic()
        time.sleep(4.0)
        used = (cpu_s(proc.pid) - before) / (time.monotonic() - started)
        text = stop(proc, log)
    finally:
        if proc.poll() is None:
            proc.kill()
    # Then it is idle: no loop spinning on its own in-flight enrolments
    print(f"\nCPU while waiting on SMTP: {used:.3f} CPU-s/s")
    assert used < 0.15, (used, text[-2000:])
    assert smtp_server.messages == [] or len(smtp_server.messages) <= 4
