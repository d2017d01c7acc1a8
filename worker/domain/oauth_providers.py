"""OAuth 2.0 provider presets: where to send a person to sign in, where to get tokens, which scopes.

Pure. ``endpoints`` turns a mailbox's ``oauth2`` settings into URLs and scopes, filling
Microsoft's and Google's values and checking that ``custom`` names its own. Errors name the
settings key (``prefix`` is e.g. ``oauth2`` or ``mailboxes.sales.oauth2``).
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from worker.errors import ConfigError

PROVIDERS = ("microsoft", "google", "custom")
FLOWS = ("authorization_code", "client_credentials")

MICROSOFT_AUTHORITY = "https://login.microsoftonline.com/{tenant}/oauth2/v2.0"
MICROSOFT_SCOPES = ("https://outlook.office.com/IMAP.AccessAsUser.All",
                    "https://outlook.office.com/SMTP.Send", "offline_access")
MICROSOFT_APP_SCOPES = ("https://outlook.office365.com/.default",)
GOOGLE_AUTHORIZE_URL = "https://accounts.google.com/o/oauth2/v2/auth"
GOOGLE_TOKEN_URL = "https://oauth2.googleapis.com/token"
GOOGLE_SCOPES = ("https://mail.google.com/",)


@dataclass(frozen=True)
class OAuthEndpoints:
    """Everything the token client needs to know about a provider for one flow."""

    flow: str
    authorize_url: str  # empty for client_credentials
    token_url: str
    scopes: tuple[str, ...]
    # Extra query parameters of the authorize URL (Google needs them for a refresh token).
    authorize_params: tuple[tuple[str, str], ...] = ()


def endpoints(provider: str, flow: str = "authorization_code", *, tenant: str = "",
              authorize_url: str = "", token_url: str = "", scopes: tuple[str, ...] = (),
              prefix: str = "oauth2") -> OAuthEndpoints:
    """Resolve a provider preset; explicit URLs and scopes override it. Raises ConfigError."""
    if provider not in PROVIDERS:
        raise ConfigError(f"{prefix}.provider",
                          f"must be one of {', '.join(PROVIDERS)} (got {provider!r})")
    if flow not in FLOWS:
        raise ConfigError(f"{prefix}.flow", f"must be one of {', '.join(FLOWS)} (got {flow!r})")
    params: tuple[tuple[str, str], ...] = ()
    preset_scopes: tuple[str, ...]
    if provider == "microsoft":
        if flow == "client_credentials" and tenant in ("", "common", "organizations",
                                                        "consumers"):
            raise ConfigError(f"{prefix}.tenant", "client_credentials needs your tenant ID or "
                              "domain (not common/organizations)")
        base = MICROSOFT_AUTHORITY.format(tenant=tenant or "organizations")
        preset_auth, preset_token = f"{base}/authorize", f"{base}/token"
        preset_scopes = MICROSOFT_APP_SCOPES if flow == "client_credentials" else MICROSOFT_SCOPES
    elif provider == "google":
        if flow == "client_credentials":
            raise ConfigError(f"{prefix}.flow", "Google does not offer client_credentials for "
                              "mail; use authorization_code")
        preset_auth, preset_token, preset_scopes = GOOGLE_AUTHORIZE_URL, GOOGLE_TOKEN_URL, \
            GOOGLE_SCOPES
        # Without these Google returns no refresh token on a second sign-in.
        params = (("access_type", "offline"), ("prompt", "consent"))
    else:
        preset_auth, preset_token, preset_scopes = "", "", ()
        needed = [("token_url", token_url), ("scopes", scopes)]
        if flow == "authorization_code":
            needed.insert(0, ("authorize_url", authorize_url))
        for key, value in needed:
            if not value:
                raise ConfigError(f"{prefix}.{key}", "required for provider = \"custom\"")
    result = OAuthEndpoints(
        flow=flow,
        authorize_url="" if flow == "client_credentials" else (authorize_url or preset_auth),
        token_url=token_url or preset_token, scopes=tuple(scopes) or preset_scopes,
        authorize_params=params)
    for key in ("authorize_url", "token_url"):
        url = getattr(result, key)
        if url and not _is_url(url):
            raise ConfigError(f"{prefix}.{key}", f"must be an http(s) URL (got {url!r})")
    return result


def _is_url(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme in ("https", "http") and bool(parts.netloc)
