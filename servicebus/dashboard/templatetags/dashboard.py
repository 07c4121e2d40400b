"""Template filters of the dashboard: inline SVG sparklines, bars and number formats."""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Iterable
from typing import Any

from django import template
from django.utils.html import format_html
from django.utils.safestring import SafeString

register = template.Library()
# Shown where a figure is missing or not a number.
NO_FIGURE = "\N{EN DASH}"


def _finite(value: Any) -> float | None:
    """``value`` as a float, or None when it is not a finite number."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _ratio(value: Any, total: Any) -> float | None:
    """``value / total`` clamped to 0..1, or None when either is not a number."""
    try:
        ratio = float(value) / float(total)
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    return max(0.0, min(1.0, ratio)) if math.isfinite(ratio) else None


def _numbers(values: Any) -> list[float]:
    if not isinstance(values, Iterable) or isinstance(values, str | bytes | dict):
        return []
    out = []
    for value in values:
        # History points may be bare numbers or [timestamp, value] pairs.
        if isinstance(value, list | tuple) and value:
            value = value[-1]
        number = _finite(value)
        if number is not None:
            out.append(number)
    return out


@register.filter
def sparkline(values: Any, size: str = "120x24") -> SafeString:
    """Inline SVG polyline of a series (oldest first); empty series draw a flat line."""
    width, _, height = size.partition("x")
    w, h = float(width), float(height or 24)
    points = _numbers(values)
    if len(points) < 2:
        points = [0.0, 0.0] if not points else points * 2
    low, high = min(points), max(points)
    span = (high - low) or 1.0
    step = w / (len(points) - 1)
    coords = " ".join(
        f"{i * step:.1f},{h - 1 - (p - low) / span * (h - 2):.1f}" for i, p in enumerate(points)
    )
    # Stretched to its box's width; the stroke keeps its width (non-scaling).
    return format_html(
        '<svg class="spark" width="100%" height="{}" viewBox="0 0 {} {}" '
        'preserveAspectRatio="none" role="img" aria-label="last {} points, max {}">'
        '<polyline vector-effect="non-scaling-stroke" points="{}"/></svg>',
        int(h),
        int(w),
        int(h),
        len(points),
        _short(high),
        coords,
    )


# A history point is [start, calls, errors, p50_ms, p99_ms] (servicebus.telemetry.stats).
_SERIES = {"calls_per_s": 1, "errors_per_s": 2, "p50_ms": 3, "p99_ms": 4}


@register.filter
def series(history: Any, name: str) -> list[float]:
    """One series of a history, oldest first: counts become per-second rates, gaps 0.

    A rate leaves out the newest point: its slot is still filling, and would always dip.
    """
    column = _SERIES[name]
    points = [p for p in history or [] if isinstance(p, list | tuple) and len(p) > column]
    if column in (1, 2):
        points = points[:-1]
    if len(points) >= 2:
        try:
            step = float(points[1][0]) - float(points[0][0])
        except (TypeError, ValueError):
            step = 0.0
    else:
        step = 0.0
    out = []
    for point in points:
        value = point[column]
        try:
            number = float(value) if value is not None else 0.0
        except (TypeError, ValueError):
            number = 0.0
        if column in (1, 2) and step > 0:
            number /= step
        out.append(number)
    return out


@register.filter
def percent(value: Any, total: Any) -> int:
    """``value`` as a whole percentage of ``total`` (0-100, 0 when unknown)."""
    ratio = _ratio(value, total)
    return 0 if ratio is None else round(ratio * 100)


@register.filter
def share(value: Any, total: Any) -> str:
    """``value`` as a percentage of ``total`` with one decimal, for CSS (0-100)."""
    ratio = _ratio(value, total)
    return "0" if ratio is None else f"{ratio * 100:.1f}"


@register.filter
def at_least(value: Any, floor: Any) -> str:
    """``value`` or ``floor``, whichever is larger (a too-short bar stays visible)."""
    try:
        return f"{max(float(value), float(floor)):.1f}"
    except (TypeError, ValueError):
        return str(floor)


@register.filter
def pretty_json(value: Any) -> str:
    """Indented JSON (schemas)."""
    return json.dumps(value, indent=2, sort_keys=True, default=str)


def _short(value: float) -> str:
    if abs(value) >= 1000:
        return f"{value / 1000:.1f}k"
    return f"{value:.3g}"


@register.filter
def rate(value: Any) -> str:
    """A per-second figure, short: 0, 0.25, 12.5, 1.2k."""
    number = _finite(value)
    if number is None:
        return NO_FIGURE
    return "0" if number == 0 else _short(number)


@register.filter
def ms(value: Any) -> str:
    """Milliseconds from a value in milliseconds: 0.42 ms, 12 ms, 1.5 s."""
    number = _finite(value)
    if number is None:
        return NO_FIGURE
    if number >= 1000:
        return f"{number / 1000:.2f} s"
    if number >= 10:
        return f"{number:.0f} ms"
    return f"{number:.2g} ms"


@register.filter
def seconds_ms(value: Any) -> str:
    """Milliseconds from a value in seconds."""
    try:
        return ms(float(value) * 1000)
    except (TypeError, ValueError):
        return NO_FIGURE


@register.filter
def clock(value: Any) -> str:
    """A UNIX timestamp as UTC wall-clock time (HH:MM:SS.mmm)."""
    try:
        moment = dt.datetime.fromtimestamp(float(value), tz=dt.UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        return NO_FIGURE
    return moment.strftime("%H:%M:%S.") + f"{moment.microsecond // 1000:03d}"


@register.filter
def duration(value: Any) -> str:
    """An uptime or age in seconds as 42s, 5m 3s, 2h 10m, 3d 4h."""
    try:
        total = int(float(value))
    except (TypeError, ValueError, OverflowError):
        return NO_FIGURE
    days, rest = divmod(max(total, 0), 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    if minutes:
        return f"{minutes}m {secs}s"
    return f"{secs}s"
