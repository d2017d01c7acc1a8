"""A scriptable SMTP server (aiosmtpd in its own thread) that records what it accepts.

Fault scripts apply to the next messages in order: ``fail_next`` answers a stage with a
given reply, ``stall`` hangs before answering DATA, ``drop_mid_data`` closes the connection
instead of answering DATA, ``reject`` refuses one recipient for good, and ``down``/``up``
close and reopen the listening socket on the same port.
"""

from __future__ import annotations

import asyncio
import collections
import shutil
import ssl
import tempfile
import threading
import time
import warnings
from dataclasses import dataclass
from datetime import UTC, datetime
from email.parser import BytesHeaderParser
from email.policy import compat32
from pathlib import Path
from typing import Any, Self

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from tests.servers._util import free_port
from tests.servers.certs import client_context, make_self_signed


@dataclass(frozen=True)
class ReceivedMessage:
    """One message the server accepted (answered 250 to DATA, or would have, if stalled)."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    message_id: str | None
    data: bytes
    accepted_at: datetime
    connection_id: int


@dataclass(frozen=True)
class _Action:
    kind: str  # fail | stall | drop
    reply: str = ""
    seconds: float = 0.0
    accept: bool = True


class _RecordingSMTP(SMTP):
    """aiosmtpd's SMTP protocol, numbered per connection and tracked so ``down`` can cut it."""

    def __init__(self, owner: ScriptedSmtpServer, *args: Any, **kwargs: Any) -> None:
        with warnings.catch_warnings():
            # Plain-text AUTH is deliberate here: tests of a local relay without TLS.
            warnings.simplefilter("ignore", UserWarning)
            super().__init__(*args, **kwargs)
        self.owner = owner
        self.connection_id = owner._new_connection(self)

    async def smtp_AUTH(self, arg: str) -> None:
        with warnings.catch_warnings():
            # aiosmtpd itself sets the deprecated Session.login_data on every success.
            warnings.simplefilter("ignore", DeprecationWarning)
            await super().smtp_AUTH(arg)

    def connection_lost(self, error: Exception | None) -> None:
        self.owner._forget_connection(self)
        super().connection_lost(error)


class _Controller(Controller):
    def __init__(self, owner: ScriptedSmtpServer, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.owner = owner

    def factory(self) -> SMTP:
        return _RecordingSMTP(self.owner, self.handler, **self.SMTP_kwargs)


class _Handler:
    def __init__(self, owner: ScriptedSmtpServer) -> None:
        self.owner = owner

    async def handle_EHLO(self, server: _RecordingSMTP, session: Session, envelope: Envelope,
                          hostname: str, responses: list[str]) -> list[str]:
        session.host_name = hostname
        if self.owner.pipelining:
            # aiosmtpd reads one command at a time from its buffer, so pipelined commands
            # are answered in order, as RFC 2920 asks; it just does not say so by default.
            responses.insert(1, "250-PIPELINING")
        return responses

    async def handle_RSET(self, server: _RecordingSMTP, session: Session,
                          envelope: Envelope) -> str:
        self.owner._count("RSET")
        return "250 OK"

    async def handle_QUIT(self, server: _RecordingSMTP, session: Session,
                          envelope: Envelope) -> str:
        self.owner._count("QUIT")
        return "221 Bye"

    async def handle_MAIL(self, server: _RecordingSMTP, session: Session, envelope: Envelope,
                          address: str, mail_options: list[str]) -> str:
        action = self.owner._pop("mail")
        if action is not None:
            return _answer(server, action.reply)
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server: _RecordingSMTP, session: Session, envelope: Envelope,
                          address: str, rcpt_options: list[str]) -> str:
        rejection = self.owner._rejection(address)
        if rejection is not None:
            return rejection
        action = self.owner._pop("rcpt")
        if action is not None:
            return _answer(server, action.reply)
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 OK"

    async def handle_DATA(self, server: _RecordingSMTP, session: Session,
                          envelope: Envelope) -> str:
        action = self.owner._pop("data")
        if action is None:
            return self.owner._record(server, envelope)
        if action.kind == "fail":
            await asyncio.sleep(action.seconds)
            return _answer(server, action.reply)
        if action.kind == "drop":
            assert isinstance(server.transport, asyncio.Transport)
            server.transport.abort()
            # connection_lost cancels this task; the client never gets an answer.
            await asyncio.sleep(3600)
            return "421 4.4.2 unreachable"  # pragma: no cover
        try:
            await asyncio.sleep(action.seconds)
        except asyncio.CancelledError:
            # The client gave up while we stalled; a real server may still deliver it.
            if action.accept:
                self.owner._record(server, envelope)
            raise
        if not action.accept:
            return _answer(server, "451 4.3.0 Stalled and gave up")
        return self.owner._record(server, envelope)


def _answer(server: _RecordingSMTP, reply: str) -> str:
    if reply.startswith("421"):
        # 421 means the server closes the connection; do it right after the reply goes out.
        transport = server.transport
        if transport is not None:
            asyncio.get_running_loop().call_soon(transport.close)
    return reply


class ScriptedSmtpServer:
    """An SMTP server on 127.0.0.1 (a free port) that records every accepted message.

    ``auth`` = {user: password} requires AUTH; ``starttls`` offers STARTTLS and
    ``implicit_tls`` speaks TLS from the start, both with a self-signed certificate whose
    trust is ``client_ssl_context()``. ``pipelining`` offers PIPELINING (RFC 2920), as
    real servers do; without it the worker sends one command at a time.
    """

    def __init__(self, *, auth: dict[str, str] | None = None, starttls: bool = False,
                 implicit_tls: bool = False, hostname: str = "smtp.test",
                 pipelining: bool = True) -> None:
        self.pipelining = pipelining
        self.host = "127.0.0.1"
        self.port = free_port()
        self.auth = dict(auth or {})
        self.starttls = starttls
        self.implicit_tls = implicit_tls
        self.hostname = hostname
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._messages: list[ReceivedMessage] = []
        self._queues: dict[str, collections.deque[_Action]] = {
            "mail": collections.deque(), "rcpt": collections.deque(), "data": collections.deque()}
        self._rejects: dict[str, str] = {}
        self._open: set[_RecordingSMTP] = set()
        self._connections = 0
        self._commands: collections.Counter[str] = collections.Counter()
        self._controller: _Controller | None = None
        self._tmp: Path | None = None
        self.cafile: Path | None = None
        self._server_ctx: ssl.SSLContext | None = None
        if starttls or implicit_tls:
            self._tmp = Path(tempfile.mkdtemp(prefix="nurture-smtp-"))
            cert, key = make_self_signed(self._tmp, "smtp")
            self.cafile = cert
            self._server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            self._server_ctx.load_cert_chain(cert, key)

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> Self:
        """Listen (again) on the same port; return self."""
        with self._lock:
            if self._controller is not None:
                return self
        kwargs: dict[str, Any] = {"decode_data": False, "server_hostname": self.hostname,
                                  "ready_timeout": 10.0}
        if self.implicit_tls:
            kwargs["ssl_context"] = self._server_ctx
        if self.starttls:
            kwargs.update(tls_context=self._server_ctx, require_starttls=False)
        kwargs.update(self._auth_kwargs())
        controller = _Controller(self, self._make_handler(), hostname=self.host, port=self.port,
                                 **kwargs)
        controller.start()
        with self._lock:
            self._controller = controller
        return self

    def stop(self) -> None:
        """Cut every connection and stop listening; ``start``/``up`` listens again."""
        with self._lock:
            controller, self._controller = self._controller, None
        if controller is None:
            return

        done = threading.Event()

        def cut() -> None:
            with self._lock:
                conns = list(self._open)
            for conn in conns:
                if isinstance(conn.transport, asyncio.Transport):
                    conn.transport.abort()
            done.set()

        controller.loop.call_soon_threadsafe(cut)
        done.wait(5)
        controller.stop()

    def _auth_kwargs(self) -> dict[str, Any]:
        """aiosmtpd's AUTH options; a subclass with other mechanisms overrides this."""
        if not self.auth:
            return {}
        return {"authenticator": self._authenticate, "auth_required": True,
                "auth_require_tls": self.starttls}

    def _make_handler(self) -> _Handler:
        return _Handler(self)

    def down(self) -> None:
        """Stop accepting connections (existing ones are cut) until ``up``."""
        self.stop()

    def up(self) -> None:
        """Accept connections again, on the same port."""
        self.start()

    def close(self) -> None:
        """Stop and remove the certificate files."""
        self.stop()
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def client_ssl_context(self) -> ssl.SSLContext:
        """A client context that trusts this server's self-signed certificate."""
        if self.cafile is None:
            raise RuntimeError("started without starttls/implicit_tls")
        return client_context(self.cafile)

    # -- scripts --------------------------------------------------------------------------

    def reject(self, rcpt: str, reply: str = "550 5.1.1 No such user") -> None:
        """Answer RCPT TO ``rcpt`` with ``reply`` from now on (e.g. "550 5.1.1 <x>: no such user")."""
        with self._lock:
            self._rejects[rcpt.lower()] = reply

    def accept(self, rcpt: str) -> None:
        """Undo ``reject``."""
        with self._lock:
            self._rejects.pop(rcpt.lower(), None)

    def fail_next(self, n: int, reply: str = "421 4.7.0 Try again later",
                  stage: str = "data", after_s: float = 0.0) -> None:
        """Answer the next ``n`` MAIL, RCPT or DATA commands (``stage``) with ``reply``, DATA
        after ``after_s`` seconds (so that several connections can be answered at once).

        A 421 also closes the connection, as real servers do.
        """
        self._push(stage, [_Action("fail", reply=reply, seconds=after_s)] * n)

    def stall(self, seconds: float, n: int = 1, accept: bool = True) -> None:
        """Hang ``seconds`` before answering the next ``n`` DATA commands.

        With ``accept`` the message is recorded even if the client gave up meanwhile (the
        duplicate-risk case); otherwise the answer after the stall is 451.
        """
        self._push("data", [_Action("stall", seconds=seconds, accept=accept)] * n)

    def drop_mid_data(self, n: int = 1) -> None:
        """Close the connection instead of answering the next ``n`` DATA commands."""
        self._push("data", [_Action("drop")] * n)

    def clear_scripts(self) -> None:
        """Forget every pending script and rejection."""
        with self._lock:
            for queue in self._queues.values():
                queue.clear()
            self._rejects.clear()

    def _push(self, stage: str, actions: list[_Action]) -> None:
        if stage not in self._queues:
            raise ValueError(f"stage must be one of {', '.join(self._queues)}")
        with self._lock:
            self._queues[stage].extend(actions)

    # -- what it saw ----------------------------------------------------------------------

    @property
    def messages(self) -> list[ReceivedMessage]:
        """Every accepted message so far, in order of acceptance."""
        with self._lock:
            return list(self._messages)

    def message_ids(self) -> collections.Counter[str | None]:
        """How many times each Message-ID was accepted."""
        with self._lock:
            return collections.Counter(m.message_id for m in self._messages)

    @property
    def connections(self) -> int:
        """How many connections were opened so far (including readiness probes)."""
        with self._lock:
            return self._connections

    @property
    def commands(self) -> collections.Counter[str]:
        """How many RSET and QUIT commands the server answered so far."""
        with self._lock:
            return collections.Counter(self._commands)

    def wait_for(self, count: int, timeout_s: float = 10.0) -> list[ReceivedMessage]:
        """Block until at least ``count`` messages were accepted; raise on timeout."""
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while len(self._messages) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{len(self._messages)} of {count} messages arrived")
                self._changed.wait(left)
            return list(self._messages)

    # -- called from the server thread ----------------------------------------------------

    def _new_connection(self, conn: _RecordingSMTP) -> int:
        with self._lock:
            self._connections += 1
            self._open.add(conn)
            return self._connections

    def _count(self, command: str) -> None:
        with self._lock:
            self._commands[command] += 1

    def _forget_connection(self, conn: _RecordingSMTP) -> None:
        with self._lock:
            self._open.discard(conn)

    def _pop(self, stage: str) -> _Action | None:
        with self._lock:
            queue = self._queues[stage]
            return queue.popleft() if queue else None

    def _rejection(self, address: str) -> str | None:
        with self._lock:
            return self._rejects.get(address.lower())

    def _record(self, server: _RecordingSMTP, envelope: Envelope) -> str:
        data = envelope.original_content or b""
        if not data and isinstance(envelope.content, bytes):
            data = envelope.content
        headers = BytesHeaderParser(policy=compat32).parsebytes(data)
        message_id = headers.get("Message-ID")
        message = ReceivedMessage(
            mail_from=envelope.mail_from or "", rcpt_tos=tuple(envelope.rcpt_tos),
            message_id=str(message_id).strip() if message_id else None, data=data,
            accepted_at=datetime.now(UTC), connection_id=server.connection_id)
        with self._changed:
            self._messages.append(message)
            number = len(self._messages)
            self._changed.notify_all()
        return f"250 2.0.0 OK queued as M{number}"

    def _authenticate(self, server: SMTP, session: Session, envelope: Envelope,
                      mechanism: str, auth_data: Any) -> AuthResult:
        # aiosmtpd calls the authenticator synchronously: it must not be a coroutine.
        if isinstance(auth_data, LoginPassword):
            user = auth_data.login.decode("utf-8", "replace")
            password = auth_data.password.decode("utf-8", "replace")
            if self.auth.get(user) == password and user in self.auth:
                return AuthResult(success=True)
        return AuthResult(success=False, handled=False)
