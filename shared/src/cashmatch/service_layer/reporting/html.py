"""One self-contained HTML page: inline CSS, inline SVG, nothing fetched when it is opened."""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape

_CSS = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 1100px; color: #222;
       padding: 0 1rem; line-height: 1.4; }
h1 { font-size: 1.5rem; margin-bottom: .2rem; }
h2 { font-size: 1.15rem; margin-top: 2rem; border-bottom: 1px solid #ddd; padding-bottom: .2rem; }
.meta { color: #666; font-size: .9rem; }
.badge { display: inline-block; padding: .15rem .6rem; border-radius: .8rem; color: #fff;
         font-weight: bold; font-size: .9rem; }
.good { background: #1a7f37; } .bad { background: #c62828; } .neutral { background: #666; }
table { border-collapse: collapse; font-size: .9rem; margin: .5rem 0; }
th, td { border: 1px solid #ddd; padding: .25rem .6rem; text-align: right; }
th:first-child, td:first-child { text-align: left; }
th { background: #f4f4f4; }
tr.flag td { background: #fdecea; }
.charts { display: flex; flex-wrap: wrap; gap: 1rem; }
svg { background: #fff; border: 1px solid #eee; max-width: 100%; height: auto; }
"""


def esc(value: object) -> str:
    """HTML-escaped text of any value."""
    return escape(str(value))


def fmt(value: object, digits: int = 3) -> str:
    """A table cell: counts without decimals, ratios with `digits`, missing values as a dash."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int | float):
        number = float(value)
        if math.isnan(number):
            return "–"
        if number.is_integer() and abs(number) >= 2:
            return f"{int(number):,}"
        return f"{number:.{digits}f}"
    return esc(value)


def badge(text: str, kind: str) -> str:
    """A coloured label; kind is good, bad or neutral."""
    return f'<span class="badge {kind}">{esc(text)}</span>'


def table(
    header: Sequence[str],
    rows: Sequence[Sequence[object]],
    *,
    flagged: Sequence[bool] | None = None,
) -> str:
    """An HTML table; values go through `fmt`, strings already holding HTML are not allowed."""
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = []
    for index, row in enumerate(rows):
        cls = ' class="flag"' if flagged is not None and flagged[index] else ""
        cells = "".join(f"<td>{fmt(v)}</td>" for v in row)
        body.append(f"<tr{cls}>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def bullet_list(items: Sequence[str]) -> str:
    """An unordered list of plain-text items."""
    return "<ul>" + "".join(f"<li>{esc(i)}</li>" for i in items) + "</ul>"


def page(title: str, body: Sequence[str]) -> bytes:
    """The whole document as UTF-8 bytes; `body` holds already-escaped HTML fragments."""
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title><style>{_CSS}</style></head><body>"
        + "\n".join(body)
        + "</body></html>\n"
    ).encode()
