"""Inline SVG charts for static HTML reports: pure functions that return SVG strings.

No matplotlib and no JavaScript: each function returns one self-contained `<svg>` element (a title,
axes with ticks and labels, a legend when there is more than one series, and a `<title>` tooltip on
every bar and point) that can be pasted into an HTML page as it is. The SVG refers to nothing
outside itself and carries no `xmlns` URL (inline SVG in HTML does not need one); it is also
well-formed XML on its own. Every piece of text is escaped.

Charts:
  - `line_chart`: lines (optionally with markers) over linear or log x/y axes;
  - `bar_chart`: one bar per category;
  - `grouped_bars`: one bar per series within each category (negative values grow downwards);
  - `histogram`: overlaid histograms of several series, optionally with a separate bar for
    counts that do not belong on the axis (the exact zeros of zero-inflated data).

Log axes. A value that is not positive (or not finite) has no place on a log axis: it is left out
of the drawing (a line breaks there, a bar is not drawn), and the chart prints how many values it
left out under the plot. A log axis with no positive value at all, or an explicit log range whose
lower end is not positive, raises ValueError. On a linear axis only non-finite values are left out.
"""

import bisect
import dataclasses
import html
import math
from typing import Callable, List, Optional, Sequence, Tuple, Union

# Colour-blind-safe palette (Okabe-Ito, darkened yellow): series take them in order unless they name a colour.
PALETTE = ("#0072b2", "#e69f00", "#009e73", "#cc79a7", "#56b4e9", "#d55e00", "#7f7f7f", "#b8a300")
FONT = "-apple-system, 'Segoe UI', Roboto, Helvetica, Arial, sans-serif"
_AXIS = "#444"
_GRID = "#e5e5e5"
_TEXT = "#222"
_MUTED = "#666"

Number = Union[int, float]
Formatter = Callable[[float], str]


@dataclasses.dataclass(frozen=True)
class Series:
    """One named series.

    Attributes:
      name: legend text.
      y: values (bar heights, or the y of each point of a line).
      x: x of each point (line charts only).
      color: any SVG colour; None takes the next colour of PALETTE.
      dash: draw the line dashed.
      markers: draw a dot at every point of a line.
      width: line width in pixels.
    """

    name: str
    y: Sequence[Number]
    x: Optional[Sequence[Number]] = None
    color: Optional[str] = None
    dash: bool = False
    markers: bool = False
    width: float = 2.0


@dataclasses.dataclass(frozen=True)
class HLine:
    """A horizontal reference line across the plot at `y`, labelled at its right end."""

    y: float
    label: str = ""
    color: str = "#b00020"
    dash: bool = True


def esc(text: object) -> str:
    """Escapes text for SVG/HTML element content and double-quoted attribute values."""
    return html.escape(str(text), quote=True)


def fmt_number(value: float) -> str:
    """Short, readable tick text: 0, 0.05, 2.5, 120, 1,500, 25k, 3.2M."""
    if value == 0 or not math.isfinite(value):
        return "0" if value == 0 else str(value)
    magnitude = abs(value)
    if magnitude >= 1e6:
        return f"{value / 1e6:.3g}M"
    if magnitude >= 1e4:
        return f"{value / 1e3:.3g}k"
    if magnitude >= 1000:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def fmt_percent(value: float) -> str:
    """A share in [0, 1] as a percentage: 0.8 -> '80%'."""
    return f"{value * 100:.0f}%" if abs(value * 100 - round(value * 100)) < 1e-9 else f"{value * 100:.1f}%"


class Scale:
    """Maps data values in [lo, hi] to [0, 1], linearly or by log10."""

    def __init__(self, lo: float, hi: float, log: bool = False):
        if not (math.isfinite(lo) and math.isfinite(hi)):
            raise ValueError(f"axis range must be finite, got [{lo}, {hi}]")
        if log and lo <= 0:
            raise ValueError(f"a log axis needs a positive lower end, got {lo}")
        if hi < lo:
            lo, hi = hi, lo
        if hi == lo:  # a single value: give it some room
            if log:
                lo, hi = lo / 10, hi * 10
            else:
                pad = abs(lo) * 0.5 or 1.0
                lo, hi = lo - pad, hi + pad
        self.lo, self.hi, self.log = lo, hi, log

    def accepts(self, value: float) -> bool:
        """Whether the value can be placed on this axis (finite, and positive on a log axis)."""
        return value is not None and math.isfinite(value) and (value > 0 or not self.log)

    def __call__(self, value: float) -> float:
        if self.log:
            return (math.log10(value) - math.log10(self.lo)) / (math.log10(self.hi) - math.log10(self.lo))
        return (value - self.lo) / (self.hi - self.lo)

    def ticks(self, max_ticks: int = 6) -> List[float]:
        """Round tick values inside [lo, hi]."""
        if self.log:
            return _log_ticks(self.lo, self.hi, max_ticks)
        step = _nice_step((self.hi - self.lo) / max(max_ticks - 1, 1))
        first = math.ceil(self.lo / step - 1e-9)
        ticks = []
        k = first
        while k * step <= self.hi + step * 1e-9:
            ticks.append(_clean(k * step))
            k += 1
        return ticks


def _clean(value: float) -> float:
    """Removes float noise from tick values (0.30000000000000004 -> 0.3)."""
    return float(f"{value:.12g}")


def _nice_step(raw: float) -> float:
    if raw <= 0 or not math.isfinite(raw):
        return 1.0
    exponent = math.floor(math.log10(raw))
    for mantissa in (1, 2, 2.5, 5, 10):
        step = mantissa * 10 ** exponent
        if step >= raw * (1 - 1e-9):
            return step
    return 10 ** (exponent + 1)


def _log_ticks(lo: float, hi: float, max_ticks: int) -> List[float]:
    first, last = math.floor(math.log10(lo) + 1e-9), math.ceil(math.log10(hi) - 1e-9)
    decades = list(range(first, last + 1))
    stride = max(1, math.ceil(len(decades) / max_ticks))
    ticks = [_clean(10.0 ** d) for d in decades[::stride]]
    if len(decades) <= 2:  # a narrow range: add 2x and 5x ticks
        ticks = sorted({_clean(m * 10.0 ** d) for d in decades for m in (1, 2, 5)})
    inside = [t for t in ticks if lo * (1 - 1e-9) <= t <= hi * (1 + 1e-9)]
    return inside or [_clean(lo), _clean(hi)]


def nice_range(values: Sequence[Number], log: bool = False, include_zero: bool = False,
               pad: float = 0.0) -> Tuple[float, float]:
    """An axis range that holds the values, widened to round numbers (whole decades on a log axis).

    Values that the axis cannot show (see the module docstring) are ignored.

    Raises:
      ValueError: if no value can be shown (none finite, or none positive on a log axis).
    """
    usable = [float(v) for v in values if v is not None and math.isfinite(v) and (v > 0 or not log)]
    if not usable:
        kind = "positive" if log else "finite"
        raise ValueError(f"no {kind} value to place on the {'log' if log else 'linear'} axis")
    lo, hi = min(usable), max(usable)
    if log:
        first, last = math.floor(math.log10(lo) + 1e-9), math.ceil(math.log10(hi) - 1e-9)
        return 10.0 ** first, 10.0 ** max(last, first + 1)
    if include_zero:
        lo, hi = min(lo, 0.0), max(hi, 0.0)
    if hi == lo:
        return Scale(lo, hi).lo, Scale(lo, hi).hi
    span = hi - lo
    lo, hi = lo - span * pad, hi + span * pad
    step = _nice_step((hi - lo) / 5)
    nice_lo = math.floor(lo / step + 1e-9) * step
    nice_hi = math.ceil(hi / step - 1e-9) * step
    # Keep a zero baseline at zero rather than rounding it away.
    return _clean(nice_lo), _clean(nice_hi)


# ---------------------------------------------------------------------------------------------
# Layout


@dataclasses.dataclass
class _Frame:
    width: int
    height: int
    left: float
    top: float
    right: float
    bottom: float

    @property
    def plot_width(self) -> float:
        return self.right - self.left

    @property
    def plot_height(self) -> float:
        return self.bottom - self.top


def _text_width(text: str, size: float = 12) -> float:
    return len(text) * size * 0.58


def _legend_rows(names: Sequence[str], width: float) -> List[List[int]]:
    rows: List[List[int]] = [[]]
    used = 0.0
    for i, name in enumerate(names):
        item = 30 + _text_width(name) + 16
        if rows[-1] and used + item > width:
            rows.append([])
            used = 0.0
        rows[-1].append(i)
        used += item
    return rows if rows[0] else []


def _open(width: int, height: int, title: str) -> List[str]:
    return [f'<svg class="chart" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
            f'style="max-width:{width}px" role="img" aria-label="{esc(title)}" font-family="{esc(FONT)}" '
            f'font-size="12">',
            f"<title>{esc(title)}</title>",
            f'<rect x="0" y="0" width="{width}" height="{height}" fill="#fff"/>',
            f'<text x="{width / 2:.1f}" y="20" text-anchor="middle" font-size="14" font-weight="600" '
            f'fill="{_TEXT}">{esc(title)}</text>']


def _frame(width: int, height: int, legend_names: Sequence[str], show_legend: Optional[bool] = None,
           left: float = 64, right_margin: float = 18, bottom_margin: float = 50, notes: int = 0
           ) -> Tuple[_Frame, List[List[int]]]:
    """The plot rectangle and the legend rows; by default a legend is shown for two or more series."""
    show = len(legend_names) > 1 if show_legend is None else show_legend
    rows = _legend_rows(legend_names, width - 40) if show else []
    top = 34 + 18 * len(rows) + (6 if rows else 4)
    bottom = height - bottom_margin - 14 * notes
    return _Frame(width, height, left, top, width - right_margin, bottom), rows


def _legend(names: Sequence[str], colors: Sequence[str], dashes: Sequence[bool], rows: List[List[int]],
            width: int, kind: str = "line") -> List[str]:
    parts = []
    for r, row in enumerate(rows):
        total = sum(30 + _text_width(names[i]) + 16 for i in row) - 16
        x = (width - total) / 2
        y = 40 + 18 * r
        for i in row:
            if kind == "line":
                dash = ' stroke-dasharray="6 4"' if dashes[i] else ""
                parts.append(f'<line x1="{x:.1f}" y1="{y:.1f}" x2="{x + 24:.1f}" y2="{y:.1f}" '
                             f'stroke="{colors[i]}" stroke-width="2.5"{dash}/>')
            else:
                parts.append(f'<rect x="{x + 5:.1f}" y="{y - 6:.1f}" width="14" height="12" rx="2" '
                             f'fill="{colors[i]}" fill-opacity="{0.85 if kind == "bar" else 0.35}" '
                             f'stroke="{colors[i]}"/>')
            parts.append(f'<text x="{x + 30:.1f}" y="{y + 4:.1f}" fill="{_TEXT}">{esc(names[i])}</text>')
            x += 30 + _text_width(names[i]) + 16
    return parts


def _y_axis(frame: _Frame, scale: Scale, label: str, fmt: Formatter, ticks: Optional[Sequence[float]] = None
            ) -> List[str]:
    parts = []
    for t in (ticks if ticks is not None else scale.ticks()):
        if not scale.accepts(t):
            continue
        y = frame.bottom - scale(t) * frame.plot_height
        if y < frame.top - 0.5 or y > frame.bottom + 0.5:
            continue
        parts.append(f'<line x1="{frame.left:.1f}" y1="{y:.1f}" x2="{frame.right:.1f}" y2="{y:.1f}" '
                     f'stroke="{_GRID}"/>')
        parts.append(f'<text x="{frame.left - 6:.1f}" y="{y + 4:.1f}" text-anchor="end" fill="{_MUTED}">'
                     f"{esc(fmt(t))}</text>")
    parts.append(f'<line x1="{frame.left:.1f}" y1="{frame.top:.1f}" x2="{frame.left:.1f}" '
                 f'y2="{frame.bottom:.1f}" stroke="{_AXIS}"/>')
    if label:
        cy = (frame.top + frame.bottom) / 2
        parts.append(f'<text x="16" y="{cy:.1f}" text-anchor="middle" transform="rotate(-90 16 {cy:.1f})" '
                     f'fill="{_TEXT}">{esc(label)}</text>')
    return parts


def _x_axis_numeric(frame: _Frame, scale: Scale, label: str, fmt: Formatter,
                    ticks: Optional[Sequence[Tuple[float, str]]] = None) -> List[str]:
    parts = [f'<line x1="{frame.left:.1f}" y1="{frame.bottom:.1f}" x2="{frame.right:.1f}" '
             f'y2="{frame.bottom:.1f}" stroke="{_AXIS}"/>']
    pairs = ticks if ticks is not None else [(t, fmt(t)) for t in scale.ticks(8)]
    for value, text in pairs:
        if not scale.accepts(value):
            continue
        x = frame.left + scale(value) * frame.plot_width
        if x < frame.left - 0.5 or x > frame.right + 0.5:
            continue
        parts.append(f'<line x1="{x:.1f}" y1="{frame.bottom:.1f}" x2="{x:.1f}" y2="{frame.bottom + 5:.1f}" '
                     f'stroke="{_AXIS}"/>')
        parts.append(f'<text x="{x:.1f}" y="{frame.bottom + 18:.1f}" text-anchor="middle" fill="{_MUTED}">'
                     f"{esc(text)}</text>")
    if label:
        parts.append(f'<text x="{(frame.left + frame.right) / 2:.1f}" y="{frame.bottom + 38:.1f}" '
                     f'text-anchor="middle" fill="{_TEXT}">{esc(label)}</text>')
    return parts


def _vertical_grid(frame: _Frame, scale: Scale, ticks: Optional[Sequence[Tuple[float, str]]]) -> List[str]:
    values = [v for v, _ in ticks] if ticks is not None else scale.ticks(8)
    parts = []
    for v in values:
        if scale.accepts(v):
            x = frame.left + scale(v) * frame.plot_width
            if frame.left + 0.5 < x < frame.right + 0.5:
                parts.append(f'<line x1="{x:.1f}" y1="{frame.top:.1f}" x2="{x:.1f}" y2="{frame.bottom:.1f}" '
                             f'stroke="{_GRID}"/>')
    return parts


def _hlines(frame: _Frame, scale: Scale, lines: Sequence[HLine], fmt: Formatter) -> List[str]:
    parts = []
    for line in lines:
        if not scale.accepts(line.y):
            continue
        y = frame.bottom - scale(line.y) * frame.plot_height
        if y < frame.top - 0.5 or y > frame.bottom + 0.5:
            continue
        dash = ' stroke-dasharray="6 4"' if line.dash else ""
        parts.append(f'<line x1="{frame.left:.1f}" y1="{y:.1f}" x2="{frame.right:.1f}" y2="{y:.1f}" '
                     f'stroke="{line.color}" stroke-width="1.5"{dash}><title>{esc(line.label or fmt(line.y))}'
                     f"</title></line>")
        if line.label:
            parts.append(f'<text x="{frame.right - 4:.1f}" y="{y - 5:.1f}" text-anchor="end" '
                         f'fill="{line.color}" font-size="11">{esc(line.label)}</text>')
    return parts


def _notes(frame: _Frame, notes: Sequence[str]) -> List[str]:
    return [f'<text x="{frame.left:.1f}" y="{frame.height - 8 - 14 * (len(notes) - 1 - i):.1f}" '
            f'fill="{_MUTED}" font-size="11">{esc(note)}</text>' for i, note in enumerate(notes)]


def _colors(series: Sequence[Series]) -> List[str]:
    return [s.color or PALETTE[i % len(PALETTE)] for i, s in enumerate(series)]


def _floats(values: Sequence[Number]) -> List[float]:
    out = []
    for v in values:
        try:
            out.append(float(v))
        except (TypeError, ValueError):
            out.append(float("nan"))
    return out


def _left_out_note(count: int, log: bool) -> List[str]:
    if not count:
        return []
    why = "not positive or not finite, so not shown on the log scale" if log else "not finite, so not shown"
    return [f"{count} value{'s' if count != 1 else ''} {why}"]


# ---------------------------------------------------------------------------------------------
# Charts


def line_chart(series: Sequence[Series], *, title: str, x_label: str = "", y_label: str = "",
               x_log: bool = False, y_log: bool = False,
               x_range: Optional[Tuple[float, float]] = None, y_range: Optional[Tuple[float, float]] = None,
               x_format: Formatter = fmt_number, y_format: Formatter = fmt_number,
               x_ticks: Optional[Sequence[Tuple[float, str]]] = None, hlines: Sequence[HLine] = (),
               width: int = 560, height: int = 360) -> str:
    """Lines through (x, y) points; a point an axis cannot show breaks its line (see module docstring).

    Args:
      series: the lines; each needs `x` and `y` of equal length.
      x_range, y_range: axis ranges; by default round numbers around the data.
      x_ticks: explicit (value, text) ticks of the x axis.
      hlines: horizontal reference lines.

    Raises:
      ValueError: on a series without x or with x and y of different lengths, or an axis that has
        nothing to show (see the module docstring).
    """
    xs_all, ys_all = [], []
    for s in series:
        if s.x is None or len(s.x) != len(s.y):
            raise ValueError(f"series {s.name!r}: a line needs x and y of equal length")
        xs_all += _floats(s.x)
        ys_all += _floats(s.y)
    x_scale = Scale(*(x_range or nice_range(xs_all, log=x_log)), log=x_log)
    y_scale = Scale(*(y_range or nice_range(ys_all + [h.y for h in hlines], log=y_log)), log=y_log)
    left_out = sum(1 for x, y in zip(xs_all, ys_all) if not (x_scale.accepts(x) and y_scale.accepts(y)))
    notes = _left_out_note(left_out, x_log or y_log)
    colors = _colors(series)
    frame, rows = _frame(width, height, [s.name for s in series], notes=len(notes))
    parts = _open(width, height, title)
    parts += _legend([s.name for s in series], colors, [s.dash for s in series], rows, width)
    parts += _vertical_grid(frame, x_scale, x_ticks)
    parts += _y_axis(frame, y_scale, y_label, y_format)
    parts += _x_axis_numeric(frame, x_scale, x_label, x_format, x_ticks)
    # Clip lines to the plot area, with room for markers that sit on its edges.
    clip = _clip_id(f"{title}|{frame}|{[s.name for s in series]}")
    parts.append(f'<clipPath id="{clip}"><rect x="{frame.left - 5:.1f}" y="{frame.top - 5:.1f}" '
                 f'width="{frame.plot_width + 10:.1f}" height="{frame.plot_height + 10:.1f}"/></clipPath>')
    parts.append(f'<g clip-path="url(#{clip})">')
    for s, color in zip(series, colors):
        segments: List[List[Tuple[float, float, float, float]]] = [[]]
        for x, y in zip(_floats(s.x), _floats(s.y)):
            if x_scale.accepts(x) and y_scale.accepts(y):
                px = frame.left + x_scale(x) * frame.plot_width
                py = frame.bottom - y_scale(y) * frame.plot_height
                segments[-1].append((px, py, x, y))
            elif segments[-1]:
                segments.append([])
        dash = ' stroke-dasharray="7 5"' if s.dash else ""
        for segment in segments:
            if len(segment) >= 2:
                points = " ".join(f"{px:.1f},{py:.1f}" for px, py, _, _ in segment)
                parts.append(f'<polyline points="{points}" fill="none" stroke="{color}" '
                             f'stroke-width="{s.width}" stroke-linejoin="round"{dash}/>')
            if s.markers or len(segment) == 1:
                for px, py, x, y in segment:
                    parts.append(f'<circle cx="{px:.1f}" cy="{py:.1f}" r="3.5" fill="{color}">'
                                 f"<title>{esc(s.name)}: x={esc(x_format(x))}, y={esc(y_format(y))}</title>"
                                 f"</circle>")
    parts.append("</g>")
    parts += _hlines(frame, y_scale, hlines, y_format)
    parts += _notes(frame, notes)
    parts.append("</svg>")
    return "\n".join(parts)


def _clip_id(key: str) -> str:
    """A stable id for a chart's clip path: ids must be unique within a page, so it hashes what the chart shows."""
    digest = 0
    for ch in key:
        digest = (digest * 131 + ord(ch)) % 1_000_000_007
    return f"clip{digest}"


def grouped_bars(categories: Sequence[str], series: Sequence[Series], *, title: str, x_label: str = "",
                 y_label: str = "", y_log: bool = False, y_range: Optional[Tuple[float, float]] = None,
                 y_format: Formatter = fmt_number, hlines: Sequence[HLine] = (), width: int = 560,
                 height: int = 360, max_labels: int = 20, legend: Optional[bool] = None,
                 value_labels: bool = False) -> str:
    """Within each category, one bar per series, side by side.

    `legend` None shows a legend for two or more series; `value_labels` writes each value at its bar's end.

    On a linear axis bars grow from zero (down for negative values); on a log axis from the
    bottom of the axis, and values that are not positive are left out (see module docstring).
    When there are more categories than `max_labels`, only every k-th category is labelled.

    Raises:
      ValueError: if a series does not have one value per category, or an axis has nothing to show.
    """
    categories = [str(c) for c in categories]
    for s in series:
        if len(s.y) != len(categories):
            raise ValueError(f"series {s.name!r} has {len(s.y)} values for {len(categories)} categories")
    values = [v for s in series for v in _floats(s.y)]
    if y_range is None:
        y_range = nice_range(values + [h.y for h in hlines], log=y_log, include_zero=not y_log)
    y_scale = Scale(*y_range, log=y_log)
    left_out = sum(1 for v in values if not y_scale.accepts(v))
    notes = _left_out_note(left_out, y_log)
    colors = _colors(series)
    names = [s.name for s in series]
    frame, rows = _frame(width, height, names, show_legend=legend, notes=len(notes))
    parts = _open(width, height, title)
    parts += _legend(names, colors, [False] * len(names), rows, width, kind="bar")
    parts += _y_axis(frame, y_scale, y_label, y_format)
    base = 0.0 if not y_log and y_scale.lo <= 0 <= y_scale.hi else y_scale.lo
    base_y = frame.bottom - y_scale(base) * frame.plot_height
    n = max(len(categories), 1)
    slot = frame.plot_width / n
    group = slot * (0.8 if len(series) > 1 else 0.7)
    bar = group / max(len(series), 1)
    stride = max(1, math.ceil(len(categories) / max_labels))
    for c, category in enumerate(categories):
        x0 = frame.left + c * slot + (slot - group) / 2
        for i, (s, color) in enumerate(zip(series, colors)):
            value = _floats([s.y[c]])[0]
            if not y_scale.accepts(value):
                continue
            clamped = min(max(value, y_scale.lo), y_scale.hi)
            y = frame.bottom - y_scale(clamped) * frame.plot_height
            top, h = min(y, base_y), abs(base_y - y)
            label = f"{s.name + ', ' if s.name else ''}{category}: {y_format(value)}"
            parts.append(f'<rect x="{x0 + i * bar + 0.5:.1f}" y="{top:.1f}" width="{max(bar - 1, 0.5):.1f}" '
                         f'height="{max(h, 0.5):.1f}" fill="{color}" fill-opacity="0.85">'
                         f"<title>{esc(label)}</title></rect>")
            if value_labels:
                ty = top - 4 if value >= base else top + h + 11
                parts.append(f'<text x="{x0 + (i + 0.5) * bar:.1f}" y="{ty:.1f}" text-anchor="middle" '
                             f'font-size="10" fill="{_MUTED}">{esc(y_format(value))}</text>')
        if c % stride == 0:
            cx = frame.left + (c + 0.5) * slot
            parts.append(f'<text x="{cx:.1f}" y="{frame.bottom + 18:.1f}" text-anchor="middle" '
                         f'fill="{_MUTED}">{esc(category)}</text>')
    parts.append(f'<line x1="{frame.left:.1f}" y1="{base_y:.1f}" x2="{frame.right:.1f}" y2="{base_y:.1f}" '
                 f'stroke="{_AXIS}"/>')
    if x_label:
        parts.append(f'<text x="{(frame.left + frame.right) / 2:.1f}" y="{frame.bottom + 38:.1f}" '
                     f'text-anchor="middle" fill="{_TEXT}">{esc(x_label)}</text>')
    parts += _hlines(frame, y_scale, hlines, y_format)
    parts += _notes(frame, notes)
    parts.append("</svg>")
    return "\n".join(parts)


def bar_chart(categories: Sequence[str], values: Sequence[Number], *, title: str, name: str = "",
              color: Optional[str] = None, **kwargs) -> str:
    """One bar per category; takes the keyword arguments of `grouped_bars`."""
    kwargs.setdefault("legend", False)
    return grouped_bars(categories, [Series(name, list(values), color=color)], title=title, **kwargs)


def histogram_counts(values: Sequence[Number], edges: Sequence[float]) -> List[int]:
    """Counts per bin [e_i, e_i+1) (the last bin also holds its right edge); values outside are not counted."""
    counts = [0] * (len(edges) - 1)
    for v in _floats(values):
        if not math.isfinite(v) or v < edges[0] or v > edges[-1]:
            continue
        i = min(bisect.bisect_right(edges, v) - 1, len(counts) - 1)
        counts[i] += 1
    return counts


def histogram(series: Sequence[Series], *, title: str, bins: Union[int, Sequence[float]] = 30,
              x_label: str = "", y_label: str = "count", y_log: bool = False,
              x_format: Formatter = fmt_number, y_format: Formatter = fmt_number,
              x_ticks: Optional[Sequence[Tuple[float, str]]] = None,
              extra_counts: Optional[Sequence[Number]] = None, extra_label: str = "0",
              width: int = 640, height: int = 360) -> str:
    """Overlaid histograms (a light fill and a step outline per series) of the series' `y` values.

    Args:
      series: the value sets to count (their `y`).
      bins: a number of equal bins over the range of all finite values, or the bin edges.
      extra_counts: one count per series drawn as a separate group of bars left of the axis, under
        `extra_label`; for values that have no place on the x axis (e.g. the exact zeros of a
        zero-inflated variable shown on a log axis).
      x_ticks: explicit (value, text) ticks of the x axis, e.g. log1p positions labelled in the
        original units.

    Raises:
      ValueError: if there is nothing to count, or the bin edges are not increasing.
    """
    values = [v for s in series for v in _floats(s.y) if math.isfinite(v)]
    if isinstance(bins, int):
        if bins < 1:
            raise ValueError(f"bins must be at least 1, got {bins}")
        if not values:
            raise ValueError("no finite value to count")
        lo, hi = min(values), max(values)
        if hi == lo:
            lo, hi = lo - 0.5, hi + 0.5
        edges = [lo + (hi - lo) * i / bins for i in range(bins + 1)]
    else:
        edges = [float(e) for e in bins]
        if len(edges) < 2 or any(b <= a for a, b in zip(edges, edges[1:])):
            raise ValueError("bin edges must be at least two increasing values")
    counts = [histogram_counts(s.y, edges) for s in series]
    extra = [float(c) for c in extra_counts] if extra_counts is not None else None
    if extra is not None and len(extra) != len(series):
        raise ValueError(f"extra_counts needs one count per series ({len(series)}), got {len(extra)}")
    all_counts = [c for cs in counts for c in cs] + (extra or [])
    y_range = nice_range(all_counts, log=y_log, include_zero=not y_log)
    y_scale = Scale(*y_range, log=y_log)
    colors = _colors(series)
    names = [s.name for s in series]
    frame, rows = _frame(width, height, names)
    parts = _open(width, height, title)
    parts += _legend(names, colors, [False] * len(names), rows, width, kind="fill")
    parts += _y_axis(frame, y_scale, y_label, y_format)
    main_left = frame.left
    if extra is not None:
        # A separate panel for the extra counts, then a gap, then the histogram proper.
        panel = max(44.0, 18.0 * len(series) + 16)
        bar = (panel - 12) / len(series)
        for i, (s, color, count) in enumerate(zip(series, colors, extra)):
            if not y_scale.accepts(count):
                continue
            y = frame.bottom - y_scale(count) * frame.plot_height
            parts.append(f'<rect x="{frame.left + 6 + i * bar:.1f}" y="{y:.1f}" width="{bar - 1:.1f}" '
                         f'height="{max(frame.bottom - y, 0.5):.1f}" fill="{color}" fill-opacity="0.85">'
                         f"<title>{esc(s.name)}, {esc(extra_label)}: {esc(y_format(count))}</title></rect>")
            parts.append(f'<text x="{frame.left + 6 + (i + 0.5) * bar:.1f}" y="{y - 4:.1f}" text-anchor="middle" '
                         f'font-size="10" fill="{_MUTED}">{esc(y_format(count))}</text>')
        parts.append(f'<text x="{frame.left + panel / 2:.1f}" y="{frame.bottom + 18:.1f}" text-anchor="middle" '
                     f'fill="{_TEXT}" font-weight="600">{esc(extra_label)}</text>')
        gap_x = frame.left + panel + 6
        parts.append(f'<line x1="{gap_x:.1f}" y1="{frame.top:.1f}" x2="{gap_x:.1f}" y2="{frame.bottom + 6:.1f}" '
                     f'stroke="#999" stroke-dasharray="3 3"/>')
        main_left = gap_x + 8
    main = _Frame(frame.width, frame.height, main_left, frame.top, frame.right, frame.bottom)
    x_scale = Scale(edges[0], edges[-1])
    parts += _x_axis_numeric(main, x_scale, x_label, x_format, x_ticks)
    parts.append(f'<line x1="{frame.left:.1f}" y1="{frame.bottom:.1f}" x2="{main.right:.1f}" '
                 f'y2="{frame.bottom:.1f}" stroke="{_AXIS}"/>')
    for s, color, cs in zip(series, colors, counts):
        path = []
        for i, count in enumerate(cs):
            x0 = main.left + x_scale(edges[i]) * main.plot_width
            x1 = main.left + x_scale(edges[i + 1]) * main.plot_width
            if y_scale.accepts(count):
                y = frame.bottom - y_scale(min(count, y_scale.hi)) * frame.plot_height
                parts.append(f'<rect x="{x0:.1f}" y="{y:.1f}" width="{max(x1 - x0, 0.5):.1f}" '
                             f'height="{max(frame.bottom - y, 0):.1f}" fill="{color}" fill-opacity="0.18">'
                             f"<title>{esc(s.name)}: {esc(x_format(edges[i]))} to {esc(x_format(edges[i + 1]))}: "
                             f"{esc(y_format(count))}</title></rect>")
            else:
                y = frame.bottom
            path.append(f"{x0:.1f},{y:.1f} {x1:.1f},{y:.1f}")
        first_x = main.left + x_scale(edges[0]) * main.plot_width
        last_x = main.left + x_scale(edges[-1]) * main.plot_width
        points = f"{first_x:.1f},{frame.bottom:.1f} " + " ".join(path) + f" {last_x:.1f},{frame.bottom:.1f}"
        parts.append(f'<polyline points="{points}" fill="none" stroke="{color}" stroke-width="1.8" '
                     f'stroke-linejoin="round"/>')
    parts.append("</svg>")
    return "\n".join(parts)
