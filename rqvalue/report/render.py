"""Renders a `ReportData` as one HTML page: a header, then the sections `metrics` (the TFMA table,
candidate beside baseline), `lorenz`, `calibration`, `buckets`, `distribution`, `codes` and
`coverage`, each plot an inline SVG (`rqvalue.report.charts`). No JavaScript, no external resource:
the file can be mailed or attached as it is.
"""

import datetime
import math
from typing import List, Optional, Tuple

import numpy as np

from models import metrics as value_metrics
from pipeline.tfma_results import OVERALL, slice_order
from rqvalue.console import METRIC_COLUMNS
from rqvalue.report import charts
from rqvalue.report.gather import ModelScores, ReportData
from rqvalue.report.svg import PALETTE, HLine, Series, esc, fmt_number, fmt_percent
from schemas.features import VALUE_BUCKET_KEY

SECTIONS = (
    ("metrics", "Evaluation metrics"),
    ("lorenz", "Ranking: Lorenz curve and Gini"),
    ("calibration", "Calibration by predicted decile"),
    ("buckets", "Error and bias per value bucket"),
    ("distribution", "Distribution of labels and predictions"),
    ("codes", "RQ code usage per level"),
    ("coverage", "Interval coverage"),
)


_CANDIDATE_COLOR, _BASELINE_COLOR = PALETTE[0], PALETTE[1]
_LABEL_COLOR = "#222222"


_CSS = """
:root { --fg:#1f2328; --muted:#57606a; --line:#d8dee4; --bg:#f6f8fa; --accent:#0072b2; }
* { box-sizing: border-box; }
body { margin:0; background:var(--bg); color:var(--fg);
  font:14px/1.5 -apple-system,'Segoe UI',Roboto,Helvetica,Arial,sans-serif; }
header { background:#fff; border-bottom:1px solid var(--line); padding:20px 32px 12px; }
h1 { font-size:22px; margin:0 0 4px; }
.subtitle { color:var(--muted); margin:0 0 14px; }
.facts { display:grid; grid-template-columns:repeat(auto-fill,minmax(260px,1fr)); gap:6px 24px; margin:0; }
.facts div { min-width:0; }
.facts dt { color:var(--muted); font-size:12px; text-transform:uppercase; letter-spacing:.04em; }
.facts dd { margin:0; overflow-wrap:anywhere; font-weight:500; }
.path { font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace; font-size:12px; font-weight:400; }
.badge { display:inline-block; padding:1px 8px; border-radius:10px; font-size:12px; font-weight:600; }
.yes { background:#dafbe1; color:#116329; } .no { background:#ffebe9; color:#a40e26; }
.na { background:#eaeef2; color:#57606a; }
nav { margin-top:14px; font-size:13px; }
nav a { color:var(--accent); text-decoration:none; margin-right:14px; white-space:nowrap; }
main { padding:8px 32px 32px; max-width:1280px; }
section { background:#fff; border:1px solid var(--line); border-radius:8px; padding:16px 20px 18px;
  margin:18px 0; }
h2 { font-size:17px; margin:0 0 6px; }
.caption { color:var(--muted); margin:0 0 12px; max-width:980px; }
.charts { display:flex; flex-wrap:wrap; gap:12px 20px; }
.charts > svg { flex:1 1 440px; width:100%; height:auto; }
table.metrics { border-collapse:collapse; font-variant-numeric:tabular-nums; font-size:13px; }
table.metrics th, table.metrics td { padding:4px 10px; border-bottom:1px solid var(--line); text-align:right; }
table.metrics th { background:var(--bg); font-weight:600; }
table.metrics td.slice, table.metrics th.slice { text-align:left; }
table.metrics td.model { text-align:left; color:var(--muted); }
table.metrics tr.first td { border-top:2px solid var(--line); }
table.metrics td.better { font-weight:700; color:#116329; }
.note { color:var(--muted); font-size:13px; }
.warn { color:#a40e26; }
footer { color:var(--muted); font-size:12px; padding:0 32px 24px; }
"""


def _bucket_ids(data: ReportData) -> List[int]:
    return sorted(int(b) for b in np.unique(data.value_bucket))


def _bucket_name(bucket: int) -> str:
    return f"{bucket} (zeros)" if bucket == 0 else str(bucket)


def _slices(data: ReportData) -> List[Tuple[str, np.ndarray]]:
    """('overall', all rows) and ('0', rows of bucket 0), ... for the per-bucket plots."""
    rows = [(OVERALL, np.ones(data.labels.shape, dtype=bool))]
    rows += [(_bucket_name(b), data.value_bucket == b) for b in _bucket_ids(data)]
    return rows


def _model_style(scores: ModelScores) -> Tuple[str, bool]:
    return (_CANDIDATE_COLOR, False) if scores.role == "candidate" else (_BASELINE_COLOR, True)


def _badge(value: Optional[bool], yes: str = "yes", no: str = "no") -> str:
    if value is None:
        return '<span class="badge na">unknown</span>'
    return f'<span class="badge yes">{yes}</span>' if value else f'<span class="badge no">{no}</span>'


def _format_time(ms: int) -> str:
    return datetime.datetime.fromtimestamp(ms / 1000, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def _header(data: ReportData) -> str:
    run = data.run
    labels = data.labels
    spec = run.ingestion_spec
    facts = [
        ("Run", esc(run.run_id)),
        ("Run started", esc(_format_time(run.run_time_ms))),
        ("Pipeline", esc(run.pipeline_name or "unknown")),
        ("Data set (spine)", f'<span class="path">{esc(spec.get("spine", "unknown"))}</span>'),
        ("Feast repository", f'<span class="path">{esc(spec.get("feast_repo", "unknown"))}</span>'),
        ("Label", esc(run.label_key)),
        ("Candidate model", f'<span class="path">{esc(data.candidate.path)}</span>'),
        ("Baseline model", f'<span class="path">{esc(data.baseline.path)}</span>' if data.baseline
         else "none (no earlier blessed model)"),
        ("Blessed", _badge(run.blessed) + (f' <span class="note">failed: {esc("; ".join(data.validation_failures))}'
                                           "</span>" if data.validation_failures else "")),
        ("Pushed to", f'<span class="path">{esc(run.pushed_model)}</span>' if run.pushed_model else "not pushed"),
        ("Examples per split", " · ".join(f"{split} {count:,}" for split, count in run.example_counts.items())
         or "unknown"),
        (f"Scored examples ({'+'.join(run.eval_splits)})", f"{labels.size:,}"),
        ("Zero labels", f"{int((labels == 0).sum()):,} ({(labels == 0).mean():.1%})"),
        ("Mean / max label", f"{labels.mean():,.2f} / {labels.max():,.2f}"),
        ("Evaluation", f'<span class="path">{esc(run.evaluation_uri)}</span>'
                       + (" (from cache)" if run.evaluator_state == "cached" else "")),
    ]
    items = "\n".join(f"<div><dt>{title}</dt><dd>{value}</dd></div>" for title, value in facts)
    nav = " ".join(f'<a href="#{sid}">{i}. {esc(title)}</a>' for i, (sid, title) in enumerate(SECTIONS, 1))
    return (f"<header>\n<h1>rqvalue evaluation report</h1>\n"
            f'<p class="subtitle">{esc(run.pipeline_name or "pipeline")} · run {esc(run.run_id)} · '
            f"{esc('+'.join(run.eval_splits))} split, {labels.size:,} examples</p>\n<dl class=\"facts\">\n{items}\n</dl>\n<nav>{nav}</nav>\n"
            "</header>")


def _section(section_id: str, caption: str, body: str) -> str:
    number = [s for s, _ in SECTIONS].index(section_id) + 1
    title = dict(SECTIONS)[section_id]
    return (f'<section id="{section_id}">\n<h2>{number}. {esc(title)}</h2>\n<p class="caption">{caption}</p>\n'
            f"{body}\n</section>")


def _charts(*svgs: str) -> str:
    return '<div class="charts">\n' + "\n".join(svgs) + "\n</div>"


def _metrics_section(data: ReportData) -> str:
    models = [m for m in data.models() if m.metrics]
    slice_names = sorted({name for m in models for name in m.metrics}, key=slice_order)
    ranges = {}
    for b in _bucket_ids(data):
        rows = data.labels[data.value_bucket == b]
        ranges[f"{VALUE_BUCKET_KEY}={b}"] = "0" if b == 0 else f"{rows.min():,.2f} – {rows.max():,.2f}"
    head = "".join(f"<th>{esc(title)}</th>" for _, title, _, _ in METRIC_COLUMNS)
    model_head = "<th class=\"slice\">model</th>" if len(models) > 1 else ""
    lines = [f'<table class="metrics">\n<thead><tr><th class="slice">slice</th><th class="slice">eval labels</th>'
             f"{model_head}{head}</tr></thead>\n<tbody>"]
    for name in slice_names:
        for i, scores in enumerate(models):
            values = scores.metrics.get(name, {})
            cells = []
            for key, _, fmt, direction in METRIC_COLUMNS:
                value = values.get(key)
                where = f'data-slice="{esc(name)}" data-model="{esc(scores.role)}" data-metric="{key}"'
                if value is None:
                    cells.append(f"<td {where}>–</td>")
                    continue
                better = ""
                if direction and len(models) > 1 and math.isfinite(value):
                    others = [m.metrics.get(name, {}).get(key) for m in models if m is not scores]
                    others = [o for o in others if o is not None and math.isfinite(o)]
                    if others and all(value * direction > o * direction for o in others):
                        better = ' class="better"'
                text = fmt.format(value) if math.isfinite(value) else str(value)
                cells.append(f'<td{better} {where} data-value="{value!r}">{text}</td>')
            first = ' class="first"' if i == 0 else ""
            slice_cells = (f'<td class="slice" rowspan="{len(models)}">{esc(name)}</td>'
                           f'<td class="slice" rowspan="{len(models)}">{esc(ranges.get(name, "all"))}</td>'
                           if i == 0 else "")
            model_cell = f'<td class="model">{scores.role}</td>' if len(models) > 1 else ""
            lines.append(f"<tr{first}>{slice_cells}{model_cell}{''.join(cells)}</tr>")
    lines.append("</tbody>\n</table>")
    verdict = {True: "The candidate was <b>blessed</b>: it cleared the gate on the overall slice.",
               False: "The candidate was <b>not blessed</b>: it missed a threshold of the gate.",
               None: "No blessing was recorded."}[data.run.blessed]
    caption = ("TFMA's evaluation on the eval split, as recorded by the Evaluator: overall and per value bucket "
               f"(bucket 0 holds the zero labels; higher buckets hold larger labels). {verdict}")
    if len(models) > 1:
        caption += " The better of candidate and baseline is in <b class=\"better\">bold green</b>."
    else:
        caption += " There was no baseline: no earlier model had been blessed."
    return _section("metrics", caption, "\n".join(lines))


def _downsample(x: np.ndarray, y: np.ndarray, points: int = 400) -> Tuple[List[float], List[float]]:
    if x.size <= points:
        return x.tolist(), y.tolist()
    index = np.unique(np.linspace(0, x.size - 1, points).round().astype(int))
    return x[index].tolist(), y[index].tolist()


def _gain_curve(labels: np.ndarray, order: np.ndarray) -> Tuple[List[float], List[float]]:
    share = np.concatenate([[0.0], np.cumsum(labels[order]) / labels.sum()])
    population = np.arange(labels.size + 1) / labels.size
    return _downsample(population, share)


def _lorenz_section(data: ReportData) -> str:
    labels = data.labels
    caption = ("Customers are ranked by predicted value, highest first; the curve shows what share of the total "
               "actual value the top x% of them hold. The higher the curve, the better the ranking: the perfect "
               "ranking (sorted by the true label) is the ceiling, the diagonal is a random ranking. Normalized "
               "Gini = the model's area above the diagonal divided by the perfect ranking's.")
    if labels.sum() <= 0:
        return _section("lorenz", caption, '<p class="note">All eval labels are zero: there is nothing to rank.</p>')
    series = []
    for scores in data.models():
        color, dash = _model_style(scores)
        gini = value_metrics.normalized_gini(labels, scores.prediction)
        x, y = _gain_curve(labels, np.argsort(-scores.prediction, kind="stable"))
        series.append(Series(f"{scores.role} (normalized Gini {gini:.3f})", y, x=x, color=color, dash=dash))
    x, y = _gain_curve(labels, np.argsort(-labels, kind="stable"))
    series.append(Series("perfect ranking (1.000)", y, x=x, color=_LABEL_COLOR, width=1.5))
    series.append(Series("random (0.000)", [0.0, 1.0], x=[0.0, 1.0], color="#999999", dash=True, width=1.5))
    svg = charts.line_chart(series, title="Cumulative share of total value, customers ranked by prediction",
                            x_label="share of customers (ranked by prediction, highest first)",
                            y_label="share of total label", x_range=(0, 1), y_range=(0, 1),
                            x_format=fmt_percent, y_format=fmt_percent, width=760, height=460)
    return _section("lorenz", caption, _charts(svg))


def _calibration_section(data: ReportData) -> str:
    labels = data.labels
    groups = min(10, labels.size)
    series = []
    for scores in data.models():
        color, dash = _model_style(scores)
        table = value_metrics.decile_calibration(labels, scores.prediction, n=groups)
        x = list(range(1, groups + 1))
        series.append(Series(f"{scores.role}: mean prediction", table["pred_mean"].tolist(), x=x,
                             color=color, dash=dash, markers=True))
        series.append(Series(f"{scores.role}: mean label", table["label_mean"].tolist(), x=x,
                             color=_LABEL_COLOR if scores.role == "candidate" else "#8c8c8c",
                             dash=dash, markers=True))
    svg = charts.line_chart(series, title="Mean prediction and mean label per predicted decile",
                            x_label="decile of the prediction (1 = lowest predictions)",
                            y_label="mean value (log scale)", y_log=True, x_range=(0.5, groups + 0.5),
                            x_ticks=[(i, str(i)) for i in range(1, groups + 1)], width=760, height=440)
    caption = ("Eval examples are sorted by prediction and cut into ten groups of equal size. Within each, the "
               "mean prediction (coloured) is drawn beside the mean actual label (grey/black). Where the pairs "
               "coincide the model is calibrated; a prediction line above the label line over-predicts. The y "
               "axis is logarithmic; a decile whose mean label is exactly 0 cannot be drawn on it and is left out.")
    return _section("calibration", caption, _charts(svg))


def _buckets_section(data: ReportData) -> str:
    slices = _slices(data)
    names = [name for name, _ in slices]
    mae_series, bias_series = [], []
    for scores in data.models():
        color, _ = _model_style(scores)
        mae = [float(np.mean(np.abs(scores.prediction[rows] - data.labels[rows]))) for _, rows in slices]
        bias = [float(np.mean(scores.prediction[rows]) - np.mean(data.labels[rows])) for _, rows in slices]
        mae_series.append(Series(scores.role, mae, color=color))
        bias_series.append(Series(scores.role, bias, color=color))
    mae_svg = charts.grouped_bars(names, mae_series, title="Mean absolute error per value bucket",
                                  x_label="value bucket", y_label="MAE (label units)", legend=True)
    bias_svg = charts.grouped_bars(names, bias_series, title="Bias (mean prediction − mean label)",
                                   x_label="value bucket", y_label="bias (label units)", legend=True)
    caption = ("Computed from the scored eval split. Left: mean absolute error overall and per value bucket. Right: "
               "bias, the mean prediction minus the mean label: above zero the model over-predicts the bucket, "
               "below zero it under-predicts. Zero-inflated, heavy-tailed targets typically show positive bias on "
               "the zero bucket and negative bias on the top bucket; a good model shrinks both.")
    return _section("buckets", caption, _charts(mae_svg, bias_svg))


def _log1p_ticks(top: float, min_gap: float) -> List[Tuple[float, str]]:
    """Ticks for an axis of log1p(value) from 0 to top, labelled in label units, at least min_gap apart."""
    ticks: List[Tuple[float, str]] = []
    last = 0.0  # the axis starts at log1p(0); exact zeros have their own bar, so no "0" tick here
    for exponent in range(-3, 13):
        for mantissa in (1, 2, 5):
            value = mantissa * 10.0 ** exponent
            position = math.log1p(value)
            if position > top * 1.0001:
                return ticks
            if position - last >= min_gap:
                ticks.append((position, fmt_number(value)))
                last = position
    return ticks


def _distribution_section(data: ReportData) -> str:
    sets = [("eval label", data.labels, _LABEL_COLOR),
            ("predicted mean (candidate)", data.candidate.prediction, _CANDIDATE_COLOR)]
    if data.candidate.median is not None:
        sets.append(("predicted median (candidate)", data.candidate.median, PALETTE[2]))
    positives = [np.log1p(values[values > 0]) for _, values, _ in sets]
    top = max([float(p.max()) for p in positives if p.size] or [1.0])
    edges = np.linspace(0.0, top, 36).tolist()
    series = [Series(name, p.tolist(), color=color) for (name, _, color), p in zip(sets, positives)]
    zeros = [int((values <= 0).sum()) for _, values, _ in sets]
    svg = charts.histogram(series, bins=edges, extra_counts=zeros, extra_label="= 0",
                           title="Labels and predictions, log1p scale (zeros on the left)",
                           x_label="value (log1p scale, ticks in label units)", y_label="examples",
                           x_ticks=_log1p_ticks(top, top / 14), y_log=True, width=980, height=420)
    counts = "; ".join(f"{name}: {z:,} zeros" for (name, _, _), z in zip(sets, zeros))
    caption = ("How the values are distributed: each series is a histogram of log1p(value) over the eval split, "
               "so the heavy tail fits on one axis (ticks are in label units), and the counts are on a log scale so "
               "that sparse tail bins stay visible. Exact zeros are not on a log axis: they are counted in the "
               "separate bars on the left. The predicted mean is rarely exactly 0 even where the label is; the "
               "median of the predictive distribution can be. A good model's predictive spread resembles the "
               f"labels'; a narrow predicted-mean histogram means it hedges towards the average. ({esc(counts)})")
    return _section("distribution", caption, _charts(svg))


def _codes_section(data: ReportData) -> str:
    true_codes, predicted = data.true_codes, data.candidate.codes
    caption = ("Share of eval examples that take each code, level by level (level 1 is the coarsest; in level 1, "
               "code 0 is the exact zero). The Transform series are the codes of the true labels, the targets the "
               "decoder learns; the model series are the codes it picks greedily when serving. Codes no example "
               "takes waste capacity; a model series piled onto fewer codes than its target is under-dispersed.")
    if true_codes is None and predicted is None:
        return _section("codes", caption, '<p class="note">Neither Transform nor the model provides RQ codes for '
                                          "this run (the model kind does not use a codebook).</p>")
    levels = max(c.shape[1] for c in (true_codes, predicted) if c is not None)
    svgs = []
    for level in range(levels):
        size = data.codebook_sizes[level] if data.codebook_sizes and level < len(data.codebook_sizes) else 0
        for codes in (true_codes, predicted):
            if codes is not None and level < codes.shape[1]:
                size = max(size, int(codes[:, level].max()) + 1)
        series = []
        if true_codes is not None and level < true_codes.shape[1]:
            counts = np.bincount(true_codes[:, level], minlength=size)
            series.append(Series("Transform (true label)", (counts / counts.sum()).tolist(), color=_LABEL_COLOR))
        if predicted is not None and level < predicted.shape[1]:
            counts = np.bincount(predicted[:, level], minlength=size)
            series.append(Series("model (greedy codes)", (counts / counts.sum()).tolist(),
                                 color=_CANDIDATE_COLOR))
        used = [int((np.asarray(s.y) > 0).sum()) for s in series]
        title = f"Level {level + 1}: {size} codes, " + " / ".join(f"{u} used" for u in used)
        svgs.append(charts.grouped_bars([str(c) for c in range(size)], series, title=title, x_label="code",
                                        y_label="share of examples", y_format=fmt_percent, legend=True,
                                        max_labels=16, width=560, height=320))
    note = "" if predicted is not None else ('<p class="note">The candidate does not serve <code>codes</code>: only '
                                             "Transform's codes are shown.</p>")
    return _section("codes", caption, note + _charts(*svgs))


def _coverage_section(data: ReportData) -> str:
    nominal = data.nominal_coverage
    low_q, high_q = data.interval_quantiles
    caption = (f"Share of eval labels inside the model's interval [lower, upper], the {low_q:.0%} and {high_q:.0%} "
               f"quantiles of its predictive distribution as calibrated on the valid split after training, overall "
               f"and per value bucket. A calibrated interval "
               f"covers {nominal:.0%} of the labels overall (the dashed line); below it the intervals are too "
               "narrow, above it too wide. Per bucket the coverage is conditional on the true value, so it is "
               "expected to drop in the extreme buckets.")
    models = [m for m in data.models() if m.lower is not None and m.upper is not None]
    if not models:
        return _section("coverage", caption, '<p class="note">The model does not serve <code>lower</code> and '
                                             "<code>upper</code>: no interval to check.</p>")
    slices = _slices(data)
    series = []
    for scores in models:
        color, _ = _model_style(scores)
        coverage = [value_metrics.interval_coverage(data.labels[rows], scores.lower[rows], scores.upper[rows])
                    if rows.any() else float("nan") for _, rows in slices]
        series.append(Series(scores.role, coverage, color=color))
    svg = charts.grouped_bars([name for name, _ in slices], series, title="Coverage of the predictive interval",
                              x_label="value bucket", y_label="share of labels inside [lower, upper]",
                              y_range=(0.0, 1.0), y_format=fmt_percent, legend=True,
                              hlines=[HLine(nominal, f"nominal {nominal:.0%}")], value_labels=True,
                              width=540, height=380)
    width_series = []
    for scores in models:
        color, _ = _model_style(scores)
        widths = [float(np.mean(scores.upper[rows] - scores.lower[rows])) for _, rows in slices]
        width_series.append(Series(scores.role, widths, color=color))
    width_svg = charts.grouped_bars([name for name, _ in slices], width_series, title="Mean interval width",
                                    x_label="value bucket", y_label="upper − lower (label units)", legend=True,
                                    width=540, height=380)
    return _section("coverage", caption, _charts(svg, width_svg))


def render(data: ReportData) -> str:
    """The report page as one HTML string (no external resources, no scripts)."""
    sections = [_metrics_section(data), _lorenz_section(data), _calibration_section(data), _buckets_section(data),
                _distribution_section(data), _codes_section(data), _coverage_section(data)]
    title = f"rqvalue report · {data.run.pipeline_name or 'pipeline'} · run {data.run.run_id}"
    bucket_note = ("" if data.value_bucket_source == "transform_features" else
                   " Value buckets were recomputed from the labels (the model has no transform_features signature).")
    return "\n".join([
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{esc(title)}</title>",
        f"<style>{_CSS}</style>",
        "</head>",
        "<body>",
        _header(data),
        "<main>",
        *sections,
        "</main>",
        f"<footer>Generated by <code>rqvalue report</code> at {esc(data.generated_at)} from "
        f"<span class=\"path\">{esc(data.run.evaluation_uri)}</span>. Plots are computed from the candidate"
        f"{' and baseline' if data.baseline else ''} SavedModel's serving_default outputs on the eval split; the "
        f"metrics table is TFMA's.{bucket_note}</footer>",
        "</body>",
        "</html>",
        "",
    ])
