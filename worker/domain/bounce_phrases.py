"""Phrase tables for recognising bounces and reading why they bounced.

Patterns are regular-expression fragments over folded text (lower case, no accents,
whitespace collapsed; see :func:`worker.domain.phrases.fold_flat`). The reason tables are
ordered: the first category whose pattern matches the diagnostic wins, so specific causes
("mailbox full") come before generic ones ("rejected"). The wording comes from the
notices of Postfix, Sendmail, Exim, qmail, Exchange/Office 365, Gmail, Yahoo, AOL, Lotus
Domino, Courier, IIS, Novell and others.
"""

from __future__ import annotations

import re

from worker.domain.phrases import Table


def _alt(*alternatives: str) -> str:
    """Regex alternatives joined into one fragment (each line of a table is one wording)."""
    return "|".join(alternatives)


def _any(*alternatives: str) -> re.Pattern[str]:
    """A compiled regex matching any of the alternatives."""
    return re.compile("(" + _alt(*alternatives) + ")")


#: Local parts and display names of the senders of delivery notices.
DAEMON_SENDER = re.compile(
    r"^(mailer[-_.]?daemon|mail[-_.]?daemon|mail[-_.]?delivery[-_.]?(system|subsystem|service)?"
    r"|post[-_.]?master|mdaemon|mailadmin|mail[-_.]?admin|nobody|bounce[sd]?|dsn"
    r"|smtp[-_.]?gateway|mail[-_.]?gateway"
    # Mailing-list managers (ezmlm, fml, Mailman, Majordomo) reject posts from these.
    r"|owner-[\w.-]+|[\w.-]+-(admin|owner|bounces?))$"
)

#: Display names of the senders of delivery notices.
DAEMON_NAME = _any(
    r"mail delivery (system|subsystem|service)", r"mailer[- ]daemon", r"postmaster",
    r"mail administrator", r"mail system", r"delivery status notification", r"microsoft outlook",
    r"internet mail delivery", r"mail router", r"systemadministrator", r"mail transport system",
)

#: Subjects of delivery failure and delay notices.
BOUNCE_SUBJECT = _any(
    r"undeliver", r"undelivered", r"non[- ]?deliver", r"nondeliverable", r"not delivered",
    r"delivery (status notification|failure|failed|problem|report|notification)",
    r"returned mail", r"return(ed|ing)? to sender", r"mail (delivery )?failed",
    r"not (a )?member", r"loop alert", r"failure notice", r"delivery has failed",
    r"could not (be )?deliver", r"could not send", r"couldn't be delivered", r"unable to deliver",
    r"delayed mail", r"delivery delayed", r"mail system error", r"postmaster notify",
    r"message not delivered", r"warning: could not", r"delivery notification",
    r"undelivered mail", r"mail could not be delivered", r"error sending message",
    r"unzustellbar", r"nicht zustellbar", r"non remis", r"non distribuable",
    r"echec de (la )?remise", r"onbestelbaar", r"no se (ha )?pudo entregar", r"no entregado",
    r"non recapitabile", r"mancato recapito", r"nao entregue", r"nao foi possivel entregar",
    r"kunde inte levereras", r"ikke leveret", r"ei voitu toimittaa", r"niedostarczon",
    r"nie dostarczono", r"メール送信エラー", r"配信できません", r"送信エラー", r"メールエラー",
    r"エラー通知", r"error message",
    r"mail error", r"delivery error", r"returned message", r"bounce",
)

#: Sentences of delivery notices (the first part of the text).
BOUNCE_BODY = _any(
    r"this is the mail system at host",
    r"i'm sorry to have to inform you that your message could not",
    r"this message was created automatically by mail delivery software",
    r"delivery to the following recipients? failed",
    (r"the following (message|address(es)?|recipients?) (to "
     r".{0,80})?(was|were|had|has|could) (undeliverable|not be delivered|permanent "
     r"fatal errors|failed)"),
    r"your message did not reach some or all of the intended recipients",
    r"could not be delivered to (one or more|the following|all) recipients?",
    r"hi\. this is the qmail-send program", r"the original message was received at",
    r"permanent fatal errors", r"delivery has failed to these recipients",
    r"unable to deliver (your )?message to the following", r"message could not be delivered",
    r"could not be delivered to", r"(you are|is) not a member of",
    r"not a member of (this|the) (mailing )?list",
    r"your message (could not|cannot|wasn't|was not|couldn't) be delivered",
    r"was not delivered to", r"delivery to the following recipient has been delayed",
    r"has not yet been delivered", r"could not send message for past", r"cannot send message for",
    r"message will be retried", r"will continue to try",
    r"a message that you sent could not be delivered", r"this is a permanent error",
    r"this is a delivery status notification", r"returned mail: see transcript",
    r"transcript of session follows", r"undeliverable message", r"delivery failure",
    r"mail delivery failed", r"message delivery failed", r"unable to deliver",
    r"failed to deliver", r"the mail server .{0,40} rejected",
    r"your e-?mail (to .{0,80})?(couldn't|could not|can't|cannot) be delivered",
    r"message not delivered",
    r"the following addresses had (permanent|transient) (fatal )?errors",
    r"delivery to the following recipients was aborted",
    r"sorry, we were unable to deliver your message", r"reporting-mta:",
    r"smtp error from remote (mail )?server", r"this report relates to a message you sent",
    r"undelivered mail returned to sender", r"remote (host|server) (said|replied|returned)",
    r"the error that the other server returned", r"your message wasn't delivered",
    r"ihre nachricht konnte nicht zugestellt werden", r"konnte nicht zugestellt werden",
    r"votre message n'a pas pu etre (remis|delivre)", r"no se ha podido entregar",
    r"non e stato possibile recapitare", r"kon niet worden afgeleverd", r"nao pode ser entregue",
    r"kunde inte levereras",
)

#: Sentences that on their own say the address does not exist.
HARD_WORDS = _any(
    r"user unknown", r"unknown user", r"no such user", r"not a valid user", r"user not found",
    r"user does not exist", r"mailbox unavailable", r"mailbox not found", r"no such mailbox",
    r"mailbox does not exist", r"address does not exist", r"recipient unknown",
    r"unknown recipient", r"invalid recipient", r"host or domain name not found",
    r"domain not found", r"does not exist", r"no mailbox here",
)

#: Sentences that on their own say the mailbox cannot take mail now.
SOFT_WORDS = _any(
    r"mailbox (is )?full", r"over ?quota", r"quota exceeded", r"insufficient (disk )?space",
    r"message (is )?too (large|big)", r"could not be delivered for", r"connection timed out",
    r"temporar(y|ily) (failure|unavailable)",
)

#: Delay warnings: delivery is still being retried, so the address may well work.
DELAY = _any(
    r"delivery (to the following recipients? )?(has been|is|was) delayed", r"delayed mail",
    r"still being retried", r"will (continue to )?(try|retry)", r"message will be retried",
    r"has not yet been delivered", r"warning: could not send", r"could not send message for past",
    r"this is a warning message only", r"delivery delayed", r"you do not need to resend",
    r"not been delivered yet", r"will keep trying", r"mail (is|was) delayed",
    r"\bdelayed\b.{0,40}\bretry",
)

#: Why a message bounced, most specific first: (category, pattern).
REASONS: Table = (
    ("mailbox_full", _alt(
        r"mailbox (is )?(full|over quota|exceeds|size limit)",
        r"quota (exceeded|exceed|violation)", r"over ?quota",
        r"exceeded (the |his |her |their )?(storage|quota|mailbox)",
        r"insufficient (disk |storage )?space", r"disk quota", r"mail ?folder is full",
        r"(inbox|mailbox|account) is full", r"full mailbox", r"not enough (disk |storage )?space",
        r"out of storage", r"storage (allocation|limit|quota)", r"user has too many messages",
        r"mailbox full", r"boite (du destinataire )?pleine", r"postfach (ist )?voll",
        r"space has been used up", r"would exceed (the )?(maximum|quota)",
    )),
    ("too_big", _alt(
        r"message (is )?too (large|big)", r"(message|mail) size (exceeds|too large|limit)",
        r"exceeds (the )?(maximum|max|fixed) (message )?size", r"size (limit )?exceed",
        r"too large for", r"message length exceeds", r"size of the message", r"message exceeds",
        r"message too long", r"exceeded the max(imum)? (message )?size",
        r"larger than the (current )?(system )?limit", r"\bsize limit\b", r"class=size",
    )),
    ("expired", _alt(
        r"could not be delivered for", r"retry time(out)? (not reached|exceeded)",
        r"message (has )?expired", r"delivery time expired",
        r"(too long|timed out) in (the )?queue", r"cannot send message for",
        r"could not send message for past", r"in the queue too long",
        r"maximum (retry|delivery) time", r"expired after", r"queue (lifetime|timeout)",
        r"deferred.{0,60}(days|hours)", r"message timed out", r"was not delivered within",
        r"(retry|delivery) (period|timeout) expired", r"unable to deliver.{0,30}within",
    )),
    ("suspend", _alt(
        (r"(is|has been|was|currently) (temporarily "
         r")?(suspended|disabled|deactivated|inactive|frozen|locked|blocked by the "
         r"provider)"),
        r"account (is )?(suspended|disabled|deactivated|inactive|expired|closed|locked)",
        r"mailbox (is )?(disabled|inactive|suspended|locked)", r"inactive (account|mailbox|user)",
        r"user (account )?(is )?(disabled|suspended|inactive)", r"account has been disabled",
        r"temporar(y|ily) locked", r"archived recipient", r"deactivated mailbox",
    )),
    ("has_moved", _alt(
        r"(user|recipient|address|mailbox) has moved", r"has moved to",
        r"no longer (available|valid) at this address",
    )),
    ("norelay", _alt(
        r"relay(ing)? (access )?(denied|not permitted|prohibited)",
        r"not (permitted|allowed|authori[sz]ed) to relay", r"unable to relay", r"we do not relay",
        r"relay not allowed", r"no relaying", r"relaying (is )?not allowed",
        r"isn't in my list of allowed rcpthosts", r"not in my list of allowed rcpthosts",
        r"relay attempt", r"not configured to relay",
    )),
    ("rejected", _alt(
        (r"sender (address )?(rejected|denied|refused|blocked|not allowed|invalid|verify "
         r"failed|verification failed)"),
        r"invalid sender", r"sender (domain|address) (does not|doesn'?t) exist",
        r"domain of sender address", r"bad sender", r"sender is (not|un)",
        r"mail from .{0,60}(rejected|refused|denied|not allowed)",
        r"rejected (the )?(sender|envelope sender)",
        r"envelope (sender|from) (rejected|refused|invalid)", r"from address (is )?(not|in)",
        r"unverified sender", r"batv", r"null sender", r"provide a valid from",
        r"from:? (domain|header|address) (is )?invalid", r"sender domain must exist",
    )),
    ("auth", _alt(
        r"\bspf\b", r"\bdkim\b", r"\bdmarc\b", r"sender policy framework",
        r"unauthenticated (email|mail|sender)",
        r"authentication (checks? )?(failed|failure|required|results)", r"not authenticated",
        r"failed (to pass|the) (authentication|sender)", r"domainkeys",
    )),
    ("user_unknown", _alt(
        r"user unknown", r"unknown user",
        r"no such (user|recipient|mailbox|person|address|account)",
        r"user (name )?(not found|doesn'?t exist|does not exist|is unknown|not known)",
        (r"recipient (address )?(unknown|not found|does not exist|doesn'?t "
         r"exist|invalid|rejected: (user unknown|unknown user|invalid user|access "
         r"denied|undeliverable address))"),
        r"unknown (recipient|mailbox|address|e-?mail address|local[- ]?part|or illegal alias)",
        r"invalid (recipient|mailbox|user|address)",
        (r"(mailbox|address|account|e-?mail account|user|recipient|addressee) (is "
         r")?(unavailable|not available|not found|does not exist|doesn'?t "
         r"exist|unknown|invalid)"),
        r"not a (valid|known) (user|recipient|mailbox|address)", r"is not a known user",
        r"no mailbox (here|by that name|found|available)", r"does not (exist|have an account)",
        r"doesn'?t (exist|have a)", r"there is no one at this address",
        r"address (is )?(not|no longer) valid", r"bad (destination )?(mailbox|recipient|address)",
        r"badrcptto", r"not listed in (the )?(domino )?directory", r"addressee unknown",
        r"no account by that name", r"not our customer", r"recipientnotfound",
        r"recipient not found", r"resolver\.adr", r"unrouteable address .{0,20}user",
        r"account (that you tried to reach )?(does not exist|is disabled)",
        r"utilisateur inconnu", r"benutzer (ist )?unbekannt", r"unbekannter (empfanger|benutzer)",
        r"empfanger (ist )?unbekannt", r"no existe", r"usuario (desconocido|inexistente)",
        r"utente (sconosciuto|inesistente)", r"nessun utente",
        r"destinatario (sconosciuto|inesistente|desconocido)", r"unknown to address",
        r"undeliverable address", r"mailbox (name )?not allowed",
        r"email address (is )?(wrong|not valid|invalid|could not be found)",
        r"not a valid mailbox", r"recipient is not local",
        r"(user|mailbox) (has )?(expired|been removed|been deleted)",
        r"no longer (exists|accepts mail|in use)", r"the user's email name is not found",
        r"no mail ?box available", r"bad[_ ]recipient", r"not an active address",
        r"user not listed", r"invalid final delivery userid", r"unknown or illegal alias",
        r"address (couldn'?t|could not) be found",
        r"check (if|that) (the )?(e-?mail )?address is correct",
    )),
    ("filtered", _alt(
        r"user reject", r"refused due to recipient preferences", r"message (was )?filtered",
        r"refuses? to (receive|accept)", r"is not accepting (any )?mail",
        r"only accepting mail from", r"blocked by the recipient",
        r"not accepting mail (from|with)", r"rejected by (the )?recipient\b(?! domain)",
        r"recipient has (rejected|refused)",
    )),
    ("ptr", _alt(
        r"reverse (dns|lookup|dns lookup|hostname)", r"\bptr\b", r"\brdns\b", r"dns ptr",
        r"no (reverse|ptr)", r"does not have a reverse", r"cannot find your hostname",
        r"hostname (verification|lookup) failed", r"client host .{0,60}(unknown|not found)",
        r"unresolvable (hostname|address)",
    )),
    ("not_compliant", _alt(
        r"rfc ?5322", r"rfc ?2822", r"rfc ?822", r"not (rfc|standard)[- ]compliant",
        r"does not comply with", r"message header.{0,40}(invalid|missing|malformed)",
        (r"(missing|invalid|malformed|multiple|duplicate) "
         r"(from|date|message-id|subject|to) (header|field)"),
        r"header (is )?(invalid|malformed|missing)", r"bare lf", r"8-?bit",
    )),
    ("reputation", _alt(
        r"reputation", r"sender score", r"low (sender )?score", r"poor (ip )?reputation",
    )),
    ("host_unknown", _alt(
        r"host (or domain name )?(not found|unknown)", r"unknown host",
        r"(domain|host) name (not found|lookup failed)",
        r"domain (not found|does not exist|doesn'?t exist|unknown)", r"no such domain",
        r"unknown domain", r"name or service not known", r"nxdomain",
        r"dns error.{0,40}(not found|domain)", r"unrouteable address",
        r"bad destination (system|host)", r"no mx (record|host)", r"mx (record )?lookup failed",
        r"host not found", r"domain name not found", r"unroutable (domain|address)",
        r"no route to (host|domain)", r"could not (find|resolve) (the )?(host|domain|mx)",
        r"dns lookup failure", r"host \S{1,80} not found", r"domain is not reachable",
        r"account or domain may not exist",
    )),
    ("not_accept", _alt(
        r"does not accept (e-?mail|mail)", r"not accepting (e-?mail|mail)", r"null mx",
        r"accepts no mail", r"this domain (does not|doesn'?t) (receive|accept)",
        r"no smtp service",
    )),
    ("virus", _alt(
        r"virus (detected|found|infected)", r"infected (with|by)",
        r"contains? (a |an )?(virus|malware)", r"malware (detected|found)", r"\btrojan\b",
        r"dangerous (attachment|content)", r"banned attachment",
        r"attachment.{0,40}(not allowed|blocked|rejected)",
    )),
    ("spam", _alt(
        r"\bspam", r"junk ?mail", r"unsolicited", r"bulk (e-?mail|mail)", r"uribl", r"surbl",
        r"looks like (spam|junk)",
        r"(content|message) (was )?(rejected|refused|blocked|considered)", r"content filter",
        r"(rejected|blocked) (for|as|due to) (content|policy)", r"high (spam|probability)",
        r"phish", r"suspicious",
    )),
    ("speeding", _alt(
        r"rate limit", r"too many (messages|mails|emails|recipients)", r"sending too (fast|much)",
        r"exceeded .{0,30}(rate|sending limit|limit)", r"throttl", r"slow down", r"rate of",
    )),
    ("too_many_conn", _alt(
        r"too many (connections|concurrent|sessions|simultaneous)",
        r"connection (limit|count) exceeded", r"max(imum)? (number of )?connections",
    )),
    ("blocked", _alt(
        r"block(ed|list|listed)", r"black ?list(ed)?", r"\brbl\b", r"dnsbl", r"spamhaus",
        r"spamcop", r"barracuda", r"sorbs", r"banned", r"denied (access|by policy)",
        r"access denied", r"client host .{0,80}rejected", r"not allowed to (send|connect)",
        (r"\b(ip|ip address|your host|your server|sending host) "
         r".{0,40}(listed|rejected|refused|denied)"),
        r"listed (in|on|at) .{0,30}(bl\b|rbl|dnsbl|spamhaus|spamcop|block|black)",
        r"refused to talk", r"(connection|service) refused", r"poor reputation",
        r"my name was rejected", r"helo command rejected", r"greeting (was )?rejected",
        r"not accepting (connections|mail) from (your|the sender)", r"your (ip|host|server)",
    )),
    ("policy", _alt(
        r"polic(y|ies)", r"prohibited", r"not (permitted|allowed|authori[sz]ed)",
        r"administrative(ly)? (prohibit|denied)",
        r"security (policy|violation|reasons|restriction)", r"forbidden", r"restricted",
        r"tls (is )?required", r"encryption required",
    )),
    ("system", _alt(
        r"system (error|config|failure|not available|problem)", r"internal (server )?error",
        r"local error", r"temporar(y|ily) (failure|error|unavailable|rejected|deferred)",
        r"try (again )?later", r"service (not available|unavailable|temporarily)",
        r"resources? (temporarily )?unavailable", r"insufficient system",
        r"loops? back to myself", r"mail (forwarding )?loop", r"too many hops", r"routing loop",
        r"mailer error", r"program exited", r"unexpected", r"i/o error", r"no message collected",
        r"protocol error", r"syntax error", r"command (not recognized|unrecognized)",
        r"lost connection", r"connection (timed out|reset|refused|closed|dropped|lost)",
        r"network (error|is unreachable)", r"name service error", r"timed out", r"timeout",
        r"could not connect", r"unable to connect", r"not responding", r"host unreachable",
        r"deferred", r"greylist",
    )),
    ("recipient_refused", _alt(
        r"recipient address rejected", r"recipient rejected", r"no valid recipients",
        r"invalid recipient",
    )),
)

#: Reasons that mean the address itself is dead.
HARD = frozenset({"user_unknown", "host_unknown", "not_accept", "has_moved", "recipient_refused"})
#: Reasons on the sender's side that become ``policy`` with a 5.7.x status.
POLICY = frozenset({"blocked", "spam", "virus", "auth", "ptr", "reputation", "policy",
                    "not_compliant", "rejected"})
