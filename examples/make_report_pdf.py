"""Write campaigns/new-lead/the-7-follow-up-mistakes.pdf, the free report of `new-lead`.

A tiny PDF writer with no dependency: one Letter page of text in the standard Helvetica
fonts. Run it again after editing the text below:

    python3 examples/make_report_pdf.py
"""

from __future__ import annotations

import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "campaigns" / "new-lead" / "the-7-follow-up-mistakes.pdf"

TITLE = "The 7 follow-up mistakes that lose deals"
SUBTITLE = "A one-page report from Acme Follow-Up"
INTRO = ("Most deals are not lost to a competitor. They are lost to silence: the lead was "
         "interested, and nobody followed up in time, often enough, or well enough. "
         "Here are the seven mistakes we see most, and the fix for each.")
MISTAKES = [
    ("Answering new leads too slowly.",
     ("A lead answered within five minutes is many times likelier to be reached than one "
      "answered after thirty. Reply while they are still thinking about you.")),
    ("Stopping after one or two touches.",
     ("Most buyers say yes only after five or more touches; most salespeople stop after two. "
      "Plan the whole sequence before the first email goes out.")),
    ("Sending \"just checking in\".",
     ("Every touch should bring something new: a resource, a tip, a question, a short story "
      "from a customer like them.")),
    ("Using only email.",
     ("Mix channels. A call, a LinkedIn note or a handwritten postcard gets noticed when the "
      "inbox is full.")),
    ("Writing at the wrong time.",
     ("Send during the lead's business hours, in their own time zone, and never on a public "
      "holiday.")),
    ("Not stopping when they answer.",
     ("Nothing costs more trust than an automated follow-up to someone who already replied. "
      "The moment they answer, the sequence must stop and a person must take over.")),
    ("Letting quiet leads go cold.",
     ("A lead who is not ready today may be ready in six months. Move them to a useful, "
      "occasional newsletter instead of deleting them.")),
]
FOOTER = ("Acme Follow-Up Co. - 1200 Harbor Street, Suite 400, Portland, OR 97209, USA - "
          "https://acme.example/")

PAGE_W, PAGE_H, MARGIN = 612, 792, 64


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def _content() -> bytes:
    ops: list[str] = []
    y = PAGE_H - MARGIN

    def line(text: str, font: str, size: int, lead: int) -> None:
        nonlocal y
        ops.append(f"BT /{font} {size} Tf {MARGIN} {y} Td ({_escape(text)}) Tj ET")
        y -= lead

    line(TITLE, "F2", 22, 26)
    line(SUBTITLE, "F1", 12, 30)
    for chunk in textwrap.wrap(INTRO, 88):
        line(chunk, "F1", 11, 15)
    y -= 12
    for number, (head, body) in enumerate(MISTAKES, start=1):
        line(f"{number}. {head}", "F2", 12, 16)
        for chunk in textwrap.wrap(body, 88):
            line("    " + chunk, "F1", 11, 15)
        y -= 10
    y -= 6
    line("The fix for all seven: decide the follow-up plan once, then let a tool keep it.",
         "F2", 11, 28)
    line(FOOTER, "F1", 9, 12)
    return "\n".join(ops).encode("latin-1")


def build() -> bytes:
    stream = _content()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        (f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {PAGE_W} {PAGE_H}] "
         "/Resources << /Font << /F1 5 0 R /F2 6 0 R >> >> /Contents 4 0 R >>").encode(),
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica-Bold /Encoding /WinAnsiEncoding >>",
        (f"<< /Title ({_escape(TITLE)}) /Author (Acme Follow-Up Co.) "
         "/Producer (examples/make_report_pdf.py) >>").encode("latin-1"),
    ]
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for offset in offsets:
        out += b"%010d 00000 n \n" % offset
    out += (b"trailer\n<< /Size %d /Root 1 0 R /Info %d 0 R >>\nstartxref\n%d\n%%%%EOF\n"
            % (len(objects) + 1, len(objects), xref))
    return bytes(out)


if __name__ == "__main__":
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_bytes(build())
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes)")
