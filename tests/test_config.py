"""Configuration: file, NURTURE_<SECTION>__<KEY> overrides, validation naming the key."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from tests.workspace import REPO
from worker.config import ConfigError, Secret, describe, load_settings
from worker.logs import RedactingFilter


def test_the_shipped_file_gives_the_embedded_default() -> None:
    s = load_settings(REPO / "config" / "nurture.toml", environ={})
    assert s.database.url == "sqlite:///var/nurture.db"
    assert (s.outbound.transport, s.inbound.transport) == ("maildir", "maildir")
    assert (s.http.host, s.http.port, s.smtp.connections) == ("127.0.0.1", 8787, 10)
    assert s.http.base_url() == "http://127.0.0.1:8787"


def test_environment_overrides_any_key_with_conversion() -> None:
    s = load_settings(REPO / "config" / "nurture.toml", environ={
        "NURTURE_SMTP__PORT": "2525", "NURTURE_SMTP__TLS": "starttls",
        "NURTURE_HTTP__ENABLED": "false", "NURTURE_DATABASE__URL": "postgresql://u:pw@db/n",
        "NURTURE_SMTP__PASSWORD": "hunter22", "NURTURE_SECRET_KEY": "k" * 20,
        "NURTURE_MAILBOXES__SALES__ADDRESS": "Dana <dana@acme.example>",
        "NURTURE_MAILBOXES__SALES__SMTP__DAILY_CAP": "500", "UNRELATED": "x"})
    assert s.smtp.port == 2525 and s.smtp.tls == "starttls" and s.http.enabled is False
    assert s.smtp.password.reveal() == "hunter22"
    assert s.mailboxes["sales"].smtp.daily_cap == 500
    assert "hunter22" not in repr(s) and "pw@" not in str(describe(s))


@pytest.mark.parametrize("env,key", [
    ({"NURTURE_SMTP__PORT": "abc"}, "smtp.port"),
    ({"NURTURE_SMTP__PORT": "70000"}, "smtp.port"),
    ({"NURTURE_SMTP__TLS": "ssl"}, "smtp.tls"),
    ({"NURTURE_OUTBOUND__TRANSPORT": "pigeon"}, "outbound.transport"),
    ({"NURTURE_SMTP__CONNECTIONS": "0"}, "smtp.connections"),
    ({"NURTURE_SMTP__COLOUR": "red"}, "smtp.colour"),
    ({"NURTURE_DATABASE__URL": "mysql://x"}, "database.url"),
    ({"NURTURE_HTTP__ENABLED": "perhaps"}, "http.enabled"),
    ({"NURTURE_WORKER__LATE_POLICY": "panic"}, "worker.late_policy"),
    ({"NURTURE_WORKER__EVENT_LOOP": "trio"}, "worker.event_loop"),
])
def test_a_bad_value_is_refused_with_the_keys_name(env: dict[str, str], key: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(REPO / "config" / "nurture.toml", environ=env)
    assert key in str(info.value)


def test_secrets_in_the_file_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "n.toml"
    path.write_text('[smtp]\npassword = "hunter22"\n')
    with pytest.raises(ConfigError) as info:
        load_settings(path, environ={})
    assert "NURTURE_SMTP__PASSWORD" in str(info.value) and "hunter22" not in str(info.value)


def test_broken_toml_and_missing_file_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "n.toml"
    path.write_text("[smtp\n")
    with pytest.raises(ConfigError, match="n.toml"):
        load_settings(path, environ={})
    with pytest.raises(ConfigError, match="file not found"):
        load_settings(environ={"NURTURE_CONFIG": str(tmp_path / "nope.toml")})


def test_secrets_never_print_and_are_redacted_from_logs(caplog: pytest.LogCaptureFixture) -> None:
    secret = Secret("s3cr3t-value")
    assert "s3cr3t" not in f"{secret} {secret!r}"
    record = logging.LogRecord("x", logging.INFO, "f", 1, "login with %s", ("s3cr3t-value",), None)
    RedactingFilter(["s3cr3t-value"]).filter(record)
    assert record.getMessage() == "login with ********"


def test_cli_refuses_a_bad_value_without_a_traceback(capsys: pytest.CaptureFixture[str],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from worker.cli import main
    monkeypatch.setenv("NURTURE_SMTP__PORT", "many")
    assert main(["--config", str(REPO / "config" / "nurture.toml"), "init"]) == 1
    err = capsys.readouterr().err
    assert "smtp.port" in err and "NURTURE_SMTP__PORT" in err and "Traceback" not in err
