"""Multilingual phrase tables for reading inbound mail, and the text folding they rely on.

Every table is data: ``(language, pattern)`` pairs whose patterns are regular-expression
fragments written against *folded* text (see :func:`fold`): lower case, accents removed,
``ß`` -> ``ss``, ``ł`` -> ``l``, whitespace collapsed. Write ``fuera de la oficina``, not
``Fuera de la Oficina``; a single space in a pattern matches any run of whitespace.

Languages: en, de, fr, es, it, nl, pt, sv, da (with no), fi, pl.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence

# Letters NFKD does not decompose into a base letter plus a combining mark.
_SPECIAL = str.maketrans({
    "ł": "l", "Ł": "l", "ø": "o", "Ø": "o", "æ": "ae", "Æ": "ae", "đ": "d", "Đ": "d",
    "ð": "d", "þ": "th", "œ": "oe", "Œ": "oe", "ı": "i", "\u00a0": " ", "\u2019": "'",
    "\u2018": "'", "\u201c": '"', "\u201d": '"', "\u2013": "-", "\u2014": "-",
})
_COMBINING = re.compile(r"[\u0300-\u036f\u1ab0-\u1aff\u20d0-\u20ff]+")
_SPACES = re.compile(r"[ \t\r\f\v]+")


def fold(text: str) -> str:
    """Lower-case, strip accents and normalise quotes so phrases match across spellings."""
    text = unicodedata.normalize("NFKD", text.translate(_SPECIAL))
    return _COMBINING.sub("", text).casefold()


def fold_flat(text: str) -> str:
    """:func:`fold`, then collapse all whitespace (line breaks too) into single spaces."""
    return " ".join(fold(text).split())


def fold_lines(text: str) -> str:
    """:func:`fold`, keeping line breaks but collapsing runs of blanks within a line."""
    return _SPACES.sub(" ", fold(text))


Table = Sequence[tuple[str, str]]
Compiled = tuple[tuple[str, str, "re.Pattern[str]"], ...]


def compile_table(table: Iterable[tuple[str, str]], *, anchor: str = r"\b") -> Compiled:
    """Compile ``(lang, pattern)`` pairs; spaces become ``\\s+`` and words get boundaries."""
    out = []
    for lang, pattern in table:
        body = pattern.replace(" ", r"\s+")
        out.append((lang, pattern, re.compile(anchor + "(?:" + body + ")" + anchor)))
    return tuple(out)


def first_match(table: Compiled, text: str) -> tuple[str, str, int] | None:
    """The earliest match of any pattern in folded ``text``: (lang, matched text, position)."""
    best: tuple[str, str, int] | None = None
    for lang, _pattern, rx in table:
        m = rx.search(text)
        if m and (best is None or m.start() < best[2]):
            best = (lang, m.group(0), m.start())
    return best


# --- Automatic replies ------------------------------------------------------------------

#: Subject lines of automatic replies (anywhere in the subject).
AUTO_SUBJECT: Table = (
    ("en", r"out of (the )?office"),
    ("en", r"automatic reply"),
    ("en", r"auto(matic)?[ -]?reply"),
    ("en", r"auto[ -]?response"),
    ("en", r"automatic response"),
    ("en", r"autoresponder"),
    ("en", r"on vacation"),
    ("en", r"on holiday"),
    ("en", r"on leave"),
    ("en", r"away from (the )?office"),
    ("en", r"vacation (reply|notice|message)"),
    ("en", r"^auto:"),
    ("en", r"absence notice"),
    ("de", r"abwesenheitsnotiz"),
    ("de", r"automatische antwort"),
    ("de", r"abwesend"),
    ("de", r"nicht im buro"),
    ("de", r"automatische ruckantwort"),
    ("de", r"urlaubsabwesenheit"),
    ("fr", r"reponse automatique"),
    ("fr", r"absence du bureau"),
    ("fr", r"message d'absence"),
    ("fr", r"absent(e)? du bureau"),
    ("fr", r"en conge(s)?"),
    ("es", r"respuesta automatica"),
    ("es", r"fuera de la oficina"),
    ("es", r"ausente"),
    ("es", r"de vacaciones"),
    ("it", r"risposta automatica"),
    ("it", r"fuori (dall')?ufficio"),
    ("it", r"assente"),
    ("it", r"in ferie"),
    ("nl", r"automatisch antwoord"),
    ("nl", r"afwezig"),
    ("nl", r"niet op kantoor"),
    ("nl", r"automatische reactie"),
    ("pt", r"resposta automatica"),
    ("pt", r"fora do escritorio"),
    ("pt", r"ausencia"),
    ("pt", r"ausente do escritorio"),
    ("sv", r"automatiskt svar"),
    ("sv", r"franvaro(meddelande)?"),
    ("sv", r"inte pa kontoret"),
    ("da", r"autosvar"),
    ("da", r"automatisk svar"),
    ("da", r"fravaerende"),
    ("da", r"fravaer"),
    ("da", r"ikke pa kontoret"),
    ("no", r"automatisk svar"),
    ("fi", r"automaattinen vastaus"),
    ("fi", r"poissa( toimistolta)?"),
    ("fi", r"lomalla"),
    ("pl", r"automatyczna odpowiedz"),
    ("pl", r"nieobecn\w*"),
    ("pl", r"poza biurem"),
    ("pl", r"autoodpowiedz"),
)

#: Subjects of autoresponders that acknowledge receipt ("we got your message").
ACK_SUBJECT: Table = (
    ("en", r"^thank(s| you) for (your|the) (e-?mail|message|enquiry|inquiry|request)"),
    ("en", r"we(('ve)| have)? received your (e-?mail|message|request)"),
    ("en", r"(your )?(support )?(request|ticket|case) (has been )?(received|created|logged)"),
    ("en", r"\[(ticket|case|request) ?#? ?\d+\]"),
    ("de", r"^vielen dank fur ihre (e-?mail|nachricht|anfrage)"),
    ("de", r"eingangsbestatigung"),
    ("fr", r"^merci (pour|de) votre (e-?mail|message|courriel)"),
    ("fr", r"accuse de reception"),
    ("es", r"^gracias por su (correo|mensaje)"),
    ("es", r"acuse de recibo"),
    ("it", r"^grazie per (la sua|il suo|la tua) (e-?mail|messaggio)"),
    ("nl", r"^bedankt voor (uw|je) (e-?mail|bericht)"),
    ("nl", r"ontvangstbevestiging"),
    ("pt", r"^obrigad[oa] pel[oa] (seu|sua) (e-?mail|mensagem)"),
    ("sv", r"^tack for (ditt|ert) (e-?post|meddelande|mejl)"),
    ("da", r"^tak for din (e-?mail|mail|henvendelse)"),
    ("fi", r"^kiitos viestistasi"),
    ("pl", r"^dziekujemy za (wiadomosc|e-?mail)"),
)

#: Body phrases typical of out-of-office replies, searched near the start of the new text.
OOO_BODY: Table = (
    ("en", (r"(i am|i'm|i will be|i'll be|i shall be) (currently |now )?(out of|away from) (the "
            r"|my )?office")),
    ("en", (r"(i am|i'm|i will be|i'll be) (currently |now )?on (annual |parental |maternity "
            r"|paternity |sick |study )?leave")),
    ("en", (r"(i am|i'm|i will be|i'll be) (currently |now )?(away|on vacation|on holiday"
            r"|on holidays|travell?ing|out) (until|till|through|from|returning|and will (be back"
            r"|return))")),
    ("en", r"out of (the )?office (until|till|through|from|and (will|i will|i'll))"),
    ("en", (r"(i will|i'll) (be )?(back|returning) (in the office |to the office |at work )?(on"
            r"|from)")),
    ("en", r"(i will|i'll) (have )?(limited|no|intermittent) access to (my )?e-?mail"),
    ("en", r"this is an? (automatic|automated|auto-generated) (reply|response|message)"),
    ("en", r"away from (my|the) (desk|office) until"),
    ("en", r"returning to the office on"),
    ("en", r"currently out of (the )?office"),
    ("de", r"(ich bin|bin ich) (leider )?(bis (zum|einschliesslich|\d)|vom \d)"),
    ("de", (r"(ich bin|bin ich) .{0,40}(nicht im buro|abwesend|im urlaub|ausser haus"
            r"|nicht am arbeitsplatz)")),
    ("de", r"(abwesenheitsnotiz|abwesenheitsnachricht)"),
    ("de", r"befinde mich .{0,40}(urlaub|abwesend)"),
    ("de", r"ab dem .{0,30}wieder (im buro|erreichbar|da)"),
    ("de", r"keinen zugriff auf (meine )?e-?mails"),
    ("de", r"dies ist eine automatische (antwort|nachricht)"),
    ("fr", r"je suis (actuellement )?(absent|absente|en conges?|en vacances|hors du bureau)"),
    ("fr", r"je serai (absent|absente|de retour le)"),
    ("fr", r"absent(e)? du bureau"),
    ("fr", r"ceci est une reponse automatique"),
    ("es", r"(estoy|estare) (fuera de la oficina|de vacaciones|ausente)"),
    ("es", r"fuera de la oficina"),
    ("es", r"esta es una respuesta automatica"),
    ("it", r"(sono|saro) (fuori (sede|ufficio|dall'ufficio)|in ferie|assente|in vacanza)"),
    ("it", r"fuori ufficio"),
    ("it", r"questa e una risposta automatica"),
    ("nl", (r"(ik ben|ben ik) (tot en met|tot \d|afwezig|op vakantie|met vakantie|niet aanwezig"
            r"|niet op kantoor)")),
    ("nl", (r"(ik ben|ben ik) .{0,40}(afwezig|op vakantie|met vakantie|niet aanwezig"
            r"|niet op kantoor)")),
    ("nl", r"dit is een automatisch (antwoord|bericht)"),
    ("pt", r"(estou|estarei) (ausente|fora do escritorio|de ferias)"),
    ("pt", r"esta e uma resposta automatica"),
    ("sv", (r"(jag ar|jag kommer att vara) (ledig|borta|franvarande|pa semester|inte pa kontoret"
            r"|tjanstledig|foraldraledig)")),
    ("sv", r"(jag ar|ar jag) .{0,40}(franvarande|pa semester|tjanstledig|foraldraledig)"),
    ("sv", r"detta ar ett automatiskt svar"),
    ("da", (r"(jeg er|jeg vil vaere) (pa ferie|fravaerende|ikke pa kontoret|pa barsel"
            r"|ude af huset)")),
    ("da", r"(jeg er|er jeg) .{0,40}(pa ferie|fravaerende|ikke pa kontoret)"),
    ("da", r"dette er et automatisk svar"),
    ("no", r"jeg er (pa ferie|borte|ute av kontoret)"),
    ("fi", r"olen (lomalla|poissa|vuosilomalla|sairauslomalla|isyyslomalla|aitiyslomalla)"),
    ("fi", r"tama on automaattinen vastaus"),
    ("pl", r"(jestem|bede) (nieobecn\w*|na urlopie|poza biurem)"),
    ("pl", r"przebywam na urlopie"),
    ("pl", r"to jest automatyczna odpowiedz"),
)

#: "I have moved / this address is dead" in an automatic reply.
ADDRESS_CHANGE_BODY: Table = (
    ("en", r"(is|are) no longer (in use|active|monitored|valid|being monitored|checked|used)"),
    ("en", (r"no longer (with (the|our|this) (company|firm|organi[sz]ation|team)|works? (at|for)"
            r"|employed|part of)")),
    ("en", r"(has|have) left (the company|the firm|the organi[sz]ation|the business|our company)"),
    ("en", r"(my|our|his|her) new (e-?mail )?address"),
    ("en", r"please update your (records|address book|contact)"),
    ("en", r"(email|e-mail|mail) address has changed"),
    ("en", r"changed (my|our) e-?mail address"),
    ("de", r"zukunftig"),
    ("de", r"nicht mehr (im unternehmen|bei|fur|erreichbar unter|gultig|aktiv|in betrieb|benutzt)"),
    ("de", r"neue (e-?mail-?)?adresse"),
    ("de", r"hat das unternehmen verlassen"),
    ("fr", r"ne fait plus partie"),
    ("fr", r"n'est plus (valide|utilisee|active|consultee)"),
    ("fr", r"nouvelle adresse"),
    ("fr", r"a quitte (la societe|l'entreprise)"),
    ("es", r"ya no (trabaja|esta|forma parte|se usa|es valida|esta activa)"),
    ("es", r"nueva direccion"),
    ("it", r"non fa piu parte"),
    ("it", r"non e piu (attiva|valida|in uso)"),
    ("it", r"nuovo indirizzo"),
    ("nl", r"niet meer (in dienst|werkzaam|actief|in gebruik|bereikbaar via)"),
    ("nl", r"nieuwe? e-?mail ?adres"),
    ("pt", r"nao (faz mais parte|trabalha mais)"),
    ("pt", r"(ja )?nao esta (mais )?(ativo|em uso)"),
    ("pt", r"novo (endereco|e-?mail)"),
    ("sv", r"(arbetar|jobbar) inte langre"),
    ("sv", r"anvands inte langre"),
    ("sv", r"ny e-?postadress"),
    ("da", r"(arbejder|er) ikke (laengere|mere) (ansat|hos|i)"),
    ("da", r"bruges ikke (laengere|mere)"),
    ("da", r"ny e-?mail ?adresse"),
    ("no", r"jobber ikke lenger"),
    ("fi", r"ei (ole )?enaa (kaytossa|toiminnassa|palveluksessa|tyossa)"),
    ("fi", r"uusi (sahkoposti)?osoite"),
    ("pl", r"nie pracuje juz"),
    ("pl", r"(adres )?nie jest juz (uzywany|aktywny)"),
    ("pl", r"nowy adres"),
)

#: "We received your message" acknowledgements of ticket systems and shared inboxes.
ACK_BODY: Table = (
    ("en", (r"(thank you|thanks) for (your|the) (e-?mail|message|enquiry|inquiry|request"
            r"|contacting)")),
    ("en", r"we (have )?received your (e-?mail|message|request|enquiry|inquiry)"),
    ("en", r"(this is an )?(automatic|automated) (confirmation|acknowledge?ment)"),
    ("en", r"(i|we) will (endeavou?r to |try to |)(reply|respond|get back to you)"),
    ("en", r"(ticket|case|reference) (number|no\.?|#|id)"),
    ("en", r"your (request|ticket) (has been|was) (received|created|logged)"),
    ("de", r"(vielen )?dank fur ihre (e-?mail|nachricht|anfrage)"),
    ("de", r"wir haben ihre (e-?mail|nachricht|anfrage) erhalten"),
    ("fr", r"nous avons (bien )?recu votre (message|e-?mail|courriel|demande)"),
    ("es", r"hemos recibido su (mensaje|correo|solicitud)"),
    ("it", r"abbiamo ricevuto (il suo|la sua|il tuo) (messaggio|e-?mail|richiesta)"),
    ("nl", r"wij hebben (uw|je) (bericht|e-?mail|aanvraag) ontvangen"),
    ("pt", r"recebemos (a sua|sua|o seu|seu) (mensagem|e-?mail|pedido)"),
    ("sv", r"vi har tagit emot (ditt|ert) (meddelande|mejl)"),
    ("da", r"vi har modtaget din (henvendelse|mail|e-?mail)"),
    ("fi", r"olemme vastaanottaneet viestisi"),
    ("pl", r"otrzymalismy (twoja|pana|pani) wiadomosc"),
)

#: Challenge-response systems asking the sender to prove they are human.
CHALLENGE_BODY: Table = (
    ("en", (r"(add|added) (yourself |you |your (e-?mail )?address )?to (my|the|his|her"
            r"|the recipient's) (guest|allowed|approved|safe|white) ?(senders? )?list")),
    ("en", r"(has been|was) waitlisted"),
    ("en", r"verify (that )?you are (a )?(human|real person|not a robot)"),
    ("en", r"(this account|my mailbox|this mailbox|this address) is protected by"),
    ("en", r"challenge[- ]response"),
    ("en", r"\bmy (\w+ )?(guest|approved senders?|allowed senders?|safe senders?) list"),
    ("en", (r"(guest|approved senders?|allowed senders?) list so (that )?your (messages"
            r"|e-?mails?) (will )?(go|reach|are delivered)")),
    ("de", r"bestatigen sie, dass sie (ein )?mensch"),
)

# --- Unsubscribe requests ---------------------------------------------------------------

#: Asks in the new text of a reply to stop mail. Negations are checked separately.
UNSUBSCRIBE_BODY: Table = (
    ("en", r"unsubscribe( me)?"),
    ("en", (r"(please )?(remove|delete|take) (me|my (e-?mail|address|name|details|data))( from"
            r"| off)")),
    ("en", r"take me off"),
    ("en", r"stop (e-?mailing|mailing|sending|contacting|spamming|writing( to)?) (me|us)"),
    ("en", r"stop (all |these |your )?(e-?mails|mails|messages)"),
    ("en", (r"(do not|don't|dont) (e-?mail|contact|write to|send( me)?) (me|us)( (again|anymore"
            r"|any more))?")),
    ("en", r"opt( me)? out"),
    ("en", r"no (more|further) (e-?mails|mails|messages)"),
    ("en", r"not interested,? (please )?(remove|stop)"),
    ("en", (r"(remove|delete|take) (our|my) (e-?mail|address|details|data|contact)( (id|address"
            r"|details))? (from|off)")),
    ("en", (r"(do not|don't|dont|please) (send|stop sending) (us |me )?(any )?(further|more"
            r"|other) (e-?mails|mails|messages)")),
    ("de", r"(bitte )?abmelden"),
    ("de", r"melden sie mich ab"),
    ("de", r"(bitte )?(entfernen|loschen) sie (mich|meine (e-?mail-?)?adresse|meine daten)"),
    ("de", r"keine (weiteren )?(e-?mails|mails|nachrichten) mehr"),
    ("de", r"(bitte )?austragen"),
    ("de", r"abbestellen"),
    ("de", r"aus (dem|ihrem|eurem) (verteiler|e-?mail-?verteiler|adressbuch)"),
    ("de", r"nicht mehr (an)?(schreiben|kontaktieren|anmailen)"),
    ("fr", r"(me )?desinscri(re|vez|ption)"),
    ("fr", r"desabonn(er|ez|ement)"),
    ("fr", r"(retirez|supprimez|enlevez)[- ]moi"),
    ("fr", r"ne (plus )?m'(envoyez|ecrivez) plus"),
    ("fr", r"arretez de m'(envoyer|ecrire)"),
    ("fr", r"ne plus m'(ecrire|envoyer|contacter)"),
    ("fr", r"(me )?(retirer|supprimer|enlever|rayer) de (votre|vos|la) (liste|fichier|base|mailing)"),
    ("fr", r"(supprimer|retirer|effacer) mes (coordonnees|donnees|adresse)"),
    ("es", r"dar(me)? de baja"),
    ("es", r"darse de baja"),
    ("es", r"(denme|deme|dame|me den|nos den) de baja"),
    ("es", r"(sacarme|quitarme|eliminarme|borrarme) de (su|sus|la|vuestra) (lista|base)"),
    ("es", r"(eliminen|borren|quiten|saquen)(me)? (de|mi)"),
    ("es", r"no me (envien|manden|escriban) mas"),
    ("es", r"cancelar (la )?suscripcion"),
    ("es", r"dejen de (enviarme|escribirme|mandarme|contactarme|enviarnos)"),
    ("it", r"cancellami"),
    ("it", r"(cancellatemi|rimuovetemi|toglietemi)"),
    ("it", r"disiscri(vermi|vetemi|zione)"),
    ("it", r"non (mi )?(inviate|mandate|scrivete) piu"),
    ("it", r"non (mi )?(contattate|contattarmi|scrivetemi|scrivermi) piu"),
    ("it", r"cancellare il mio (indirizzo|nominativo)"),
    ("nl", r"afmelden"),
    ("nl", r"uitschrijven"),
    ("nl", r"(verwijder|haal) (mij|me|mijn (e-?mail)?adres)"),
    ("nl", r"geen (e-?mails|mails|berichten) meer"),
    ("pt", r"descadastr(ar|e|ar-me)"),
    ("pt", r"cancelar (a )?(minha )?inscricao"),
    ("pt", r"(remova|retire|tire)[- ]?me"),
    ("pt", r"nao (me )?(envie|enviem|mande|mandem) mais"),
    ("sv", r"avregistrera"),
    ("sv", r"avsluta prenumeration"),
    ("sv", r"(ta bort|stryk) mig"),
    ("sv", r"sluta (skicka|maila|mejla)"),
    ("da", r"afmeld( mig)?"),
    ("da", r"(fjern|slet) mig"),
    ("da", r"stop med at (sende|skrive)"),
    ("no", r"meld meg av"),
    ("fi", r"(peru|lopeta) tilaus"),
    ("fi", r"poista minut"),
    ("fi", r"lopettakaa (viestien )?(lahettaminen|lahettamasta)"),
    ("pl", r"wypisz(cie)? mnie"),
    ("pl", r"(usun|usuncie) (mnie|moj adres)"),
    ("pl", r"nie (wysylajcie|przysylajcie) (mi )?wiecej"),
    ("pl", r"nie (wysylac|przysylac) (mi )?wiecej"),
    ("pl", r"rezygnuje z (subskrypcji|newslettera)"),
)

#: Whole subjects (after Re:/Fwd: prefixes) that are an unsubscribe request on their own.
UNSUBSCRIBE_SUBJECT = re.compile(
    r"^(unsubscribe|remove( me)?|stop|opt[ -]?out|abmelden|austragen|desinscription|desabonnement"
    r"|desinscrire|baja|darse de baja|cancellami|disiscrizione|afmelden|uitschrijven|descadastrar"
    r"|avregistrera|afmeld|peru tilaus|wypisz)\b.{0,30}$"
)

#: Removal requests tacked on to the end of a subject: "... - UNSUBSCRIBE", "... [remove me]",
#: "... - bitte aus Verteiler löschen".
UNSUBSCRIBE_SUBJECT_TAIL = re.compile(
    r"[-:(\[|/]\s*(please )?(unsubscribe( me)?|remove me|opt[ -]?out|stop e-?mailing( me)?"
    r"|(bitte )?(abmelden|austragen|aus (dem )?verteiler (loschen|nehmen|entfernen))"
    r"|desinscri(re|ption)|desabonnement|dar(me)? de baja|cancellami|afmelden|uitschrijven"
    r"|descadastrar|avregistrera|afmeld( mig)?|wypisz( mnie)?)\s*[\])!.]*$"
)

#: Words just before an unsubscribe phrase that turn it into something else (within the
#: sentence, and not "not interested": "Not interested - please remove me" is a request).
NEGATIONS = re.compile(
    r"(\bnot|n't|\bno|\bnever|\bnicht|\bkein\w*|\bpas|\bniet|\bnao|\binte|\bikke|\bnie|\bei"
    r"|\bwhy)(?![^\w.!?;]+interes)[^\w.!?;]+(\w+[^\w.!?;]+){0,2}$"
)

# --- Replies: prefixes and quote headers --------------------------------------------------

#: Subject prefixes of replies, in many languages (folded).
REPLY_PREFIX = re.compile(
    r"^\s*((re|aw|sv|vs|odp|antw|antwort|r|rif|res|resp|ynt|atb|reply|回复|答复|返信)"
    r"(\[\d+\])?\s*[:：]\s*)+"
)
#: Subject prefixes of forwards.
FORWARD_PREFIX = re.compile(
    r"^\s*(fwd?|wg|tr|rv|i|enc|doorst|pd|vb|vl|fs|videresend|wtd|inoltro)\s*:"
)
