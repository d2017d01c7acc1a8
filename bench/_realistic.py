"""The realistic shape of `bench/send_throughput.py`: a user's campaign, started as a user
starts it. Leads come from a CSV through `nurture leads import`, the one step is about 4 KB
of Markdown with lead fields wrapped in the shipped layout, and `nurture run` is a
subprocess; the bare aiosmtplib loop sends the very same mails in the same run."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from bench._common import child_env
from tests.workspace import env_for

CAMPAIGN = """
name = "Realistic"
kind = "sequence"
sender = "Dana at Acme <dana@acme.example>"
[[step]]
id = "one"
wait = "0"
template = "one.md"
"""

_SECTION = """
## {n}. {title}

Most teams at {{{{ lead.company | default("your company") }}}} lose deals not because the
product is wrong but because the **follow-up** stops too early. In our study of 1,200
pipelines, the median rep gave up after *two* touches, while buyers answered on the fourth
or fifth. Here is what we saw, and [what to do instead](https://acme.example/report#s{n}).

- Write down the next step before you hang up, with a date.
- Send a short recap the same day, with one question that is easy to answer.
- Space the touches out: two days, five days, ten days.

> "We doubled our replies by changing nothing but the timing." (a reader like you,
> {{{{ lead.first_name | default("friend") }}}})
"""
_TITLES = ["Waiting too long", "Stopping after two touches", "Asking 'just checking in'",
           "Sending the same mail twice", "Forgetting the decision maker",
           "No clear next step", "Ignoring the calendar"]


def template() -> str:
    """About 4 KB of Markdown with a few lead fields, as a user writes a step."""
    body = "".join(_SECTION.format(n=i + 1, title=t) for i, t in enumerate(_TITLES[:6]))
    return ("---\nsubject: \"{{ lead.first_name | default('Hi') }}, the 7 follow-up mistakes\"\n"
            "preheader: The seven mistakes that lose deals, in one page\n---\n"
            "Hello {{ lead.first_name | default(\"there\") }},\n\n"
            "thanks for asking about follow-up at {{ lead.company | default(\"your team\") }}."
            "\n" + body + "\nDana\n")


def write_csv(path: Path, count: int) -> None:
    """The leads file a user imports: e-mail, first name, company."""
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["email", "first_name", "company"])
        for i in range(count):
            writer.writerow([f"lead{i}@bench.test", f"Lead{i}", "Bench Co"])


def cli(tmp: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """One `nurture ...` command as a subprocess; raises on a non-zero exit."""
    return subprocess.run([sys.executable, "-m", "worker", *args], env=_env(env), cwd=tmp,
                          check=True, capture_output=True, text=True)


def run_worker(tmp: Path, env: dict[str, str], sink: object, count: int,
               timeout: float = 600.0) -> tuple[float, float]:
    """Start `nurture run`, wait until the sink has ``count`` more mails, stop it. Returns
    (seconds from the first mail accepted to the last, seconds from the start)."""
    before = sink.count  # type: ignore[attr-defined]
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "worker", "run"], env=_env(env), cwd=tmp,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    first = 0.0
    spy = _profile(proc.pid)
    try:
        while sink.count < before + count:  # type: ignore[attr-defined]
            if not first and sink.count > before:  # type: ignore[attr-defined]
                first = time.perf_counter()
            if proc.poll() is not None or time.perf_counter() - started > timeout:
                raise RuntimeError(f"nurture run ended or stalled: {proc.stderr.read()[-2000:]!r}"
                                   if proc.stderr else "nurture run ended")
            time.sleep(0.002)
        done = time.perf_counter()
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if spy is not None:
            spy.wait(60)
    return done - (first or started), done - started


def _profile(pid: int) -> subprocess.Popen[bytes] | None:
    """With BENCH_PYSPY=FILE: py-spy samples `nurture run` and its render process into FILE
    (collapsed stacks, one per line, for ``bench/_realistic.py top FILE``)."""
    out = os.environ.get("BENCH_PYSPY")
    if not out:
        return None
    return subprocess.Popen(["py-spy", "record", "--pid", str(pid), "--subprocesses", "-r", "250",
                             "-f", "raw", "-o", out], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


def top(path: str, count: int = 25) -> str:
    """The functions most often on the stack (inclusive) and on top of it (self), in percent
    of the samples of a py-spy raw file."""
    inclusive: dict[str, int] = {}
    own: dict[str, int] = {}
    total = 0
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        stack, _, n = line.rpartition(" ")
        frames = [f.split(" (")[0] + " " + f.rsplit("/", 1)[-1].rstrip(")") for f in
                  stack.split(";") if not f.startswith("process ")]
        samples = int(n)
        total += samples
        for frame in set(frames):
            inclusive[frame] = inclusive.get(frame, 0) + samples
        if frames:
            own[frames[-1]] = own.get(frames[-1], 0) + samples
    rows = [f"{'incl %':>7} {'self %':>7}  function"]
    for frame, n in sorted(inclusive.items(), key=lambda kv: -kv[1])[:count]:
        rows.append(f"{100 * n / total:7.1f} {100 * own.get(frame, 0) / total:7.1f}  {frame}")
    rows.append("self:")
    for frame, n in sorted(own.items(), key=lambda kv: -kv[1])[:count]:
        rows.append(f"{100 * n / total:7.1f}  {frame}")
    return "\n".join(rows)


def environment(tmp: Path, **extra: str) -> dict[str, str]:
    """The NURTURE_* variables of the workspace, for the CLI subprocesses."""
    return env_for(tmp, **extra)


def _env(nurture: dict[str, str]) -> dict[str, str]:
    return child_env(**nurture)


if __name__ == "__main__" and len(sys.argv) == 3 and sys.argv[1] == "top":
    print(top(sys.argv[2]))
