"""A private authoritative DNS server (NLnet Labs' NSD) on 127.0.0.1 with zones from the test.

``Nsd({"good.test": "...records..."})`` writes one zone file per domain (SOA and NS are
added), a config under a temp dir, and runs ``nsd -d`` on a free port (UDP and TCP).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import tempfile
from pathlib import Path
from typing import Self

from tests.servers._util import RunAs, ServerUnavailable, TempDirServer, free_port, wait_for_port

NSD = "/usr/sbin/nsd"


class Nsd(TempDirServer):
    """NSD serving ``zones`` ({origin: resource records in zone-file syntax})."""

    def __init__(self, zones: dict[str, str]) -> None:
        if not os.path.exists(NSD):
            raise ServerUnavailable("NSD not found; apt-get install nsd")
        self.host = "127.0.0.1"
        self.port = free_port()
        self.tmp = Path(tempfile.mkdtemp(prefix="nurture-nsd-"))
        self.tmp.chmod(0o755)
        self.log = self.tmp / "nsd.log"
        self._proc: subprocess.Popen[bytes] | None = None
        # As root NSD drops to its own user after binding: it must still read and write here.
        self.user = RunAs.first_of("nsd", "nobody")
        zone_blocks = []
        for origin, records in zones.items():
            origin = origin.rstrip(".")
            (self.tmp / f"{origin}.zone").write_text(
                f"$ORIGIN {origin}.\n$TTL 60\n"
                f"@ IN SOA ns.{origin}. hostmaster.{origin}. 1 3600 600 86400 60\n"
                f"@ IN NS ns.{origin}.\n"
                f"ns IN A 127.0.0.1\n{records}\n")
            zone_blocks.append(f"zone:\n  name: {origin}\n  zonefile: {origin}.zone\n")
        self.config = self.tmp / "nsd.conf"
        username = self.user.name if os.geteuid() == 0 else '""'
        self.config.write_text(
            "server:\n"
            f"  ip-address: {self.host}@{self.port}\n"
            f"  port: {self.port}\n"
            "  do-ip6: no\n"
            "  server-count: 1\n"
            f"  username: {username}\n"
            '  chroot: ""\n'
            f"  zonesdir: {self.tmp}\n"
            f"  pidfile: {self.tmp}/nsd.pid\n"
            '  database: ""\n'
            f"  zonelistfile: {self.tmp}/zone.list\n"
            f"  xfrdfile: {self.tmp}/xfrd.state\n"
            f"  xfrdir: {self.tmp}\n"
            f"  logfile: {self.log}\n"
            "  verbosity: 1\n"
            "remote-control:\n  control-enable: no\n"
            + "".join(zone_blocks))
        for path in self.tmp.iterdir():
            path.chmod(0o644)
        self.user.chown(self.tmp, *self.tmp.iterdir())

    @property
    def nameserver(self) -> str:
        """``127.0.0.1:PORT``, the form of ``dns.nameservers``."""
        return f"{self.host}:{self.port}"

    def start(self) -> Self:
        """Run NSD in the foreground of its own process group; wait until TCP answers."""
        self._proc = subprocess.Popen([NSD, "-d", "-c", str(self.config)],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                      cwd=self.tmp, start_new_session=True)
        try:
            wait_for_port(self.host, self.port, 15.0, "NSD")
        except RuntimeError as exc:
            self.stop()
            raise RuntimeError(f"{exc}\n{self.log_tail()}") from None
        return self

    def stop(self) -> None:
        """Stop NSD (and its children)."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
        if proc.stderr is not None:
            proc.stderr.close()

