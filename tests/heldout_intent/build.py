"""Write the authored held-out intent set (messages/*.eml and labels.csv) from ROWS.

Every reply here was written for this set, in other wording than ``../shared/intent``; people,
companies and addresses are made up (``.example`` domains). Each reply quotes a follow-up that
itself says "next week" and carries an unsubscribe footer, so a reader that looks at the quote
is caught. Run ``python tests/heldout_intent/build.py`` to regenerate; the output is committed.
"""

from __future__ import annotations

import csv
from email.message import EmailMessage
from pathlib import Path

HERE = Path(__file__).resolve().parent
OCT = "Wed, 14 Oct 2026 10:00:00 +0200"
DEC = "Thu, 10 Dec 2026 09:30:00 +0100"
TWENTY = " ".join(f"branch{i}@many-branches.example" for i in range(1, 21))

# (intent or "unsubscribe", lang, date, text, resume_on, referrals, cc, subject suffix)
ROWS: list[tuple[str, str, str, str, str, str, str, str]] = [
    ("interested", "en", OCT, "Okay, you've got my attention. Can you walk me through it on a call "
     "this week?", "", "", "", ""),
    ("interested", "en", OCT, "Please book me in for a demo, any afternoon next week suits.", "", "",
     "", ""),
    ("interested", "en", OCT, "How does your pricing work for a single location? If it's "
     "reasonable we'd sign up quickly.", "", "", "", ""),
    ("interested", "en", OCT, "Let's do it. What do you need from me to get started?", "", "", "",
     ""),
    ("interested", "de", OCT, "Klingt gut, rufen Sie mich am Montag gegen 10 Uhr an.", "", "", "",
     ""),
    ("interested", "fr", OCT, "Ça m'intéresse, envoyez-moi un devis pour nos trois sites.", "", "",
     "", ""),
    ("interested", "es", OCT, "Sí, me interesa. ¿Podemos hablar el martes por la mañana?", "", "",
     "", ""),
    ("interested", "it", OCT, "Ci piacerebbe vedere una demo del prodotto la prossima settimana.",
     "", "", "", ""),
    ("interested", "nl", OCT, "Graag een demo volgende week, dinsdagmiddag kan ik.", "", "", "", ""),
    ("interested", "pt", OCT, "Tenho interesse sim, pode me ligar amanhã às 15h?", "", "", "", ""),
    ("interested", "sv", OCT, "Det låter bra, skicka gärna en offert för två kontor.", "", "", "",
     ""),
    ("interested", "pl", OCT, "Jesteśmy zainteresowani, proszę o ofertę dla dwóch oddziałów.", "",
     "", "", ""),
    ("interested", "da", OCT, "Det lyder spændende, kan vi tage et møde i næste uge?", "", "", "",
     ""),
    ("not_now", "en", OCT, "Not the right moment for us - can you get in touch again in January?",
     "2027-01-01", "", "", ""),
    ("not_now", "en", OCT, "We're mid-audit. Try me again after 20 November.", "2026-11-21", "",
     "", ""),
    ("not_now", "en", OCT, "Budgets reset in Q3, let's talk then.", "2027-07-01", "", "", ""),
    ("not_now", "en", OCT, "Please follow up in two weeks, I'm travelling.", "2026-10-28", "", "",
     ""),
    ("not_now", "en", OCT, "Slammed until year end. Reach out next year.", "2027-01-01", "", "",
     ""),
    ("not_now", "de", OCT, "Im Moment passt es leider nicht. Melden Sie sich bitte im März wieder.",
     "2027-03-01", "", "", ""),
    ("not_now", "de", OCT, "Gerade keine Kapazität, bitte in KW 3 nochmal melden.", "2027-01-18",
     "", "", ""),
    ("not_now", "fr", OCT, "Pas pour l'instant, recontactez-moi dans trois mois.", "2027-01-14", "",
     "", ""),
    ("not_now", "es", OCT, "Ahora no es buen momento. Escríbame en febrero.", "2027-02-01", "", "",
     ""),
    ("not_now", "it", OCT, "Al momento non possiamo, risentiamoci dopo l'estate.", "2027-09-01", "",
     "", ""),
    ("not_now", "nl", OCT, "Nu even niet, probeer het na de zomer nog eens.", "2027-09-01", "", "",
     ""),
    ("not_now", "pt", OCT, "Agora não dá. Fale comigo no próximo mês.", "2026-11-01", "", "", ""),
    ("not_now", "sv", OCT, "Inte aktuellt nu, hör av dig om tre veckor.", "2026-11-04", "", "", ""),
    ("not_now", "da", OCT, "Vi har travlt, kontakt mig igen i april.", "2027-04-01", "", "", ""),
    ("not_now", "pl", OCT, "Obecnie nie, proszę odezwać się w przyszłym roku.", "2027-01-01", "",
     "", ""),
    ("not_now", "en", OCT, "Not a priority this quarter, maybe once things calm down.", "", "", "",
     ""),
    ("not_now", "en", OCT, "Circle back with me on 3/15 please, we're in the middle of a rollout.",
     "2027-03-15", "", "", ""),
    ("not_now", "en", DEC, "Can we revisit after the holidays? The office is winding down.",
     "2027-01-04", "", "", ""),
    ("not_now", "en", OCT, "Please check back in 5 years.", "2028-10-13", "", "", ""),
    ("not_interested", "en", OCT, "Appreciate it, but we've no use for this.", "", "", "", ""),
    ("not_interested", "en", OCT, "We're locked into a contract with our current vendor, so no.",
     "", "", "", ""),
    ("not_interested", "en", OCT, "Honestly not a good fit for a business our size. Thanks anyway.",
     "", "", "", ""),
    ("not_interested", "de", OCT, "Danke, aber das brauchen wir nicht.", "", "", "", ""),
    ("not_interested", "fr", OCT, "Merci mais ce n'est pas pour nous.", "", "", "", ""),
    ("not_interested", "es", OCT, "Gracias, pero ya trabajamos con otro proveedor.", "", "", "", ""),
    ("not_interested", "it", OCT, "No grazie, siamo a posto così.", "", "", "", ""),
    ("not_interested", "nl", OCT, "Bedankt, maar we hebben hier geen behoefte aan.", "", "", "", ""),
    ("not_interested", "pt", OCT, "Obrigado, mas não precisamos disso.", "", "", "", ""),
    ("not_interested", "sv", OCT, "Tack men vi är nöjda med det vi har.", "", "", "", ""),
    ("referral", "en", OCT, "I'm not the one you need - please email our ops lead, "
     "priya.desai@rivet-tools.example.", "", "priya.desai@rivet-tools.example", "", ""),
    ("referral", "en", OCT, "Best person is Marcus Lee, he manages our fleet. "
     "Marcus.Lee@haul-co.example", "", "marcus.lee@haul-co.example", "", ""),
    ("referral", "en", OCT, "Bringing in Jo (cc) who runs our front office.", "",
     "jo.park@park-dental.example", "Jo Park <jo.park@park-dental.example>", ""),
    ("referral", "en", OCT, "You should speak with Hannah Berg, our practice owner.", "", "", "",
     ""),
    ("referral", "de", OCT, "Zuständig ist bei uns Herr Albers aus dem Vertrieb, erreichbar unter "
     "t.albers@albers-bau.example.", "", "t.albers@albers-bau.example", "", ""),
    ("referral", "fr", OCT, "Je transmets à ma collègue Julie Marchand, en copie.", "",
     "julie.marchand@marchand-sa.example", "Julie Marchand <julie.marchand@marchand-sa.example>",
     ""),
    ("referral", "es", OCT, "Mejor hable con Andrés Pardo, nuestro gerente: "
     "andres.pardo@pardo-log.example", "", "andres.pardo@pardo-log.example", "", ""),
    ("referral", "nl", OCT, "Neem contact op met Eva de Vries, zij regelt de inkoop.", "", "", "",
     ""),
    ("referral", "pt", OCT, "Quem decide isso é a Carla, pode escrever para "
     "carla.nunes@nunes-odonto.example", "", "carla.nunes@nunes-odonto.example", "", ""),
    ("referral", "en", OCT, f"Please contact our branch managers directly: {TWENTY}", "",
     ";".join(f"branch{i}@many-branches.example" for i in range(1, 6)), "", ""),
    ("wrong_person", "en", OCT, "This isn't really my area, I just do the books.", "", "", "", ""),
    ("wrong_person", "en", OCT, "You've reached the wrong guy, I work in the warehouse.", "", "",
     "", ""),
    ("wrong_person", "en", OCT, "I'm no longer with the company, sorry.", "", "", "", ""),
    ("wrong_person", "de", OCT, "Dafür bin ich nicht zuständig, ich arbeite in der Produktion.", "",
     "", "", ""),
    ("wrong_person", "fr", OCT, "Je ne suis pas le bon interlocuteur pour ce sujet, désolé.", "",
     "", "", ""),
    ("wrong_person", "es", OCT, "No soy quien decide sobre estas cosas, lo siento.", "", "", "", ""),
    ("wrong_person", "it", OCT, "Non è di mia competenza, mi spiace.", "", "", "", ""),
    ("wrong_person", "sv", OCT, "Jag är fel person för det här, jobbar med lager.", "", "", "", ""),
    ("wrong_person", "pl", OCT, "To nie do mnie, zajmuję się księgowością.", "", "", "", ""),
    ("neutral", "en", OCT, "Got your note, thanks.", "", "", "", ""),
    ("neutral", "en", OCT, "Out of curiosity, how did you find us?", "", "", "", ""),
    ("neutral", "en", OCT, "Your unsubscribe link at the bottom doesn't work btw.", "", "", "", ""),
    ("neutral", "de", OCT, "Danke für die Info.", "", "", "", ""),
    ("neutral", "fr", OCT, "Bien noté, bonne journée.", "", "", "", ""),
    ("neutral", "es", OCT, "¿Quién es usted exactamente?", "", "", "", ""),
    ("neutral", "pl", OCT, "Dzięki za wiadomość.", "", "", "", ""),
    ("neutral", "da", OCT, "Tak for info, god weekend.", "", "", "", ""),
    ("unsubscribe", "en", OCT, "Please take me off your mailing list.", "", "", "", ""),
    ("unsubscribe", "en", OCT, "No.", "", "", "", " - please stop"),
    ("unsubscribe", "de", OCT, "Kein Interesse. Bitte keine E-Mails mehr.", "", "", "", ""),
    ("unsubscribe", "fr", OCT, "Merci de me retirer de votre liste de diffusion.", "", "", "", ""),
    ("unsubscribe", "es", OCT, "No me interesa, bórrenme de su lista.", "", "", "", ""),
]

QUOTE = (
    "On Mon, 12 Oct 2026 at 09:00, Dana Whitfield <dana@acme.example> wrote:\n"
    "> Hi,\n> Would a short call next week work? I could also send pricing.\n"
    "> Dana\n>\n> Unsubscribe: https://nurture.test/u/PLACEHOLDER\n"
)


def build() -> None:
    """Write every message and labels.csv."""
    out = HERE / "messages"
    out.mkdir(exist_ok=True)
    with (HERE / "labels.csv").open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["file", "class", "subclass", "resume_on", "referrals", "lang", "notes"])
        for n, (intent, lang, when, text, back, refs, cc, suffix) in enumerate(ROWS, 1):
            name = f"messages/{n:03d}-{intent}-{lang}.eml"
            msg = EmailMessage()
            msg["From"] = f"Lead {n} <lead{n}@lead-{n}.example>"
            msg["To"] = "Dana Whitfield <dana@acme.example>"
            if cc:
                msg["Cc"] = cc
            msg["Subject"] = f"Re: A quick idea for your team{suffix}"
            msg["Date"] = when
            msg["Message-ID"] = f"<h{n}@lead-{n}.example>"
            msg["In-Reply-To"] = "<step-PLACEHOLDER@nurture.test>"
            msg.set_content(f"{text}\n\nLead {n}\n\n{QUOTE}")
            (HERE / name).write_bytes(bytes(msg))
            cls = "unsubscribe" if intent == "unsubscribe" else "human"
            sub = "" if cls == "unsubscribe" else intent
            writer.writerow([name, cls, sub, back, refs, lang, "authored held-out"])


if __name__ == "__main__":
    build()
