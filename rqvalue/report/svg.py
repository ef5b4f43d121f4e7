"""SVG building blocks of the report's charts: series, scales and ticks, the frame, axes, legend and
notes of a chart, and text escaping. `rqvalue.report.charts` puts them together."""

import dataclasses
import html
import math
from typing import Callable, List, Optional, Sequence, Tuple, Union

# Colour-blind-safe palette (Okabe-Ito, darkened yellow): series take them in order unless they name a colour.
PALETTE = ("#0072b2", "#e69f00", "#009e73", "#cc79a7", "#56b4e9", "#d55e00", "#7f7f7f", "#b8a300")


FONT = "-apple-system, 'Segoe UI', Roboto, Helvetica, Arial, sans-serif"


AXIS = "#444"


GRID = "#e5e5e5"


TEXT = "#222"


MUTED = "#666"


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


@dataclasses.dataclass
class Frame:
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


def text_width(text: str, size: float = 12) -> float:
    return len(text) * size * 0.58


def legend_rows(names: Sequence[str], width: float) -> List[List[int]]:
    rows: List[List[int]] = [[]]
    used = 0.0
    for i, name in enumerate(names):
        item = 30 + text_width(name) + 16
        if rows[-1] and used + item > width:
            rows.append([])
            used = 0.0
        rows[-1].append(i)
        used += item
    return rows if rows[0] else []


def open_chart(width: int, height: int, title: str) -> List[str]:
    return [f'<svg class="chart" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
            f'style="max-width:{width}px" role="img" aria-label="{esc(title)}" font-family="{esc(FONT)}" '
            f'font-size="12">',
            f"<title>{esc(title)}</title>",
            f'<rect x="0" y="0" width="{width}" height="{height}" fill="#fff"/>',
            f'<text x="{width / 2:.1f}" y="20" text-anchor="middle" font-size="14" font-weight="600" '
            f'fill="{TEXT}">{esc(title)}</text>']


def make_frame(width: int, height: int, legend_names: Sequence[str], show_legend: Optional[bool] = None,
               left: float = 64, right_margin: float = 18, bottom_margin: float = 50, notes: int = 0
               ) -> Tuple[Frame, List[List[int]]]:
    """The plot rectangle and the legend rows; by default a legend is shown for two or more series."""
    show = len(legend_names) > 1 if show_legend is None else show_legend
    rows = legend_rows(legend_names, width - 40) if show else []
    top = 34 + 18 * len(rows) + (6 if rows else 4)
    bottom = height - bottom_margin - 14 * notes
    return Frame(width, height, left, top, width - right_margin, bottom), rows


def legend_svg(names: Sequence[str], colors: Sequence[str], dashes: Sequence[bool], rows: List[List[int]],
               width: int, kind: str = "line") -> List[str]:
    parts = []
    for r, row in enumerate(rows):
        total = sum(30 + text_width(names[i]) + 16 for i in row) - 16
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
            parts.append(f'<text x="{x + 30:.1f}" y="{y + 4:.1f}" fill="{TEXT}">{esc(names[i])}</text>')
            x += 30 + text_width(names[i]) + 16
    return parts


def y_axis(frame: Frame, scale: Scale, label: str, fmt: Formatter, ticks: Optional[Sequence[float]] = None
           ) -> List[str]:
    parts = []
    for t in (ticks if ticks is not None else scale.ticks()):
        if not scale.accepts(t):
            continue
        y = frame.bottom - scale(t) * frame.plot_height
        if y < frame.top - 0.5 or y > frame.bottom + 0.5:
            continue
        parts.append(f'<line x1="{frame.left:.1f}" y1="{y:.1f}" x2="{frame.right:.1f}" y2="{y:.1f}" '
                     f'stroke="{GRID}"/>')
        parts.append(f'<text x="{frame.left - 6:.1f}" y="{y + 4:.1f}" text-anchor="end" fill="{MUTED}">'
                     f"{esc(fmt(t))}</text>")
    parts.append(f'<line x1="{frame.left:.1f}" y1="{frame.top:.1f}" x2="{frame.left:.1f}" '
                 f'y2="{frame.bottom:.1f}" stroke="{AXIS}"/>')
    if label:
        cy = (frame.top + frame.bottom) / 2
        parts.append(f'<text x="16" y="{cy:.1f}" text-anchor="middle" transform="rotate(-90 16 {cy:.1f})" '
                     f'fill="{TEXT}">{esc(label)}</text>')
    return parts


def x_axis(frame: Frame, scale: Scale, label: str, fmt: Formatter,
           ticks: Optional[Sequence[Tuple[float, str]]] = None) -> List[str]:
    parts = [f'<line x1="{frame.left:.1f}" y1="{frame.bottom:.1f}" x2="{frame.right:.1f}" '
             f'y2="{frame.bottom:.1f}" stroke="{AXIS}"/>']
    pairs = ticks if ticks is not None else [(t, fmt(t)) for t in scale.ticks(8)]
    for value, text in pairs:
        if not scale.accepts(value):
            continue
        x = frame.left + scale(value) * frame.plot_width
        if x < frame.left - 0.5 or x > frame.right + 0.5:
            continue
        parts.append(f'<line x1="{x:.1f}" y1="{frame.bottom:.1f}" x2="{x:.1f}" y2="{frame.bottom + 5:.1f}" '
                     f'stroke="{AXIS}"/>')
        parts.append(f'<text x="{x:.1f}" y="{frame.bottom + 18:.1f}" text-anchor="middle" fill="{MUTED}">'
                     f"{esc(text)}</text>")
    if label:
        parts.append(f'<text x="{(frame.left + frame.right) / 2:.1f}" y="{frame.bottom + 38:.1f}" '
                     f'text-anchor="middle" fill="{TEXT}">{esc(label)}</text>')
    return parts


def vertical_grid(frame: Frame, scale: Scale, ticks: Optional[Sequence[Tuple[float, str]]]) -> List[str]:
    values = [v for v, _ in ticks] if ticks is not None else scale.ticks(8)
    parts = []
    for v in values:
        if scale.accepts(v):
            x = frame.left + scale(v) * frame.plot_width
            if frame.left + 0.5 < x < frame.right + 0.5:
                parts.append(f'<line x1="{x:.1f}" y1="{frame.top:.1f}" x2="{x:.1f}" y2="{frame.bottom:.1f}" '
                             f'stroke="{GRID}"/>')
    return parts


def reference_lines(frame: Frame, scale: Scale, lines: Sequence[HLine], fmt: Formatter) -> List[str]:
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


def notes_svg(frame: Frame, notes: Sequence[str]) -> List[str]:
    return [f'<text x="{frame.left:.1f}" y="{frame.height - 8 - 14 * (len(notes) - 1 - i):.1f}" '
            f'fill="{MUTED}" font-size="11">{esc(note)}</text>' for i, note in enumerate(notes)]


def series_colors(series: Sequence[Series]) -> List[str]:
    return [s.color or PALETTE[i % len(PALETTE)] for i, s in enumerate(series)]


def floats(values: Sequence[Number]) -> List[float]:
    out = []
    for v in values:
        try:
            out.append(float(v))
        except (TypeError, ValueError):
            out.append(float("nan"))
    return out


def left_out_note(count: int, log: bool) -> List[str]:
    if not count:
        return []
    why = "not positive or not finite, so not shown on the log scale" if log else "not finite, so not shown"
    return [f"{count} value{'s' if count != 1 else ''} {why}"]
