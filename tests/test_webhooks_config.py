"""The [webhooks] section: endpoint tables beside max_age_h, secrets only from the environment."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from worker.config import ConfigError, describe, load_settings

SECRET = "whsec_" + base64.b64encode(bytes(range(32))).decode()
FILE = """
[webhooks]
max_age_h = 24

[webhooks.crm]
url = "https://crm.example/hooks/nurture"
events = ["lead.replied", "lead.bounced"]
timeout_s = 5

[webhooks.chat]
url = "http://chat.example/in"
enabled = false
"""


def write(tmp_path: Path, text: str = FILE) -> Path:
    path = tmp_path / "n.toml"
    path.write_text(text)
    return path


def test_endpoint_tables_and_max_age_coexist_with_defaults(tmp_path: Path) -> None:
    s = load_settings(write(tmp_path), environ={"NURTURE_WEBHOOKS__CRM__SECRET": SECRET})
    crm, chat = s.webhooks.endpoints["crm"], s.webhooks.endpoints["chat"]
    assert s.webhooks.max_age_h == 24
    assert crm.events == ("lead.replied", "lead.bounced") and crm.timeout_s == 5
    assert crm.secret.reveal() == SECRET and crm.enabled
    assert chat.events is None and chat.timeout_s == 10 and not chat.enabled
    assert s.webhooks.filters() == {"crm": frozenset({"lead.replied", "lead.bounced"})}


def test_no_section_means_no_endpoints_and_72_hours() -> None:
    s = load_settings(environ={"NURTURE_CONFIG": str(Path("config/nurture.toml").resolve())})
    assert s.webhooks.endpoints == {} and s.webhooks.max_age_h == 72


def test_the_environment_defines_or_overrides_any_endpoint_key(tmp_path: Path) -> None:
    s = load_settings(write(tmp_path), environ={
        "NURTURE_WEBHOOKS__CRM__SECRET": SECRET, "NURTURE_WEBHOOKS__MAX_AGE_H": "48",
        "NURTURE_WEBHOOKS__CRM__EVENTS": "mail.sent, lead.replied",
        "NURTURE_WEBHOOKS__ZAP__URL": "https://hooks.zap.example/1/",
        "NURTURE_WEBHOOKS__ZAP__SECRET": SECRET})
    assert s.webhooks.max_age_h == 48
    assert s.webhooks.endpoints["crm"].events == ("mail.sent", "lead.replied")
    assert s.webhooks.endpoints["zap"].url == "https://hooks.zap.example/1/"


def test_the_secret_is_redacted_everywhere_it_could_be_printed(tmp_path: Path) -> None:
    s = load_settings(write(tmp_path), environ={"NURTURE_WEBHOOKS__CRM__SECRET": SECRET})
    assert SECRET not in repr(s) and SECRET not in str(describe(s))
    assert describe(s)["webhooks"]["endpoints"]["crm"]["secret"] == "********"


def test_a_secret_in_the_file_is_refused_naming_the_variable(tmp_path: Path) -> None:
    path = write(tmp_path, FILE + f'secret = "{SECRET}"\n')
    with pytest.raises(ConfigError) as info:
        load_settings(path, environ={})
    assert "NURTURE_WEBHOOKS__CHAT__SECRET" in str(info.value) and SECRET not in str(info.value)


@pytest.mark.parametrize("env,needle", [
    ({}, "webhooks.crm.secret: missing: set NURTURE_WEBHOOKS__CRM__SECRET"),
    ({"NURTURE_WEBHOOKS__CRM__SECRET": "s3cr3t"}, "webhooks.crm.secret: must start with whsec_"),
    ({"NURTURE_WEBHOOKS__CRM__SECRET": "whsec_%%%"}, "webhooks.crm.secret: must be whsec_ followed"),
    ({"NURTURE_WEBHOOKS__CRM__URL": "ftp://crm.example/x"}, "webhooks.crm.url"),
    ({"NURTURE_WEBHOOKS__CRM__URL": "file:///etc/passwd"}, "webhooks.crm.url"),
    ({"NURTURE_WEBHOOKS__CRM__EVENTS": "lead.sneezed"}, "unknown event type 'lead.sneezed'"),
    ({"NURTURE_WEBHOOKS__CRM__TIMEOUT_S": "0"}, "webhooks.crm.timeout_s"),
    ({"NURTURE_WEBHOOKS__CRM__COLOUR": "red"}, "webhooks.crm.colour: unknown key"),
    ({"NURTURE_WEBHOOKS__MAX_AGE_H": "-1"}, "webhooks.max_age_h"),
    ({"NURTURE_WEBHOOKS__RETRIES": "3"}, "webhooks.retries: unknown key"),
])
def test_a_bad_webhook_value_is_refused_naming_the_key(tmp_path: Path, env: dict[str, str],
                                                       needle: str) -> None:
    environ = {"NURTURE_WEBHOOKS__CRM__SECRET": SECRET, **env}
    if not env:
        environ = {}
    with pytest.raises(ConfigError) as info:
        load_settings(write(tmp_path), environ=environ)
    assert needle in str(info.value)
    assert "s3cr3t" not in str(info.value)


def test_nurture_webhooks_secret_prints_a_fresh_valid_secret_that_signs_and_verifies() -> None:
    import subprocess
    import sys
    from datetime import UTC, datetime

    from standardwebhooks.webhooks import Webhook

    from worker.adapters.webhook_http import signed_headers
    from worker.domain.webhook_retry import check_secret

    # When the command runs twice (no configuration needed)
    outs = [subprocess.run([sys.executable, "-m", "worker", "webhooks", "secret"],
                           capture_output=True, text=True, check=True, env={
                               "PATH": "/usr/bin:/bin", "PYTHONPATH": str(Path.cwd()),
                               "NURTURE_CONFIG": "/nonexistent.toml"}).stdout.strip()
            for _ in range(2)]
    # Then each is a new secret of the Standard Webhooks form, usable by a receiver
    assert outs[0] != outs[1] and all(check_secret(o) is None for o in outs)
    headers = signed_headers(outs[0], "msg_1", datetime.now(UTC), '{"type":"ping"}')
    assert Webhook(outs[0]).verify('{"type":"ping"}', headers) == {"type": "ping"}
    assert load_settings(environ={"NURTURE_WEBHOOKS__X__URL": "https://x.example/",
                                  "NURTURE_WEBHOOKS__X__SECRET": outs[0]}).webhooks.endpoints["x"]
