"""Out-of-office return dates in the forms issue 11 found misread (the pure date reader).

A weekday followed by a date names that date ("until Monday, December 14, 2026" was read as
the next Monday); week numbers ("KW 50", "week 51", "semaine 51") name the Monday of that ISO
week; a day and month without a year lies after the message, across New Year.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from worker.domain.return_date import find_return_date

SENT = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)  # a Thursday in week 49

CASES = [
    ("I am out of the office until Monday, December 14, 2026.", "2026-12-14"),
    ("I am out of the office until Friday, December 11 with limited access to email.",
     "2026-12-11"),
    ("I will be out of the office from Monday, December 7, 2026 until Friday, December 11, "
     "2026.", "2026-12-11"),
    ("I'm away and back on Monday the 14th of December.", "2026-12-14"),
    ("Ich bin bis Montag, 14. Dezember 2026 nicht im Büro.", "2026-12-14"),
    ("Ich bin bis Freitag, den 11.12. nicht im Büro.", "2026-12-11"),
    ("Je suis absent jusqu'au lundi 14 décembre 2026.", "2026-12-14"),
    ("Estoy fuera de la oficina hasta el lunes, 14 de diciembre de 2026.", "2026-12-14"),
    ("Sono fuori ufficio fino a lunedì 14 dicembre.", "2026-12-14"),
    ("Ik ben afwezig tot en met maandag 14 december.", "2026-12-14"),
    ("Estou ausente até segunda-feira, 14 de dezembro de 2026.", "2026-12-14"),
    ("Jag är ledig till måndag den 14 december.", "2026-12-14"),
    ("Jeg er på ferie indtil mandag den 14. december.", "2026-12-14"),
    ("Jestem nieobecny do poniedziałku, 14 grudnia 2026.", "2026-12-14"),
    ("Olen lomalla maanantaihin 14.12. asti.", "2026-12-14"),
    ("Ich bin in KW 50 wieder erreichbar.", "2026-12-07"),
    ("Ich bin bis KW50 abwesend.", "2026-12-07"),
    ("I am away and back in week 51.", "2026-12-14"),
    ("Je suis absent, de retour semaine 51.", "2026-12-14"),
    ("Jag är tillbaka vecka 2.", "2027-01-11"),
    ("I am out of the office and back 5 January.", "2027-01-05"),
    ("I am out of the office until Monday.", "2026-12-07"),
    ("Je suis absente jusqu'à lundi.", "2026-12-07"),
    ("Ich bin ab Montag wieder im Büro.", "2026-12-07"),
]


@pytest.mark.parametrize(("text", "want"), CASES)
def test_return_date(text: str, want: str) -> None:
    # Given an out-of-office text sent on Thursday 3 December 2026
    # When its return date is read
    got = find_return_date("Automatic reply: Re: your mail", text, SENT)
    # Then it is the stated date, not the next such weekday
    assert got is not None and got.isoformat() == want
