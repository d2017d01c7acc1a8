"""The access-token sources of the mailboxes that sign in with OAuth 2.0, fed from the
database: the refresh token is read (opened) from ``OAuthTokens`` when one is needed, a
rotated one is stored at once, and after a refusal a new `nurture mailbox login` is picked
up on the next try without restarting the worker."""

from __future__ import annotations

from collections.abc import Callable

from worker.adapters.db.oauth_tokens import OAuthTokens
from worker.adapters.oauth2 import TokenSet, TokenSource, token_client
from worker.config import ImapSettings, Settings, SmtpSettings
from worker.config_mail import OAuth2Settings, oauth2_for
from worker.errors import GrantRevokedError
from worker.mailer import DEFAULT_MAILBOX


class StoredTokenSource(TokenSource):
    """A ``TokenSource`` whose refresh token lives (sealed) in the database."""

    def __init__(self, name: str, settings: OAuth2Settings, prefix: str, store: OAuthTokens,
                 skew_s: float = 120.0) -> None:
        client = token_client(settings, account=name, prefix=prefix)
        super().__init__(client, skew_s=skew_s,
                         on_refresh_token=lambda token: store.store(name, "", token))
        self.name = name
        self._store = store

    def _renew(self) -> TokenSet:
        if self._client.endpoints.flow != "client_credentials":
            stored = self._store.refresh_token(self.name)
            if stored is not None:
                self._refresh_token = stored  # the latest login or rotation, by any worker
        try:
            return super()._renew()
        except GrantRevokedError:
            self._refresh_token = None  # only a new sign-in helps
            raise


def oauth_accounts(settings: Settings) -> dict[str, tuple[OAuth2Settings, str, str]]:
    """Mailboxes that sign in with OAuth 2.0 (SMTP or IMAP): their registration, its key
    prefix and the address they sign in as."""
    found: dict[str, tuple[OAuth2Settings, str, str]] = {}
    pairs: list[tuple[str, SmtpSettings, ImapSettings, OAuth2Settings | None]] = [
        (DEFAULT_MAILBOX, settings.smtp, settings.imap, None)]
    pairs += [(name, mb.smtp, mb.imap, mb.oauth2) for name, mb in settings.mailboxes.items()]
    for name, smtp, imap, own in pairs:
        for account in (smtp, imap):
            if account.auth == "oauth2" and name not in found:
                registration, prefix = oauth2_for(settings.oauth2, own,
                                                  None if own is None else name)
                found[name] = (registration, prefix, account.username)
    return found


def token_sources(settings: Settings, store: Callable[[], OAuthTokens]
                  ) -> dict[str, TokenSource]:
    """One shared source per OAuth 2.0 mailbox (SMTP and IMAP use the same tokens)."""
    return {name: StoredTokenSource(name, registration, prefix, store())
            for name, (registration, prefix, _) in oauth_accounts(settings).items()}
