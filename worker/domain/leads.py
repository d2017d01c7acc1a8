"""Lead data in, clean lead data out: address syntax, control characters, known columns."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import email_validator
import idna

from worker.domain import schedule
from worker.domain.model import LEAD_COLUMNS
from worker.errors import LeadError

#: Reserved names that are still fine for tests and demos (SPEC: Leads).
_ACCEPTED_RESERVED = ("test", "example", "invalid", "localhost")
_CONTROL_RE = re.compile(r"[\x00\r\n]")
#: C0 (but TAB, which spreadsheets use), DEL and C1: they act on a terminal (ESC sequences).
_TERMINAL_RE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f]")
#: SMTP's limit on a local part (RFC 5321 4.5.3.1.1), in octets.
MAX_LOCAL_OCTETS = 64
_INT_RE = re.compile(r"^-?[0-9]{1,15}$")  # ASCII digits only: "١٢" stays text
_FLOAT_RE = re.compile(r"^-?[0-9]{1,15}\.[0-9]{1,15}$")
_UNPRINTABLE_RE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_FIELD_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
MAX_VALUE_LENGTH = 2000
#: The lengths the database keeps for the lead's own columns (other fields: MAX_VALUE_LENGTH).
COLUMN_LENGTHS = {"first_name": 200, "last_name": 200, "company": 200, "title": 200,
                  "phone": 64, "timezone": 64, "country": 64, "owner": 320, "source": 200}
FREE_MAIL_DOMAINS = frozenset("""
gmail.com googlemail.com yahoo.com yahoo.co.uk yahoo.fr yahoo.de ymail.com hotmail.com
hotmail.co.uk hotmail.fr hotmail.de outlook.com live.com msn.com aol.com icloud.com me.com
mac.com gmx.de gmx.net gmx.com web.de t-online.de proton.me protonmail.com mail.com yandex.ru
mail.ru qq.com 163.com orange.fr free.fr laposte.net libero.it virgilio.it fastmail.com zoho.com
hey.com tutanota.com comcast.net verizon.net
""".split())


def printable(text: str) -> str:
    """Text from a file or request made safe to print: control characters and direction
    overrides shown as escapes, so they cannot act on the operator's terminal."""
    return _UNPRINTABLE_RE.sub(lambda m: f"\\x{ord(m.group()):02x}" if ord(m.group()) < 256
                               else f"\\u{ord(m.group()):04x}", text)


def normalize_email(raw: Any, field_name: str = "email") -> str:
    """The canonical form of an address (lowercase). Syntax only, no DNS. Raises LeadError."""
    if not isinstance(raw, str) or not raw.strip():
        raise LeadError(field_name, "an email address is required")
    if _CONTROL_RE.search(raw):
        raise LeadError(field_name, "contains control characters (CR, LF or NUL)")
    value = raw.strip()
    if _TERMINAL_RE.search(value):
        raise LeadError(field_name, f"contains control characters ({_first_control(value)})")
    local, at, domain = value.rpartition("@")
    if not at or not local:
        raise LeadError(field_name, f"not an email address: {printable(value)!r}")
    if len(local.encode("utf-8", "surrogatepass")) > MAX_LOCAL_OCTETS:
        raise LeadError(field_name, f"the part before @ is longer than {MAX_LOCAL_OCTETS} "
                        "bytes (the SMTP limit)")
    domain = canonical_domain(domain)
    labels = domain.split(".")
    probe_domain = domain
    if labels[-1] in _ACCEPTED_RESERVED:
        # email-validator refuses these names; check the rest of the address against a
        # stand-in domain of the same shape.
        probe_domain = ".".join([*labels[:-1], "example"]) if len(labels) > 1 else "localhost.example"
    try:
        result = email_validator.validate_email(
            f"{local}@{probe_domain}", check_deliverability=False, test_environment=True,
            allow_smtputf8=True)
    except email_validator.EmailNotValidError as exc:
        raise LeadError(field_name, f"not a valid email address {printable(value)!r}: "
                        f"{exc}") from None
    return f"{result.local_part}@{domain}".lower()


def canonical_domain(domain: str) -> str:
    """The one form a domain is stored, matched and suppressed in: lowercase Unicode
    (IDNA 2008 with UTS 46 mapping, as email-validator normalises), so ``xn--mller-kva.example``
    and ``Müller.example`` are the same. A name IDNA refuses is returned lowercased (the
    address check then refuses it)."""
    domain = domain.strip().rstrip(".").lower()
    if domain.isascii() and "xn--" not in domain:
        return domain
    try:
        return idna.decode(idna.encode(domain, uts46=True))
    except (idna.IDNAError, UnicodeError):
        return domain


def ascii_domain(domain: str) -> str:
    """The A-label (``xn--``) spelling of a domain, or the domain itself if IDNA refuses it."""
    if domain.isascii():
        return domain
    try:
        return idna.encode(domain, uts46=True).decode("ascii")
    except (idna.IDNAError, UnicodeError):
        return domain


def spellings(email_or_domain: str) -> list[str]:
    """Both spellings of an address or domain (Unicode and ``xn--``), canonical first:
    suppression and lookups match either, whichever was stored."""
    local, at, domain = email_or_domain.rpartition("@")
    unicode_form = canonical_domain(domain)
    forms = [f"{local}{at}{d}".lower() for d in (unicode_form, ascii_domain(unicode_form))]
    return list(dict.fromkeys(forms))


def _first_control(text: str) -> str:
    found = _TERMINAL_RE.search(text)
    return f"U+{ord(found.group()):04X}" if found else "none"


def is_free_mail(domain: str) -> bool:
    return domain.lower() in FREE_MAIL_DOMAINS


def _coerce(value: Any) -> Any:
    if isinstance(value, str):
        text = value.strip()
        if _INT_RE.match(text):
            return int(text)
        if _FLOAT_RE.match(text):
            return float(text)
        return text
    return value


def check_text(name: str, value: Any) -> str | None:
    """A text field: control characters rejected, length limited, blank -> None."""
    if value is None:
        return None
    if isinstance(value, (dict, list)):
        raise LeadError(printable(name), "must be text")
    if isinstance(value, float) and not math.isfinite(value):
        # 1e999 in JSON is infinity: no JSON export could write it back.
        raise LeadError(printable(name), "must be a finite number")
    text = str(value)
    if _CONTROL_RE.search(text):
        raise LeadError(printable(name), "contains control characters (CR, LF or NUL)")
    text = text.strip()
    if _TERMINAL_RE.search(text):
        raise LeadError(printable(name), f"contains control characters ({_first_control(text)})")
    limit = COLUMN_LENGTHS.get(name, MAX_VALUE_LENGTH)
    if len(text) > limit:
        raise LeadError(printable(name), f"is longer than {limit} characters")
    return text or None


def split_tags(value: Any) -> list[str]:
    if value is None or value == "":
        return []
    items = value if isinstance(value, list) else re.split(r"[,;|]", str(value))
    tags = []
    for item in items:
        tag = check_text("tags", item)
        if tag:
            tags.append(tag.lower())
    return sorted(set(tags))


@dataclass
class LeadInput:
    """A validated lead record ready for the store."""

    email: str
    columns: dict[str, str | None] = field(default_factory=dict)
    tags: list[str] = field(default_factory=list)
    fields: dict[str, Any] = field(default_factory=dict)


def parse_lead(data: Mapping[str, Any]) -> LeadInput:
    """Validate one lead record (a CSV row, a JSON object, an API body). Known columns get
    their place; anything else is kept under ``fields``. Raises LeadError naming the field."""
    email = normalize_email(data.get("email"))
    lead = LeadInput(email=email)
    seen: dict[str, str] = {}  # field key -> the name it was given by
    for key, value in data.items():
        name = str(key).strip()
        if name == "email" or name == "" or value is None:
            continue
        if name in LEAD_COLUMNS:
            text = check_text(name, value)
            if name == "owner" and text:
                text = normalize_email(text, "owner")
            if name == "timezone" and text:
                try:
                    schedule.zone(text)
                except ValueError as exc:
                    raise LeadError("timezone", str(exc)) from None
            if name == "country" and text:
                text = text.upper()
            lead.columns[name] = text
        elif name == "tags":
            lead.tags = split_tags(value)
        elif name == "fields":
            if not isinstance(value, Mapping):
                raise LeadError("fields", "must be an object of name: value")
            for sub, sub_value in value.items():
                _put_field(lead.fields, seen, str(sub), _field_value(f"fields.{sub}", sub_value))
        elif name in ("campaign", "source", "consent_at"):
            continue  # intake metadata, handled by the caller
        else:
            _put_field(lead.fields, seen, name, _field_value(name, value))
    return lead


def _put_field(fields: dict[str, Any], seen: dict[str, str], name: str, value: Any) -> None:
    """Store a custom field under its key; two names for one key are refused (never merged),
    and an empty value is no field at all (nothing to store or show)."""
    key = _field_name(name)
    if key in seen and seen[key] != name:
        raise LeadError(printable(name), f"names the same field as {printable(seen[key])!r} "
                        f"({key}); send one of them")
    seen[key] = name
    if value is not None:
        fields[key] = value


def field_key(name: str) -> str:
    """The key a custom field name is stored under (``A-b``, ``a_b``, ``a b`` -> ``a_b``);
    LeadError for a name that cannot be one."""
    return _field_name(name)


def _field_name(name: str) -> str:
    clean = re.sub(r"[^A-Za-z0-9_]+", "_", name.strip()).strip("_").lower()
    usable = clean if not clean[:1].isdigit() else "_" + clean
    if not clean or _UNPRINTABLE_RE.search(name) or not _FIELD_NAME_RE.match(usable):
        raise LeadError(printable(name), "is not a usable field name")
    return clean if not clean[0].isdigit() else "_" + clean


def _field_value(name: str, value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        # 1e999 in JSON is infinity: no JSON export could write it back.
        raise LeadError(printable(name), "must be a finite number")
    if isinstance(value, (bool, int, float)):
        return value
    text = check_text(name, value)
    return _coerce(text) if text is not None else None


def parse_field_args(pairs: list[str]) -> dict[str, Any]:
    """``["k=v", ...]`` from the command line. Raises LeadError."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, eq, value = pair.partition("=")
        if not eq or not key.strip():
            raise LeadError(pair, "expected NAME=VALUE")
        out[key.strip()] = value
    return out
