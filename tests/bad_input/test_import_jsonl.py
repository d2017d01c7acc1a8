"""`nurture leads import` with hypothesis-built JSON-lines files.

Objects with odd values of every JSON type, bad addresses (or none, or not a string), nested
values where text belongs, unusable field names, lines that are not JSON or not objects, BOMs
at the start of a line, blank lines, duplicates, suppressed addresses and, now and then, bytes
that are not UTF-8. The checks are those of ``_lead_files.check_plan``: codes, reasons at the
right line, counts, values, idempotence.

Numbers over 4300 digits and values nested thousands deep are a known bug
(``test_import_known_bugs.py``) and are kept out of the generator.
"""

from __future__ import annotations

import json
import math
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from tests.bad_input._lead_files import (
    EXAMPLES,
    INVALID_UTF8,
    Plan,
    Row,
    address,
    bad_emails,
    check_plan,
    limit_of,
    physical_start,
    stored_form,
)
from tests.bad_input._support import (
    CONTROL,
    CONTROLS,
    PLACEHOLDER,
    TERMINAL,
    Workspace,
    fresh_domain,
    nasty_text,
)

JSON_KEYS = ["first_name", "company", "fields", "score", "flag", "nothing"]


def json_scalar(draw: st.DrawFn) -> Any:
    return draw(st.one_of(
        st.integers(-10**15, 10**15), st.floats(allow_nan=False, allow_infinity=False),
        st.booleans(), nasty_text(exclude=CONTROLS)))


@st.composite
def json_plans(draw: st.DrawFn) -> Plan:
    domain = fresh_domain()
    latin = draw(st.integers(0, 4)) == 0
    ascii_only = draw(st.booleans())
    rows: list[Row] = []
    kept: list[tuple[int, str]] = []
    suppressed: list[str] = []

    def line(obj: Any) -> str:
        return json.dumps(obj, ensure_ascii=ascii_only) + "\n"

    for number in range(draw(st.integers(0, 12))):
        kind = draw(st.sampled_from(["good", "good", "good", "bad_email", "control", "nested",
                                     "too_long", "infinite", "bad_name", "not_json", "not_object", "blank",
                                     "duplicate", "suppressed", "bom"]))
        written, email = address(draw, domain, number, latin)
        obj: dict[str, Any] = {"email": written}
        expected: dict[str, Any] = {}
        for key in draw(st.lists(st.sampled_from(JSON_KEYS), unique=True)):
            if key in ("first_name", "company"):
                raw = draw(st.one_of(nasty_text(exclude=CONTROLS), st.integers(0, 99)))
                obj[key] = raw
                expected[key] = str(raw).strip() or None
            elif key == "fields":
                note = json_scalar(draw)
                obj["fields"] = {"Note": note}
                expected["note"] = stored_form(note, "note") if isinstance(note, str) else note
            elif key == "nothing":
                obj[key] = None
            else:
                obj[key] = json_scalar(draw)
                expected[key] = stored_form(obj[key], "note") if isinstance(obj[key], str) \
                    else obj[key]
        items = list(obj.items())
        order = draw(st.permutations(range(len(items))))
        obj = dict(items[i] for i in order)
        if kind == "good" or (kind == "duplicate" and not kept):
            if latin and isinstance(obj.get("first_name"), str) and draw(st.booleans()):
                obj["first_name"] += PLACEHOLDER
                expected["first_name"] = obj["first_name"].strip()  # if escaped: still UTF-8
            rows.append(Row(line(obj), email=email, values=expected))
            kept.append((len(rows) - 1, email))
        elif kind == "bad_email":
            obj["email"] = draw(st.one_of(st.sampled_from(bad_emails(latin)), st.none(),
                                          st.integers(), st.just([email]), st.just("")))
            rows.append(Row(line(obj), reason="email: "))
        elif kind in ("control", "nested", "too_long", "infinite"):
            where = draw(st.sampled_from(["first_name", "company", "fields", "score"]))
            limit = limit_of(where if where in ("first_name", "company") else "note")
            bad: Any = {"control": draw(st.sampled_from(CONTROL + TERMINAL)).join(["a", "b"]),
                        "infinite": draw(st.sampled_from([math.inf, -math.inf])),
                        "nested": draw(st.sampled_from([[1], {"a": 1}, [], {}])),
                        "too_long": "t" * draw(st.integers(limit + 1, limit + 500))}[kind]
            reason = {"control": "contains control characters (",
                      "infinite": "must be a finite number",
                      "nested": "must be text",
                      "too_long": f"is longer than {limit} characters"}[kind]
            for key in ("first_name", "company", "score"):
                obj.pop(key, None)  # only the bad value may fail
            obj.pop("fields", None)
            if where == "fields":
                obj["fields"] = {"Note": bad}
                reason = f"fields.Note: {reason}"
            else:
                obj[where] = bad
                reason = f"{where}: {reason}"
            rows.append(Row(line(obj), reason=reason))
        elif kind == "bad_name":
            obj.pop("fields", None)
            expected.pop("note", None)
            name = draw(st.sampled_from(["!!!", " ", "--"] + ([] if latin else ["日本"])))
            obj[name] = "x"
            rows.append(Row(line(obj), reason=f"{name.strip()}: is not a usable field name"
                            if name.strip() else None, email=None if name.strip() else email,
                            values=expected))
            if not name.strip():
                kept.append((len(rows) - 1, email))
        elif kind == "not_json":
            junk = draw(nasty_text(exclude="\r\n"))
            rows.append(Row("{broken" + junk + "\n", reason="not valid JSON: "))
        elif kind == "not_object":
            rows.append(Row(line(draw(st.one_of(st.lists(st.integers(), max_size=3),
                                                st.integers(), nasty_text(exclude="\r\n")))),
                            reason="expected a JSON object of lead fields"))
        elif kind == "blank":
            rows.append(Row(draw(st.sampled_from(["", "  ", "\t", "\x0b\x0c"])) + "\n",
                            blank=True))
        elif kind == "duplicate":
            first, first_email = draw(st.sampled_from(kept))
            obj["email"] = first_email.upper()
            rows.append(Row(line(obj), reason=f"duplicate of line "
                            f"{physical_start(rows, first) - 1} (that row is kept)"))
        elif kind == "bom":
            rows.append(Row("\ufeff" + line(obj), reason="not valid JSON: "))
        else:  # suppressed
            suppressed.append(email)
            rows.append(Row(line(obj), reason="suppressed (unsubscribed)"))
    text = "".join(r.text for r in rows)
    # A row that starts with a BOM is bad unless it opens the file (where the BOM is the
    # file's own); a file BOM in front keeps it bad.
    first_is_bom = bool(rows) and rows[0].reason == "not valid JSON: " and \
        rows[0].text.startswith("\ufeff")
    bom = first_is_bom or (draw(st.booleans()) and not latin)
    data = (("\ufeff" if bom else "") + text).encode()
    if latin and PLACEHOLDER.encode() in data:
        pieces = data.split(PLACEHOLDER.encode())
        data = pieces[0] + b"".join(draw(st.sampled_from(INVALID_UTF8)) + p
                                    for p in pieces[1:])
    else:
        latin = False
    return Plan(rows, suppressed, latin, data)



@EXAMPLES
@given(json_plans())
def test_json_lines_keep_good_rows_and_name_bad_rows_by_line(ws: Workspace, plan: Plan) -> None:
    check_plan(ws, plan, ".jsonl", header_lines=0)
