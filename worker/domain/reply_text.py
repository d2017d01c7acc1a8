"""Find the new part of a reply: the text above the quoted original and the signature.

Recognises the quote headers of common clients in the languages Nurture reads ("On ...
wrote:", "Am ... schrieb", "Le ... a écrit :", "El ... escribió:", "Il giorno ... ha
scritto:", "Op ... schreef", "Em ... escreveu:", "Den ... skrev", "W dniu ... pisze:",
"... kirjoitti:"), "-----Original Message-----" separators in those languages, Outlook
header blocks ("From: ... Sent: ..."), ``>`` quoted lines, and signatures ("-- ", "Sent
from my iPhone" and its translations).
"""

from __future__ import annotations

import re

from worker.domain.phrases import fold

#: Lines searched for a quote marker; the new text of a reply is near the top.
MAX_SCAN_LINES = 600

_WROTE = re.compile(
    r"^(on\b.{0,300}\bwrote|am\b.{0,300}\bschrieb\b.{0,120}|le\b.{0,300}\ba ecrit"
    r"|el\b.{0,300}\bescribio|il\b.{0,300}\bha scritto|op\b.{0,300}\bschreef\b.{0,120}"
    r"|em\b.{0,300}\bescreveu|.{0,300}\bskrev\b.{0,150}"
    r"|(w dniu|dnia)\b.{0,300}\b(pisze|napisal\(a\)|napisal|napisala)"
    r"|.{0,300}\bkirjoitti)\s*:?\s*$"
    r"|^.{0,150}\d.{0,150}<[^<>\s]+@[^<>\s]+>\s*:\s*$"
)
_SEPARATOR = re.compile(
    r"^[-_=* ]{2,}\s*(original message|ursprungliche nachricht|message d'origine|mensaje original"
    r"|messaggio originale|oorspronkelijk bericht|mensagem original|ursprungligt meddelande"
    r"|oprindelig meddelelse|opprinnelig melding|alkuperainen viesti|wiadomosc oryginalna"
    r"|forwarded message|weitergeleitete nachricht|message transfere|mensaje reenviado"
    r"|messaggio inoltrato|doorgestuurd bericht|mensagem encaminhada|vidarebefordrat meddelande"
    r"|videresendt meddelelse|valitetty viesti|wiadomosc przekazana)\s*[-_=* ]{2,}"
    r"|^(begin forwarded message|anfang der weitergeleiteten nachricht"
    r"|debut du message reexpedie|inicio del mensaje reenviado|inizio messaggio inoltrato"
    r"|begin doorgestuurd bericht|inicio da mensagem reencaminhada)\s*:"
    # Lotus/HCL Notes: -----"Dana" <dana@acme.example> wrote: -----
    r"|^-{3,}.{0,160}\b(wrote|schrieb|a ecrit|escribio|ha scritto|schreef|escreveu|skrev"
    r"|napisal|kirjoitti)\s*:?\s*-{3,}\s*$"
)
#: Lotus/HCL Notes' header table: a line "To" (alone), then "cc" and "Subject" lines alone.
_NOTES_TO = re.compile(r"^(to|an|a|para|aan|till|til|do)$")
_NOTES_SUBJECT = re.compile(r"^(subject|betreff|objet|asunto|oggetto|onderwerp|assunto|amne|emne"
                            r"|temat)$")
_HEADER_FROM = re.compile(
    r"^(from|von|de|da|van|fra|fran|od|lahettaja|afsender|avsandare)\s*:\s*\S"
)
_HEADER_OTHER = re.compile(
    r"^(sent|date|gesendet|datum|envoye|enviado|fecha|inviato|data|verzonden|sendt|skickat|wyslano"
    r"|lahetetty|to|an|a|para|aan|til|till|do|vastaanottaja|subject|betreff|objet|asunto|oggetto"
    r"|onderwerp|assunto|amne|emne|temat|aihe|cc)\s*:"
)
_OPENER = re.compile(r"^(on|am|le|el|il|op|em|den|w dniu|dnia|\d|\w{2,4}\.?,? \d)\b")
_RULE = re.compile(r"^[-_=]{8,}\s*$")
_SIGNATURE = re.compile(
    r"^-*\s*(sent from my|sent from|get outlook for|envoye de mon|envoye depuis mon"
    r"|von meinem\b.{0,30}\bgesendet"
    r"|gesendet von meinem|enviado desde mi|enviado de mi|inviato da|verzonden (met|vanaf|van) mijn"
    r"|enviado do meu|enviado a partir do|skickat fran min|sendt fra min|lahetetty|wyslane z)\b"
)


def _plain(line: str) -> str:
    """A folded line without Markdown emphasis and leading blanks, for marker tests."""
    return fold(line).replace("*", "").strip()


def _quote_start(lines: list[str]) -> tuple[int, str] | None:
    limit = min(len(lines), MAX_SCAN_LINES)
    for i in range(limit):
        raw = lines[i]
        if raw.lstrip().startswith(">"):
            return i, "'>' quoted lines"
        line = _plain(raw)
        if not line:
            continue
        if _SEPARATOR.search(line):
            return i, "original-message separator"
        if _HEADER_FROM.match(line) and _header_block_follows(lines, i):
            return i, "quoted header block (From:/Sent:)"
        if _NOTES_TO.match(line) and _notes_table(lines, i):
            return _notes_sender(lines, i), "quoted header block (Lotus Notes)"
        if _RULE.match(line):
            nxt = [_plain(x) for x in lines[i + 1 : i + 6] if x.strip()]
            if nxt and _HEADER_FROM.match(nxt[0]):
                return i, "quoted header block (From:/Sent:)"
        # A quote header may wrap over up to three lines, but only one that starts like one.
        joined = line
        wraps = 3 if _OPENER.match(line) and not line.endswith((".", "!", "?")) else 1
        for j in range(i, min(i + wraps, limit)):
            if j > i:
                joined = joined + " " + _plain(lines[j])
            if len(joined) < 600 and _WROTE.match(joined) and _looks_like_quote_header(joined):
                return i, "quote header ('... wrote:')"
    return None


def _notes_table(lines: list[str], i: int) -> bool:
    return any(_NOTES_SUBJECT.match(_plain(x)) for x in lines[i + 1 : i + 9])


def _notes_sender(lines: list[str], i: int) -> int:
    """The sender and date lines Notes writes above its "To" line belong to the quote."""
    start = i
    for j in range(i - 1, max(i - 4, -1), -1):
        line = lines[j].strip()
        if not line:
            continue
        if len(line) > 80 or not re.search(r"@|\d", line):
            break
        start = j
    return start


def _looks_like_quote_header(line: str) -> bool:
    # Every client writes a date or the sender's address into its quote header.
    return bool(re.search(r"\d|@", line))


def _header_block_follows(lines: list[str], i: int) -> bool:
    seen = 0
    for raw in lines[i + 1 : i + 7]:
        line = _plain(raw)
        if not line:
            continue
        seen += 1
        if _HEADER_OTHER.match(line):
            return True
        if seen >= 2:
            break
    return False


def _cut_signature(lines: list[str]) -> tuple[list[str], bool]:
    for i, raw in enumerate(lines):
        stripped = raw.strip()
        if stripped in ("--", "-- ", "__"):
            return lines[:i], True
        line = _plain(raw)
        if len(line) < 70 and "," not in line and _SIGNATURE.match(line):
            return lines[:i], True
    return lines, False


def split_reply(text: str) -> tuple[str, str | None]:
    """Return (new text, what ended it) for a reply body; the marker is None if none was found."""
    try:
        lines = text.splitlines()
        found = _quote_start(lines)
        marker = found[1] if found else None
        head = lines[: found[0]] if found else lines
        head, signed = _cut_signature(head)
        if signed and marker is None:
            marker = "signature"
        new = "\n".join(head).strip()
        if not new and found:
            # Bottom-posted reply: keep what is not quoted.
            new = "\n".join(ln for ln in lines if not ln.lstrip().startswith(">")).strip()
        return new, marker
    except Exception:  # noqa: BLE001 - a reply splitter must never stop classification
        return text, None


# --- The lead's own words: without sign-off, signature, disclaimer and list footer ---------

#: Closing lines after which come a name and a signature ("Regards," "Mit freundlichen Grüßen").
_VALEDICTION = re.compile(
    r"^(best( regards| wishes)?|(kind|warm|warmest|many|with) regards|regards|cheers|thanks,"
    r"|thank you,|many thanks,|sincerely|yours (sincerely|faithfully|truly)|respectfully"
    r"|(bien )?cordialement|salutations( distinguees)?|bien a vous|mit freundlichen grussen|mfg"
    r"|(viele|beste|liebe|freundliche) grusse|gruss|grusse|saludos( cordiales)?|un saludo"
    r"|atentamente|(cordiali|distinti) saluti|saluti|met vriendelijke groet(en)?|groeten|mvg"
    r"|atenciosamente|cumprimentos|com os melhores cumprimentos|abracos"
    r"|(med )?vanliga halsningar|halsningar|mvh|(med )?venlig hilsen|hilsen|med vennlig hilsen"
    r"|ystavallisin terveisin|terveisin|pozdrawiam|z powazaniem|serdecznie pozdrawiam)"
    r"[\s,.!]*$"
)
#: Words of a legal disclaimer or a mailing-list footer (folded). One is enough: each says
#: the text is boilerplate, not something the sender wrote to us. None may be something a
#: lead writes when asking to stop ("remove me from your mailing list", "I never subscribed
#: to the newsletter", "unsubscribe me from this list").
_BOILERPLATE = re.compile(
    r"confidential|privileged|intended (solely |only )?for the (use|named|addressee|recipient)"
    r"|intended recipient|if you (are not|have received) (the|this)|disclaimer"
    r"|if you no longer wish to receive|you are receiving this|you received this (message|e-?mail)"
    r"|you are subscribed to|because you (are|were) subscribed|^\S+ mailing list( -- \S+)?$"
    r"|listinfo|google groups"
    r"|registered (in|office)|vertraulich|nicht der (richtige|beabsichtigte) (adressat|empfanger)"
    r"|handelsregister|registergericht|amtsgericht|geschaftsfuhrer|pflichtangaben"
    r"|confidentiel|n'etes pas (le|la) destinataire|siege social|confidencial|no (es|sea) el"
    r" destinatario|aviso legal|riservat|non (e|siete) il destinatario|vertrouwelijk"
    r"|niet de (beoogde )?geadresseerde|confidenci|nao (e|for) o destinatario|konfidentiell"
    r"|inte (ar )?(ratt|avsedd) mottagare|fortrolig|ikke (er )?den rette modtager|poufn"
    r"|nie (jestes|jest pan|jest pani) (zamierzonym )?adresatem|luottamuksellinen"
)
#: Lines that open a list footer wherever they stand ("To unsubscribe, send an email to...").
_FOOTER_LINE = re.compile(
    r"^(to unsubscribe|unsubscribe:|um sich (von|abzumelden|auszutragen)|abmelden:"
    r"|pour (vous )?(desinscrire|desabonner)|para (darse de baja|cancelar|se descadastrar"
    r"|descadastrar)|per (cancellarsi|disiscriversi)|om (je|u) af te melden|for at afmelde"
    r"|for att avregistrera|aby (sie )?wypisac)\b"
)
_RULE_LINE = re.compile(r"^[-_=*~]{5,}\s*$")


def own_words(new_text: str) -> str:
    """The sender's own words in the new text of a reply: without the sign-off and signature
    after a closing line ("Regards," then a name), a signature after "-- ", a legal
    disclaimer, or a mailing-list footer ("To unsubscribe send an email to ...")."""
    try:
        lines = new_text.splitlines()
        return "\n".join(lines[: _own_end(lines)]).strip()
    except Exception:  # noqa: BLE001 - never lose the text over a footer
        return new_text


def _own_end(lines: list[str]) -> int:
    first = next((i for i, ln in enumerate(lines) if ln.strip()), len(lines))
    for i in range(first + 1, len(lines)):
        raw = lines[i].strip()
        if raw in ("--", "-- ", "__"):
            return i
        line = _plain(lines[i])
        if not line:
            continue
        # "Thanks," also opens a text ("Hi,\nThanks,\nplease remove me..."): as a sign-off it
        # needs two lines above it.
        content = sum(1 for ln in lines[first:i] if ln.strip())
        thanks = line.startswith(("thank", "many thanks"))
        if (content >= 2 or not thanks) and _VALEDICTION.match(line) and _name_follows(lines, i):
            return i
        if _RULE_LINE.match(raw) or _FOOTER_LINE.match(line):
            return i
        wrapped = line + " " + _plain(lines[i + 1]) if i + 1 < len(lines) else line
        if _BOILERPLATE.search(wrapped):
            start = i
            while start - 1 > first and lines[start - 1].strip():
                start -= 1  # the whole paragraph, but never the first line of the text
            return start
    return len(lines)


def _name_follows(lines: list[str], i: int) -> bool:
    """A closing line is a sign-off when a short name-like line (or nothing) follows it."""
    nxt = next((ln.strip() for ln in lines[i + 1:] if ln.strip()), "")
    return not nxt or (len(nxt) <= 40 and not nxt.endswith((".", "?", "!", ":")))
