"""A test Dovecot that accepts only OAuth 2.0 bearer tokens (XOAUTH2 and OAUTHBEARER).

Same harness as ``tests.servers.dovecot.Dovecot`` (temp dir, own port, Maildir), but the
passdb is Dovecot's ``oauth2`` driver: each login's token is checked by an RFC 7662
``POST`` to the test authorization server's ``/introspect``, whose ``username`` must be the
login name. Passwords are refused: PLAIN and LOGIN are not offered.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from tests.servers.dovecot import Dovecot

if TYPE_CHECKING:
    from imapclient import IMAPClient


class OAuthDovecot(Dovecot):
    """Dovecot with ``passdb { driver = oauth2 }`` against ``introspection_url``."""

    def __init__(self, introspection_url: str, *, idle: bool = True, ssl: bool = False) -> None:
        self.introspection_url = introspection_url
        super().__init__(idle=idle, ssl=ssl)

    def _setup(self) -> None:
        super()._setup()
        oauth_conf = self.tmp / "dovecot-oauth2.conf.ext"
        oauth_conf.write_text(
            f"introspection_url = {self.introspection_url}\n"
            "introspection_mode = post\n"
            # There is no tokeninfo endpoint: every check is an introspection.
            "force_introspection = yes\n"
            "username_attribute = username\n"
            "active_attribute = active\n"
            "active_value = true\n"
            "timeout_msecs = 5000\n")
        oauth_conf.chmod(0o644)
        text = self.config.read_text()
        text = text.replace("auth_mechanisms = plain login\n",
                            "auth_mechanisms = xoauth2 oauthbearer\n")
        text, count = re.subn(
            r"passdb \{\n  driver = passwd-file\n.*?\n\}\n",
            "passdb {\n  driver = oauth2\n  mechanisms = xoauth2 oauthbearer\n"
            f"  args = {oauth_conf}\n}}\n", text, flags=re.S)
        if count != 1:
            raise RuntimeError("the base Dovecot config changed: no passwd-file passdb found")
        self.config.write_text(text)

    def oauth_client(self, username: str, access_token: str,
                     mech: str = "XOAUTH2") -> IMAPClient:
        """A logged-in imapclient connection using a bearer token."""
        from imapclient import IMAPClient

        client = IMAPClient(self.host, self.port, ssl=False, timeout=10)
        try:
            if mech == "OAUTHBEARER":
                client.oauthbearer_login(username, access_token)
            else:
                client.oauth2_login(username, access_token, mech=mech)
        except Exception:
            client.shutdown()
            raise
        return client
