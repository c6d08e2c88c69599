"""The printed report: plain-text tables on stdout, and ratios to a path's floor."""

from __future__ import annotations


def table(title: str, columns: list[str], rows: list[list[str]]) -> None:
    """A plain-text table on stdout."""
    widths = [max(len(str(c)), *(len(str(r[k])) for r in rows)) for k, c in enumerate(columns)]
    print(f"\n{title}")
    print("  ".join(str(c).ljust(w) for c, w in zip(columns, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print("  ".join(str(v).ljust(w) for v, w in zip(row, widths, strict=True)))


def ratio(value: float | None, floor: float | None) -> str:
    """value / floor to two places; "–" when either is missing."""
    return "–" if value is None or not floor else f"{value / floor:.2f}"
