"""Console output shared by the commands: quiet libraries, the metrics columns, aligned text tables."""

import logging
import math
import os
import warnings
from typing import Dict, List, Sequence

from pipeline.tfma_results import slice_order
from schemas import features

# The metrics tables show, in this order: (metric key, column title, format, which value is better:
# +1 higher, -1 lower, 0 neither). `rqvalue run`, `inspect metrics` and the report share it.
METRIC_COLUMNS = (
    ("example_count", "n", "{:.0f}", 0),
    ("mean_label", "mean label", "{:.3f}", 0),
    ("mean_prediction", "mean pred", "{:.3f}", 0),
    ("mean_absolute_error", "MAE", "{:.3f}", -1),
    ("root_mean_squared_error", "RMSE", "{:.3f}", -1),
    ("normalized_gini", "norm. Gini", "{:.3f}", 1),
    ("spearman", "Spearman", "{:.3f}", 1),
    ("xauc", "XAUC", "{:.3f}", 1),
    ("interval_coverage", "80% cov.", "{:.3f}", 0),
)
BUCKET_NOTE = f"({features.VALUE_BUCKET_KEY}=0 holds the zero labels; higher buckets hold larger labels)"


def quiet() -> None:
    """Keeps the terminal to progress and results: library deprecation chatter off, before TF loads."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("FEAST_USAGE", "False")
    warnings.filterwarnings("ignore")
    # Libraries re-enable warning filters on import; route whatever still fires into a muted logger.
    logging.captureWarnings(True)
    for name in ("py.warnings", "tensorflow", "apache_beam"):
        logging.getLogger(name).setLevel(logging.ERROR)


def finite(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def metric_cells(values: Dict[str, float]) -> List[str]:
    """One slice's values in METRIC_COLUMNS order, formatted ('-' where missing or not finite)."""
    return [fmt.format(values[key]) if finite(values.get(key)) else "-" for key, _, fmt, _ in METRIC_COLUMNS]


def format_metrics(metrics: Dict[str, Dict[str, float]]) -> str:
    """A plain-text table: one row per slice (overall first, then value buckets in order)."""
    headers = ["slice"] + [title for _, title, _, _ in METRIC_COLUMNS]
    rows = [[name] + metric_cells(metrics[name]) for name in sorted(metrics, key=slice_order)]
    return "\n".join(table(headers, rows) + [BUCKET_NOTE])


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> List[str]:
    """Aligned columns: numbers right-aligned, text left; the last column is not padded."""
    headers = list(headers)
    if not rows:
        return ["  ".join(headers), "(none)"]
    widths = [max(len(r[i]) for r in [headers] + list(rows)) for i in range(len(headers))]
    numeric = []
    for i in range(len(headers)):
        cells = [r[i] for r in rows if r[i] not in ("", "-")]
        numeric.append(bool(cells) and all(_is_number(c) for c in cells))

    def line(cells):
        padded = [c.rjust(w) if num else c.ljust(w) for c, w, num in zip(cells, widths, numeric)]
        return "  ".join(padded).rstrip()

    return [line(headers), "  ".join("-" * w for w in widths)] + [line(r) for r in rows]


def _is_number(text: str) -> bool:
    try:
        float(text.rstrip("%").replace(",", ""))
        return True
    except ValueError:
        return False
