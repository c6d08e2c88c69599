"""Small inline-SVG charts: line charts, overlaid histograms and grouped bars.

Reports must open offline from a bucket or a mail attachment, so charts are drawn as inline SVG
text: no JavaScript, no CDN, no plotting library to install or import (matplotlib would add
tens of megabytes and a second of import time for four kinds of chart).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

# Colour-blind-safe (Okabe–Ito): candidate, champion, rules / reference, new.
PALETTE = ("#0072B2", "#D55E00", "#7F7F7F", "#009E73", "#CC79A7", "#E69F00", "#56B4E9")

_W, _H = 640, 340
_LEFT, _RIGHT, _TOP, _BOTTOM = 64, 16, 44, 52


@dataclass(frozen=True)
class Line:
    """One series of a line chart."""

    label: str
    x: Sequence[float]
    y: Sequence[float]
    color: str = PALETTE[0]
    dashed: bool = False
    markers: bool = False


@dataclass(frozen=True)
class Marker:
    """A highlighted point with a short label (e.g. the operating point at 99%)."""

    x: float
    y: float
    color: str
    label: str = ""


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Round tick values covering [lo, hi] (1, 2 or 5 times a power of ten apart)."""
    if not math.isfinite(lo) or not math.isfinite(hi):
        return []
    if hi <= lo:
        return [lo]
    raw = (hi - lo) / max(count, 1)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.ceil(lo / step - 1e-9) * step
    ticks = []
    value = first
    while value <= hi + step * 1e-9:
        ticks.append(round(value, 12))
        value += step
    return ticks


def _fmt_tick(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.6g}"


class _Frame:
    """Maps data coordinates to pixels and collects the SVG elements of one chart."""

    def __init__(
        self,
        x_range: tuple[float, float],
        y_range: tuple[float, float],
        *,
        width: int = _W,
        height: int = _H,
    ) -> None:
        self.x0, self.x1 = x_range
        self.y0, self.y1 = y_range
        if self.x1 <= self.x0:
            self.x1 = self.x0 + 1.0
        if self.y1 <= self.y0:
            self.y1 = self.y0 + 1.0
        self.width, self.height = width, height
        self.parts: list[str] = []

    def px(self, x: float) -> float:
        span = self.width - _LEFT - _RIGHT
        return _LEFT + (x - self.x0) / (self.x1 - self.x0) * span

    def py(self, y: float) -> float:
        span = self.height - _TOP - _BOTTOM
        return self.height - _BOTTOM - (y - self.y0) / (self.y1 - self.y0) * span

    def clamp_y(self, y: float) -> float:
        return min(max(y, self.y0), self.y1)

    def axes(
        self,
        title: str,
        x_label: str,
        y_label: str,
        *,
        x_ticks: Sequence[tuple[float, str]] | None = None,
    ) -> None:
        bottom, top = self.height - _BOTTOM, _TOP
        left, right = _LEFT, self.width - _RIGHT
        for tick in nice_ticks(self.y0, self.y1):
            y = self.py(tick)
            self.parts.append(
                f'<line x1="{left}" y1="{y:.1f}" x2="{right}" y2="{y:.1f}" stroke="#e5e5e5"/>'
                f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{_fmt_tick(tick)}</text>'
            )
        ticks = (
            x_ticks
            if x_ticks is not None
            else [(t, _fmt_tick(t)) for t in nice_ticks(self.x0, self.x1)]
        )
        for value, text in ticks:
            x = self.px(value)
            self.parts.append(
                f'<line x1="{x:.1f}" y1="{bottom}" x2="{x:.1f}" y2="{bottom + 4}" stroke="#555"/>'
                f'<text x="{x:.1f}" y="{bottom + 17}" text-anchor="middle">{escape(text)}</text>'
            )
        self.parts.append(
            f'<rect x="{left}" y="{top}" width="{right - left}" height="{bottom - top}" '
            'fill="none" stroke="#555"/>'
            f'<text x="{self.width / 2:.0f}" y="16" text-anchor="middle" '
            f'font-weight="bold">{escape(title)}</text>'
            f'<text x="{(left + right) / 2:.0f}" y="{self.height - 12}" '
            f'text-anchor="middle">{escape(x_label)}</text>'
            f'<text transform="translate(16 {(top + bottom) / 2:.0f}) rotate(-90)" '
            f'text-anchor="middle">{escape(y_label)}</text>'
        )

    def legend(self, entries: Sequence[tuple[str, str, bool]], corner: str = "above") -> None:
        """Entries of (label, colour, dashed): in a row above the plot, or stacked in a corner."""
        x = self.width - _RIGHT - 170 if corner.endswith("right") else _LEFT + 10
        y = _TOP + 14
        if corner.startswith("bottom"):
            y = self.height - _BOTTOM - 16 * len(entries) + 8
        if corner == "above":
            x, y = _LEFT, _TOP - 8
        for label, color, dashed in entries:
            dash = ' stroke-dasharray="6 4"' if dashed else ""
            self.parts.append(
                f'<line x1="{x}" y1="{y - 4}" x2="{x + 22}" y2="{y - 4}" stroke="{color}" '
                f'stroke-width="2.5"{dash}/>'
                f'<text x="{x + 28}" y="{y}">{escape(label)}</text>'
            )
            if corner == "above":
                # Roughly 6 px per character at font-size 11; enough to keep labels apart.
                x += 28 + 6 * len(label) + 18
            else:
                y += 16

    def render(self, title: str) -> str:
        body = "".join(self.parts)
        return (
            f'<svg xmlns="http://www.w3.org/2000/svg" role="img" width="{self.width}" '
            f'height="{self.height}" viewBox="0 0 {self.width} {self.height}" '
            f'font-family="sans-serif" font-size="11"><title>{escape(title)}</title>'
            f"{body}</svg>"
        )


def line_chart(
    lines: Sequence[Line],
    *,
    title: str,
    x_label: str,
    y_label: str,
    x_range: tuple[float, float] | None = None,
    y_range: tuple[float, float] | None = None,
    hlines: Sequence[tuple[float, str]] = (),
    markers: Sequence[Marker] = (),
    x_ticks: Sequence[tuple[float, str]] | None = None,
    legend: str = "above",
) -> str:
    """An SVG line chart; `hlines` are dashed reference lines such as the 99% target."""
    xs = [float(v) for line in lines for v in line.x]
    ys = [float(v) for line in lines for v in line.y] + [v for v, _ in hlines]
    frame = _Frame(
        x_range or ((min(xs), max(xs)) if xs else (0.0, 1.0)),
        y_range or ((min(ys), max(ys)) if ys else (0.0, 1.0)),
    )
    frame.axes(title, x_label, y_label, x_ticks=x_ticks)
    for value, text in hlines:
        y = frame.py(frame.clamp_y(value))
        frame.parts.append(
            f'<line x1="{_LEFT}" y1="{y:.1f}" x2="{frame.width - _RIGHT}" y2="{y:.1f}" '
            'stroke="#222" stroke-dasharray="3 3"/>'
            f'<text x="{_LEFT + 4}" y="{y - 4:.1f}">{escape(text)}</text>'
        )
    for line in lines:
        points = [
            (frame.px(float(x)), frame.py(frame.clamp_y(float(y))))
            for x, y in zip(line.x, line.y, strict=True)
            if math.isfinite(float(y))
        ]
        if not points:
            continue
        dash = ' stroke-dasharray="6 4"' if line.dashed else ""
        coords = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
        frame.parts.append(
            f'<polyline points="{coords}" fill="none" stroke="{line.color}" '
            f'stroke-width="2"{dash}><title>{escape(line.label)}</title></polyline>'
        )
        if line.markers or len(points) == 1:
            frame.parts.extend(
                f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{line.color}"/>' for x, y in points
            )
    for mark in markers:
        x, y = frame.px(mark.x), frame.py(frame.clamp_y(mark.y))
        frame.parts.append(
            f'<circle cx="{x:.1f}" cy="{y:.1f}" r="5" fill="none" stroke="{mark.color}" '
            f'stroke-width="2"><title>{escape(mark.label)}</title></circle>'
        )
    frame.legend([(line.label, line.color, line.dashed) for line in lines], legend)
    return frame.render(title)


def histogram_chart(
    edges: Sequence[float],
    series: Sequence[tuple[str, Sequence[float]]],
    *,
    title: str,
    x_label: str,
    y_label: str = "share of transfers",
    x_ticks: Sequence[tuple[float, str]] | None = None,
) -> str:
    """Overlaid histograms over the same bins, as translucent bars with outlines."""
    heights = [float(v) for _, values in series for v in values]
    top = max(heights) if heights else 1.0
    frame = _Frame((float(edges[0]), float(edges[-1])), (0.0, top * 1.1 or 1.0))
    frame.axes(title, x_label, y_label, x_ticks=x_ticks)
    for index, (label, values) in enumerate(series):
        color = PALETTE[index % len(PALETTE)]
        for lo, hi, value in zip(edges[:-1], edges[1:], values, strict=True):
            x, right = frame.px(float(lo)), frame.px(float(hi))
            y = frame.py(float(value))
            frame.parts.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{max(right - x, 0.5):.1f}" '
                f'height="{frame.py(0.0) - y:.1f}" fill="{color}" fill-opacity="0.35" '
                f'stroke="{color}"><title>{escape(label)}: {float(value):.3f}</title></rect>'
            )
    frame.legend([(label, PALETTE[i % len(PALETTE)], False) for i, (label, _) in enumerate(series)])
    return frame.render(title)


def bar_chart(
    categories: Sequence[str],
    series: Sequence[tuple[str, Sequence[float]]],
    *,
    title: str,
    y_label: str,
    y_range: tuple[float, float] = (0.0, 1.0),
) -> str:
    """Grouped vertical bars: one group per category, one bar per series."""
    frame = _Frame((0.0, float(len(categories) or 1)), y_range)
    frame.axes(title, "", y_label, x_ticks=[(i + 0.5, name) for i, name in enumerate(categories)])
    width = 0.8 / max(len(series), 1)
    for s, (label, values) in enumerate(series):
        color = PALETTE[s % len(PALETTE)]
        for i, value in enumerate(values):
            lo = i + 0.1 + s * width
            x, right = frame.px(lo), frame.px(lo + width)
            y = frame.py(frame.clamp_y(float(value)))
            frame.parts.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{right - x:.1f}" '
                f'height="{frame.py(y_range[0]) - y:.1f}" fill="{color}">'
                f"<title>{escape(label)} {escape(categories[i])}: {float(value):.3f}</title></rect>"
            )
    frame.legend([(label, PALETTE[i % len(PALETTE)], False) for i, (label, _) in enumerate(series)])
    return frame.render(title)
