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
import math
from typing import List, Optional, Sequence, Tuple, Union

from rqvalue.report.svg import (
    AXIS,
    MUTED,
    TEXT,
    Formatter,
    Frame,
    HLine,
    Number,
    Scale,
    Series,
    esc,
    floats,
    fmt_number,
    left_out_note,
    legend_svg,
    make_frame,
    nice_range,
    notes_svg,
    open_chart,
    reference_lines,
    series_colors,
    vertical_grid,
    x_axis,
    y_axis,
)


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
        xs_all += floats(s.x)
        ys_all += floats(s.y)
    x_scale = Scale(*(x_range or nice_range(xs_all, log=x_log)), log=x_log)
    y_scale = Scale(*(y_range or nice_range(ys_all + [h.y for h in hlines], log=y_log)), log=y_log)
    left_out = sum(1 for x, y in zip(xs_all, ys_all) if not (x_scale.accepts(x) and y_scale.accepts(y)))
    notes = left_out_note(left_out, x_log or y_log)
    colors = series_colors(series)
    frame, rows = make_frame(width, height, [s.name for s in series], notes=len(notes))
    parts = open_chart(width, height, title)
    parts += legend_svg([s.name for s in series], colors, [s.dash for s in series], rows, width)
    parts += vertical_grid(frame, x_scale, x_ticks)
    parts += y_axis(frame, y_scale, y_label, y_format)
    parts += x_axis(frame, x_scale, x_label, x_format, x_ticks)
    # Clip lines to the plot area, with room for markers that sit on its edges.
    clip = _clip_id(f"{title}|{frame}|{[s.name for s in series]}")
    parts.append(f'<clipPath id="{clip}"><rect x="{frame.left - 5:.1f}" y="{frame.top - 5:.1f}" '
                 f'width="{frame.plot_width + 10:.1f}" height="{frame.plot_height + 10:.1f}"/></clipPath>')
    parts.append(f'<g clip-path="url(#{clip})">')
    for s, color in zip(series, colors):
        segments: List[List[Tuple[float, float, float, float]]] = [[]]
        for x, y in zip(floats(s.x), floats(s.y)):
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
    parts += reference_lines(frame, y_scale, hlines, y_format)
    parts += notes_svg(frame, notes)
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
    values = [v for s in series for v in floats(s.y)]
    if y_range is None:
        y_range = nice_range(values + [h.y for h in hlines], log=y_log, include_zero=not y_log)
    y_scale = Scale(*y_range, log=y_log)
    left_out = sum(1 for v in values if not y_scale.accepts(v))
    notes = left_out_note(left_out, y_log)
    colors = series_colors(series)
    names = [s.name for s in series]
    frame, rows = make_frame(width, height, names, show_legend=legend, notes=len(notes))
    parts = open_chart(width, height, title)
    parts += legend_svg(names, colors, [False] * len(names), rows, width, kind="bar")
    parts += y_axis(frame, y_scale, y_label, y_format)
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
            value = floats([s.y[c]])[0]
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
                             f'font-size="10" fill="{MUTED}">{esc(y_format(value))}</text>')
        if c % stride == 0:
            cx = frame.left + (c + 0.5) * slot
            parts.append(f'<text x="{cx:.1f}" y="{frame.bottom + 18:.1f}" text-anchor="middle" '
                         f'fill="{MUTED}">{esc(category)}</text>')
    parts.append(f'<line x1="{frame.left:.1f}" y1="{base_y:.1f}" x2="{frame.right:.1f}" y2="{base_y:.1f}" '
                 f'stroke="{AXIS}"/>')
    if x_label:
        parts.append(f'<text x="{(frame.left + frame.right) / 2:.1f}" y="{frame.bottom + 38:.1f}" '
                     f'text-anchor="middle" fill="{TEXT}">{esc(x_label)}</text>')
    parts += reference_lines(frame, y_scale, hlines, y_format)
    parts += notes_svg(frame, notes)
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
    for v in floats(values):
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
    values = [v for s in series for v in floats(s.y) if math.isfinite(v)]
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
    colors = series_colors(series)
    names = [s.name for s in series]
    frame, rows = make_frame(width, height, names)
    parts = open_chart(width, height, title)
    parts += legend_svg(names, colors, [False] * len(names), rows, width, kind="fill")
    parts += y_axis(frame, y_scale, y_label, y_format)
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
                         f'font-size="10" fill="{MUTED}">{esc(y_format(count))}</text>')
        parts.append(f'<text x="{frame.left + panel / 2:.1f}" y="{frame.bottom + 18:.1f}" text-anchor="middle" '
                     f'fill="{TEXT}" font-weight="600">{esc(extra_label)}</text>')
        gap_x = frame.left + panel + 6
        parts.append(f'<line x1="{gap_x:.1f}" y1="{frame.top:.1f}" x2="{gap_x:.1f}" y2="{frame.bottom + 6:.1f}" '
                     f'stroke="#999" stroke-dasharray="3 3"/>')
        main_left = gap_x + 8
    main = Frame(frame.width, frame.height, main_left, frame.top, frame.right, frame.bottom)
    x_scale = Scale(edges[0], edges[-1])
    parts += x_axis(main, x_scale, x_label, x_format, x_ticks)
    parts.append(f'<line x1="{frame.left:.1f}" y1="{frame.bottom:.1f}" x2="{main.right:.1f}" '
                 f'y2="{frame.bottom:.1f}" stroke="{AXIS}"/>')
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
