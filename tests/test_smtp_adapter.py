"""The SMTP door (aiosmtplib, with RFC 2920 pipelining where offered) against a real SMTP
server (aiosmtpd on loopback), scripted to refuse, throttle, stall and hang up."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Awaitable, Callable, Collection
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.servers.smtp import ScriptedSmtpServer
from worker.adapters.smtp import SmtpChannel, _stuff
from worker.config import Secret, SmtpSettings
from worker.errors import PermanentDeliveryError, TransientDeliveryError
from worker.ports import Envelope, Gate

BODY = b"From: a@acme.test\r\nTo: b@acme.test\r\nSubject: hi\r\n\r\nHello.\r\n.leading dot\r\n"


def envelope(n: int, rcpt: str = "") -> Envelope:
    return Envelope("dana@acme.test", rcpt or f"lead{n}@acme.test", f"<m{n}@acme.test>",
                    BODY.replace(b"Hello.", f"Hello {n}.".encode()))


def settings(server: ScriptedSmtpServer, **changes: Any) -> SmtpSettings:
    return SmtpSettings(**{"host": server.host, "port": server.port, "timeout_s": 2.0,
                           "retries": 1, **changes})


def run(server: ScriptedSmtpServer, fn: Callable[[SmtpChannel], Awaitable[Any]],
        **changes: Any) -> Any:
    async def scenario() -> Any:
        channel = SmtpChannel("default", settings(server, **changes))
        try:
            return await fn(channel)
        finally:
            await channel.close()
    return asyncio.run(scenario())


@pytest.fixture(params=[True, False], ids=["pipelining", "one-at-a-time"])
def server(request: pytest.FixtureRequest) -> Any:
    with ScriptedSmtpServer(pipelining=request.param).start() as s:
        yield s


def test_mails_go_over_one_connection_dot_stuffed(server: ScriptedSmtpServer) -> None:
    # When three mails are sent on one channel
    before = server.connections  # the server's own readiness probe counts as one

    async def send(channel: SmtpChannel) -> list[Any]:
        return [await channel.send(envelope(n)) for n in range(3)]
    results = run(server, send)
    # Then all are accepted over one connection, byte for byte (the leading dot unstuffed)
    assert [r.code for r in results] == [250, 250, 250]
    assert server.connections - before == 1
    assert [m.rcpt_tos for m in server.messages] == [(f"lead{n}@acme.test",) for n in range(3)]
    assert server.messages[1].data.replace(b"\r\n", b"\n") == \
        envelope(1).data.replace(b"\r\n", b"\n")


def test_pipelining_is_used_only_where_offered(server: ScriptedSmtpServer) -> None:
    async def send(channel: SmtpChannel) -> bool:
        await channel.send(envelope(0))
        return channel._pipe is not None
    assert run(server, send) is server.pipelining


def test_a_refused_recipient_is_permanent_with_the_servers_words_and_the_next_mail_goes(
        server: ScriptedSmtpServer) -> None:
    # Given a recipient the server refuses
    server.reject("gone@acme.test", "550 5.1.1 <gone@acme.test>: Recipient address rejected")

    async def send(channel: SmtpChannel) -> tuple[PermanentDeliveryError, Any]:
        with pytest.raises(PermanentDeliveryError) as refused:
            await channel.send(envelope(0, "gone@acme.test"))
        return refused.value, await channel.send(envelope(1))
    # When it is sent, then another mail
    error, after = run(server, send)
    # Then the refusal carries the code and the server's words; the next mail is accepted
    assert error.code == 550 and "Recipient address rejected" in error.message
    assert after.code == 250 and len(server.messages) == 1


@pytest.mark.parametrize("stage", ["mail", "rcpt", "data"])
def test_throttling_at_any_stage_is_transient_and_throttled(server: ScriptedSmtpServer,
                                                            stage: str) -> None:
    server.fail_next(1, "421 4.7.0 Too many messages, slow down", stage=stage)

    async def send(channel: SmtpChannel) -> tuple[TransientDeliveryError, Any]:
        with pytest.raises(TransientDeliveryError) as deferred:
            await channel.send(envelope(0))
        return deferred.value, await channel.send(envelope(1))
    error, after = run(server, send)
    assert error.code == 421 and error.throttled and "slow down" in error.message
    assert after.code == 250 and [m.rcpt_tos for m in server.messages] == [("lead1@acme.test",)]


def test_a_4xx_after_the_message_is_transient_and_a_5xx_permanent(
        server: ScriptedSmtpServer) -> None:
    server.fail_next(1, "451 4.3.0 Local error in processing")
    server.fail_next(1, "554 5.6.0 Message content rejected")

    async def send(channel: SmtpChannel) -> list[Exception]:
        errors = []
        for n in range(2):
            with pytest.raises((TransientDeliveryError, PermanentDeliveryError)) as info:
                await channel.send(envelope(n))
            errors.append(info.value)
        return errors
    soft, hard = run(server, send)
    assert isinstance(soft, TransientDeliveryError) and soft.code == 451
    assert isinstance(hard, PermanentDeliveryError) and hard.code == 554
    assert "content rejected" in hard.message and server.messages == []


def test_a_stall_past_the_timeout_and_a_hang_up_mid_data_are_transient(
        server: ScriptedSmtpServer) -> None:
    server.stall(4.0, accept=False)
    server.drop_mid_data()

    async def send(channel: SmtpChannel) -> tuple[list[TransientDeliveryError], Any]:
        errors = []
        for n in range(2):
            with pytest.raises(TransientDeliveryError) as info:
                await channel.send(envelope(n))
            errors.append(info.value)
        return errors, await channel.send(envelope(2))
    (stalled, dropped), after = run(server, send)
    assert "timeout" in stalled.message
    assert dropped.code is None and not dropped.throttled
    assert after.code == 250 and [m.rcpt_tos for m in server.messages] == [("lead2@acme.test",)]


def test_a_withdrawn_mail_is_not_handed_over(server: ScriptedSmtpServer) -> None:
    # Given a ledger that refuses the first mail's hand-over (its lead replied meanwhile)
    async def send(channel: SmtpChannel) -> list[Any]:
        def decided(mid: str, allowed: bool) -> Gate:
            future: asyncio.Future[Collection[str]] = asyncio.get_running_loop().create_future()
            future.set_result([mid] if allowed else [])
            return Gate(future, mid)
        return [await channel.send(envelope(0), decided("<m0@acme.test>", False)),
                await channel.send(envelope(1), decided("<m1@acme.test>", True))]
    # Then that mail is abandoned before its final dot; the next one goes
    first, second = run(server, send)
    assert first is None and second.code == 250
    assert [m.rcpt_tos for m in server.messages] == [("lead1@acme.test",)]


def test_internationalised_addresses_go_as_the_server_allows(server: ScriptedSmtpServer) -> None:
    # A non-ASCII domain goes as IDNA; a non-ASCII local part needs SMTPUTF8 (offered here)
    async def send(channel: SmtpChannel) -> list[Any]:
        return [await channel.send(envelope(0)),
                await channel.send(envelope(1, "jürgen@acme.test")),
                await channel.send(envelope(2, "ines@bücher.example")),
                await channel.send(envelope(3))]
    results = run(server, send)
    assert [r.code for r in results] == [250, 250, 250, 250]
    assert [m.rcpt_tos for m in server.messages] == [
        ("lead0@acme.test",), ("jürgen@acme.test",), ("ines@xn--bcher-kva.example",),
        ("lead3@acme.test",)]


@pytest.mark.parametrize("mode", ["starttls", "tls"])
def test_tls_and_auth_with_pipelining(mode: str) -> None:
    with ScriptedSmtpServer(auth={"dana": "s3cret"}, starttls=mode == "starttls",
                            implicit_tls=mode == "tls").start() as server:
        before = server.connections

        async def send(channel: SmtpChannel) -> list[Any]:
            results = [await channel.send(envelope(n)) for n in range(3)]
            assert channel._pipe is not None
            return results
        results = run(server, send, tls=mode, username="dana", password=Secret("s3cret"),
                      ca_file=str(server.cafile))  # our own CA, added to the system's trust
        assert [r.code for r in results] == [250, 250, 250]
        assert len(server.messages) == 3 and server.connections - before == 1


def test_a_close_cancelled_at_shutdown_leaves_nothing_to_hang_on(
        server: ScriptedSmtpServer) -> None:
    # Given a channel that sent a mail (a generous timeout, as in production)
    async def scenario() -> float:
        channel = SmtpChannel("default", settings(server, timeout_s=30.0))
        await channel.send(envelope(0))
        # When its close is cancelled mid-QUIT (the shutdown's grace ran out)
        first = asyncio.create_task(channel.close())
        await asyncio.sleep(0)
        first.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await first
        # Then closing again (the sender closes every channel) returns at once
        started = asyncio.get_running_loop().time()
        await asyncio.wait_for(channel.close(), 10)
        return asyncio.get_running_loop().time() - started
    assert asyncio.run(scenario()) < 1.0
    assert len(server.messages) == 1


def test_refusals_and_deferrals_reset_and_reuse_the_connection(server: ScriptedSmtpServer) -> None:
    # Given a server that refuses or defers mails at every stage, without hanging up
    before = server.connections
    server.reject("gone@acme.test", "550 5.1.1 <gone@acme.test>: Recipient address rejected")
    server.fail_next(1, "450 4.7.1 Rate limit exceeded, try again later", stage="rcpt")
    server.fail_next(1, "451 4.3.0 Temporary lookup failure", stage="data")
    server.fail_next(1, "452 4.3.1 Insufficient system storage", stage="mail")
    server.fail_next(1, "554 5.6.0 Message content rejected", stage="data")

    async def send(channel: SmtpChannel) -> list[Any]:
        answers: list[Any] = []
        for n, rcpt in enumerate(["", "gone@acme.test", "", "", "", ""]):
            try:
                answers.append((await channel.send(envelope(n, rcpt))).code)
            except (TransientDeliveryError, PermanentDeliveryError) as exc:
                answers.append(exc.code)
        return answers
    # When six mails are sent on one channel
    answers = run(server, send, retries=1)
    # Then each answer is the server's, and all went over one connection, reset between
    assert answers == [452, 550, 450, 451, 554, 250]
    assert server.connections - before == 1
    assert server.commands["RSET"] >= 4 and server.commands["QUIT"] == 1
    assert [m.rcpt_tos for m in server.messages] == [("lead5@acme.test",)]


def test_an_idle_connection_is_closed_with_quit_and_reopened_for_the_next_mail(
        server: ScriptedSmtpServer) -> None:
    # Given a channel with smtp.idle_s = 0.3 that sent a mail
    before = server.connections

    async def send(channel: SmtpChannel) -> list[Any]:
        first = await channel.send(envelope(0))
        # When it has nothing to send for longer than that
        await asyncio.sleep(1.0)
        quits = server.commands["QUIT"]
        # Then the server saw QUIT; the next mail goes over a new connection
        return [first.code, quits, (await channel.send(envelope(1))).code]
    first, quits, second = run(server, send, idle_s=0.3)
    assert (first, quits, second) == (250, 1, 250)
    assert server.connections - before == 2 and len(server.messages) == 2


@given(st.lists(st.sampled_from([b".", b"..", b"\r\n", b"\n", b"x", b" .", b"\r"]),
                max_size=30).map(b"".join))
def test_dot_stuffing_doubles_the_dot_at_the_start_of_every_line(data: bytes) -> None:
    # RFC 5321 4.5.2: every line that starts with a dot gets one more; the data ends in CRLF
    expected = re.sub(rb"(?m)^\.", b"..", data)
    if not expected.endswith(b"\r\n"):
        expected += b"\r\n"
    assert _stuff(data) == expected
