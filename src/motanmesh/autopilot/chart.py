"""Inline SVG charts of water levels and splits over time (no JavaScript, no external files).

Used by the console and by the demo's picture of a run.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape
from typing import Any, Final

__all__ = ["COLORS", "chart_svg", "levels_chart", "split_chart"]

COLORS: Final = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b")


def chart_svg(
    series: Mapping[str, Sequence[tuple[float, float]]],
    *,
    title: str,
    width: int = 640,
    height: int = 200,
    y_max: float | None = None,
    y_label: str = "",
    lines: Mapping[str, float] | None = None,
    css_class: str = "chart",
    percent: bool = False,
) -> str:
    """A line chart: one polyline per series of ``(t, value)`` points, horizontal reference
    ``lines`` (label → value), time on x relative to the first point."""
    left, right, top, bottom = 48, 130, 22, 28
    pw, ph = width - left - right, height - top - bottom
    points = [p for s in series.values() for p in s]
    t0 = min((p[0] for p in points), default=0.0)
    t1 = max((p[0] for p in points), default=1.0)
    span = max(t1 - t0, 1.0)
    top_value = max([*(p[1] for p in points), *(lines or {}).values(), 0.1])
    y_top = y_max if y_max is not None else top_value * 1.15

    def x(t: float) -> float:
        return left + pw * (t - t0) / span

    def y(v: float) -> float:
        return top + ph * (1 - min(max(v, 0.0), y_top) / y_top)

    def label(v: float) -> str:
        return f"{v * 100:.0f}%" if percent else f"{v:.2f}"

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="{css_class}" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{escape(title)}">',
        f'<rect x="0" y="0" width="{width}" height="{height}" fill="#fff"/>',
        f'<text x="{left}" y="14" font-size="12" font-family="sans-serif">{escape(title)}</text>',
        f'<line x1="{left}" y1="{top + ph}" x2="{left + pw}" y2="{top + ph}" stroke="#999"/>',
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + ph}" stroke="#999"/>',
    ]
    for frac in (0.0, 0.5, 1.0):
        v = y_top * frac
        out.append(
            f'<text x="{left - 4}" y="{y(v) + 4:.1f}" font-size="10" text-anchor="end" '
            f'font-family="sans-serif">{label(v)}</text>'
        )
    out.append(
        f'<text x="{left + pw}" y="{height - 8}" font-size="10" text-anchor="end" '
        f'font-family="sans-serif">{span:.0f}s</text>'
    )
    if y_label:
        out.append(
            f'<text x="{left}" y="{height - 8}" font-size="10" font-family="sans-serif">'
            f"{escape(y_label)}</text>"
        )
    for name, value in (lines or {}).items():
        out.append(
            f'<line class="ref" x1="{left}" y1="{y(value):.1f}" x2="{left + pw}" '
            f'y2="{y(value):.1f}" stroke="#888" stroke-dasharray="4 3"/>'
            f'<text x="{left + pw + 4}" y="{y(value) + 4:.1f}" font-size="10" '
            f'font-family="sans-serif" fill="#666">{escape(name)} {label(value)}</text>'
        )
    for i, (name, pts) in enumerate(series.items()):
        color = COLORS[i % len(COLORS)]
        if pts:
            path = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in pts)
            out.append(
                f'<polyline class="series" data-series="{escape(name)}" fill="none" '
                f'stroke="{color}" stroke-width="2" points="{path}"/>'
            )
        last = f" {label(pts[-1][1])}" if pts else ""
        out.append(
            f'<text x="{left + pw + 4}" y="{top + 12 + 14 * i}" font-size="11" '
            f'font-family="sans-serif" fill="{color}">{escape(name)}{last}</text>'
        )
    out.append("</svg>")
    return "".join(out)


def levels_chart(
    history: Sequence[Mapping[str, Any]], groups: Sequence[str], warning: float, **kw: Any
) -> str:
    """Water level (load / capacity) per group over time."""
    series = {g: [(float(p["t"]), float(p["levels"].get(g, 0.0))) for p in history] for g in groups}
    return chart_svg(
        series, title="water level per IDC group", lines={"warning": warning}, percent=True, **kw
    )


def split_chart(history: Sequence[Mapping[str, Any]], groups: Sequence[str], **kw: Any) -> str:
    """Per source group, the share of its calls sent to other groups, over time."""
    series = {
        f"{g} sent away": [
            (float(p["t"]), (100 - float(p["split"].get(g, {}).get(g, 100))) / 100.0)
            for p in history
        ]
        for g in groups
    }
    return chart_svg(series, title="share moved to other groups", y_max=1.0, percent=True, **kw)
