"""`rqvalue report`: a self-contained HTML page with every section, TFMA's numbers, and a page Chromium renders.

Also the SVG helpers of rqvalue/report/charts.py and svg.py on tiny inputs, and `render` on synthetic data with a baseline
(the shared run has none: it is the store's first model).
"""

import argparse
import contextlib
import io
import math
import os
import re
import shutil
import struct
import subprocess
import xml.etree.ElementTree as ET
import zlib
from html.parser import HTMLParser

import numpy as np
import pytest

from pipeline import mlmd, tfma_results
from rqvalue import console
from rqvalue.report import charts, gather, render, svg
from rqvalue.report import command as report

pytestmark = pytest.mark.e2e

SECTION_IDS = ("metrics", "lorenz", "calibration", "buckets", "distribution", "codes", "coverage")
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync")


class _PageParser(HTMLParser):
    """Collects what the checks need: per-section counts of h2/svg/table, and every src/href/tag."""

    def __init__(self):
        super().__init__()
        self.sections = {}
        self.current = None
        self.depth = 0
        self.links = []  # (tag, attribute, value)
        self.tags = set()
        self.cells = []  # attrs of <td data-metric=...>

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.add(tag)
        for name in ("src", "href", "xlink:href", "srcset", "action", "poster"):
            if name in attrs:
                self.links.append((tag, name, attrs[name]))
        if tag == "section":
            self.current = attrs.get("id")
            self.sections[self.current] = {"h2": 0, "svg": 0, "table": 0}
        elif self.current is not None and tag in ("h2", "svg", "table"):
            self.sections[self.current][tag] += 1
        if tag == "td" and "data-metric" in attrs:
            self.cells.append(attrs)

    def handle_endtag(self, tag):
        if tag == "section":
            self.current = None


def _parse(page: str) -> _PageParser:
    parser = _PageParser()
    parser.feed(page)
    return parser


def _cli_args(argv):
    parser = argparse.ArgumentParser(prog="rqvalue")
    report.add_parser(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(argv)


def _tree_state(folder):
    return {os.path.join(d, f): os.stat(os.path.join(d, f)).st_mtime_ns
            for d, _, files in os.walk(folder) for f in files}


@pytest.fixture(scope="module")
def written(small_run, tmp_path_factory):
    """`rqvalue report --output-dir <small run> --out <tmp>/report.html`: (config, result, path, page)."""
    cfg, result = small_run
    before = _tree_state(cfg.output_dir)
    path = tmp_path_factory.mktemp("report") / "report.html"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        status = report.main(_cli_args(["report", "--output-dir", cfg.output_dir, "--out", str(path)]))
    assert status == 0
    assert printed.getvalue().strip() == str(path)
    assert _tree_state(cfg.output_dir) == before, "the report must not write into the shared run"
    return cfg, result, path, path.read_text(encoding="utf-8")


def test_report_is_self_contained_and_has_every_section(written):
    _, _, path, page = written
    assert path.exists() and path.stat().st_size > 10_000
    assert "http://" not in page and "https://" not in page
    parsed = _parse(page)
    assert not parsed.tags & {"script", "link", "iframe", "object", "embed"}
    for tag, name, value in parsed.links:
        ok = value.startswith("data:") if tag == "img" or name == "src" else value.startswith(("#", "data:"))
        assert ok, f"<{tag} {name}={value!r}> refers outside the file"
    assert set(SECTION_IDS) <= set(parsed.sections)
    for section_id in SECTION_IDS:
        counts = parsed.sections[section_id]
        assert counts["h2"] == 1, section_id
        assert counts["svg"] >= 1 or (section_id == "metrics" and counts["table"] == 1), (section_id, counts)
    assert parsed.sections["metrics"]["table"] == 1
    # Every inline chart is well-formed XML on its own (so its text was escaped).
    charts = re.findall(r"<svg\b.*?</svg>", page, flags=re.S)
    assert len(charts) >= len(SECTION_IDS) - 1
    for chart in charts:
        assert ET.fromstring(chart).tag == "svg"


def test_metrics_table_matches_tfma(written):

    cfg, result, _, page = written
    expected = tfma_results.load_metrics(result.evaluation_uri)
    assert expected == result.metrics
    shown = {}
    for cell in _parse(page).cells:
        if "data-value" in cell:
            shown[(cell["data-slice"], cell["data-model"], cell["data-metric"])] = float(cell["data-value"])
    assert {s for s, m, _ in shown if m == "candidate"} == set(expected)
    columns = [key for key, *_ in console.METRIC_COLUMNS]
    for slice_name, values in expected.items():
        for key in columns:
            if key in values:
                assert shown[(slice_name, "candidate", key)] == pytest.approx(values[key], rel=1e-12, abs=1e-12), \
                    (slice_name, key)
    assert {m for _, m, _ in shown} == {"candidate"}  # the shared run is the store's first model: no baseline


def test_scoring_agrees_with_the_evaluator(small_run):
    """The plots come from scoring the eval split here; TFMA scored the same examples with the same model."""
    cfg, result = small_run
    data = gather.gather(cfg.metadata_path)
    tfma_metrics = result.metrics
    overall = tfma_metrics["overall"]
    assert data.labels.size == overall["example_count"] == sum(data.run.example_counts[s] for s in data.run.eval_splits)
    assert data.baseline is None and data.run.blessed is True
    assert np.mean(data.labels) == pytest.approx(overall["mean_label"], rel=1e-5)
    assert np.mean(data.candidate.prediction) == pytest.approx(overall["mean_prediction"], rel=1e-3)
    assert np.mean(np.abs(data.candidate.prediction - data.labels)) == pytest.approx(
        overall["mean_absolute_error"], rel=1e-3)
    for bucket in np.unique(data.value_bucket):
        assert (data.value_bucket == bucket).sum() == tfma_metrics[f"value_bucket={bucket}"]["example_count"]
    assert np.all(data.labels[data.value_bucket == 0] == 0) and np.all(data.labels[data.value_bucket > 0] > 0)
    levels = len(cfg.model.codebook_sizes)
    assert data.true_codes.shape == (data.labels.size, levels)
    assert data.candidate.codes is None or data.candidate.codes.shape == (data.labels.size, levels)
    assert np.all(data.candidate.lower <= data.candidate.upper)


def test_cli_errors_are_plain(tmp_path, small_run, capsys):
    from ml_metadata.metadata_store import metadata_store
    from ml_metadata.proto import metadata_store_pb2

    out = str(tmp_path / "r.html")
    assert report.main(_cli_args(["report", "--output-dir", str(tmp_path / "nothing"), "--out", out])) == 2
    assert "no metadata store" in capsys.readouterr().err

    cfg, _ = small_run
    assert report.main(_cli_args(["report", "no-such-run", "--output-dir", cfg.output_dir, "--out", out])) == 2
    assert "unknown run 'no-such-run'" in capsys.readouterr().err

    # A store whose only run stopped before the Evaluator (as data validation does).
    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = str(tmp_path / "metadata.sqlite")
    store = metadata_store.MetadataStore(config)
    run_type = store.put_context_type(metadata_store_pb2.ContextType(name="pipeline_run"))
    store.put_contexts([metadata_store_pb2.Context(type_id=run_type, name="2026-01-01T00:00:00.000001")])
    del store
    assert report.main(_cli_args(["report", "--output-dir", str(tmp_path), "--out", out])) == 2
    assert "no run with an evaluation" in capsys.readouterr().err
    assert report.main(_cli_args(["report", "2026-01-01", "--output-dir", str(tmp_path), "--out", out])) == 2
    assert "has no evaluation" in capsys.readouterr().err
    assert not os.path.exists(out)


def _png_size_and_colours(path):
    """(width, height, number of distinct byte values in the decompressed image data)."""
    with open(path, "rb") as f:
        data = f.read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    offset, idat, width, height = 8, [], 0, 0
    while offset < len(data):
        (length,), kind = struct.unpack(">I", data[offset:offset + 4]), data[offset + 4:offset + 8]
        body = data[offset + 8:offset + 8 + length]
        if kind == b"IHDR":
            width, height = struct.unpack(">II", body[:8])
        elif kind == b"IDAT":
            idat.append(body)
        offset += 12 + length
    # A single-colour image decompresses to a handful of byte values (filter bytes and one colour).
    return width, height, len(set(zlib.decompress(b"".join(idat))))


def test_chromium_renders_every_section_and_a_nonblank_page(written, tmp_path):
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.skip("chromium not installed: apt-get install chromium")
    _, _, path, page = written
    url = path.resolve().as_uri()

    def run(*flags):
        profile = tmp_path / f"profile{len(os.listdir(tmp_path))}"
        profile.mkdir()
        return subprocess.run([chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *flags, url],
                              capture_output=True, text=True, timeout=120, check=False)

    dom = run("--dump-dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    rendered = _parse(dom.stdout)
    assert set(SECTION_IDS) <= set(rendered.sections)
    assert sum(c["svg"] for c in rendered.sections.values()) == page.count("<svg")
    for tag, name, value in rendered.links:
        if tag == "img":
            assert value.startswith("data:"), f"broken image: {value!r}"
    assert all(tag != "img" or name == "src" for tag, name, _ in rendered.links)

    png = tmp_path / "report.png"
    shot = run(f"--screenshot={png}", "--window-size=1200,3000", "--hide-scrollbars")
    assert shot.returncode == 0 and png.exists(), shot.stderr[-2000:]
    assert png.stat().st_size > 50_000
    width, height, colours = _png_size_and_colours(png)
    assert (width, height) == (1200, 3000)
    assert colours > 64


# ---------------------------------------------------------------------------------------------
# render() on synthetic data: a baseline, and a model without codes or intervals


def _synthetic(with_baseline=True, rich=True):
    rng = np.random.default_rng(0)
    n = 400
    labels = np.where(rng.random(n) < 0.5, 0.0, rng.lognormal(3, 1.2, n))
    buckets = np.zeros(n, dtype=np.int64)
    positive = labels > 0
    buckets[positive] = np.searchsorted(np.quantile(labels[positive], [0.25, 0.5, 0.75]), labels[positive]) + 1

    def model(role, noise):
        prediction = labels * 0.6 + 20 + rng.normal(0, noise, n).clip(-15, None)
        metrics = {"overall": {"example_count": float(n), "mean_absolute_error": float(np.mean(np.abs(
            prediction - labels))), "normalized_gini": 0.3 if role == "candidate" else 0.2}}
        for b in range(5):
            metrics[f"value_bucket={b}"] = {"example_count": float((buckets == b).sum())}
        if not rich:
            return gather.ModelScores(role, f"/m/{role}", metrics, prediction)
        return gather.ModelScores(role, f"/m/{role}", metrics, prediction, median=prediction * 0.8,
                                  lower=prediction * 0.2, upper=prediction * 2.5,
                                  codes=rng.integers(0, 4, size=(n, 2)))

    run = mlmd.RunInfo(run_id="2026-01-02T03:04:05.000006", run_time_ms=1_700_000_000_000,
                       pipeline_name="rqvalue-<test> & co", evaluation_uri="/e", evaluator_state="executed",
                       examples_uri="/x", example_counts={"train": 1600, "eval": n}, model_uri="/m", model_id=2,
                       blessed=False, ingestion_spec={"spine": "/s.parquet", "feast_repo": "/f"})
    return gather.ReportData(run=run, labels=labels, value_bucket=buckets, candidate=model("candidate", 5),
                             baseline=model("baseline", 30) if with_baseline else None,
                             true_codes=rng.integers(0, 4, size=(n, 2)) if rich else None,
                             codebook_sizes=[4, 4], validation_failures=["normalized_gini on overall = 0.3"],
                             generated_at="now")


def test_render_shows_candidate_beside_baseline():
    page = render.render(_synthetic())
    parsed = _parse(page)
    assert set(SECTION_IDS) <= set(parsed.sections)
    assert all(parsed.sections[s]["svg"] >= 1 for s in SECTION_IDS if s != "metrics")
    models = {(c["data-slice"], c["data-model"]) for c in parsed.cells}
    assert ("overall", "candidate") in models and ("overall", "baseline") in models
    better = re.findall(r'<td class="better" data-slice="overall" data-model="(\w+)" data-metric="(\w+)"', page)
    assert ("candidate", "normalized_gini") in better
    assert "rqvalue-&lt;test&gt; &amp; co" in page and "<test>" not in page
    assert "http://" not in page and "https://" not in page
    for chart in re.findall(r"<svg\b.*?</svg>", page, flags=re.S):
        ET.fromstring(chart)


def test_render_without_codes_or_intervals_says_so():
    page = render.render(_synthetic(with_baseline=False, rich=False))
    parsed = _parse(page)
    assert parsed.sections["codes"]["svg"] == 0 and "does not use a codebook" in page
    assert parsed.sections["coverage"]["svg"] == 0 and "no interval to check" in page
    assert parsed.sections["lorenz"]["svg"] == 1


# ---------------------------------------------------------------------------------------------
# charts.py and svg.py


def _svg(text):
    root = ET.fromstring(text)
    assert root.tag == "svg"
    assert "http" not in text
    return root


def _texts(root):
    return ["".join(e.itertext()) for e in root.iter("text")]


def test_every_chart_is_valid_escaped_svg():
    title = "a <b> & \"c\" 'd'"
    drawn = [
        charts.line_chart([svg.Series("s<1>", [1, 2, 3], x=[0, 1, 2]), svg.Series("s&2", [3, 2, 1], x=[0, 1, 2],
                                                                                  dash=True, markers=True)],
                          title=title, x_label="x & y", y_label="<y>"),
        charts.bar_chart(["a", "<b>"], [1, 2], title=title),
        charts.grouped_bars(["a", "b"], [svg.Series("one", [1, -2]), svg.Series("two", [0.5, 3])], title=title,
                            hlines=[svg.HLine(0.8, "nominal & 80%")], value_labels=True),
        charts.histogram([svg.Series("v", [0.1, 0.2, 0.2, 0.9])], bins=4, title=title, extra_counts=[5]),
    ]
    for chart in drawn:
        root = _svg(chart)
        assert root.find("title").text == title
        assert title in _texts(root)


def test_linear_ticks_and_ranges_are_round():
    assert svg.Scale(0, 1).ticks() == [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
    assert svg.Scale(1, 1000, log=True).ticks() == [1.0, 10.0, 100.0, 1000.0]
    assert svg.nice_range([0.13, 0.87]) == (0.0, 1.0)
    assert svg.nice_range([3, 470], log=True) == (1.0, 1000.0)
    assert svg.nice_range([-3, 5], include_zero=True)[0] <= -3
    assert svg.fmt_number(25_000) == "25k" and svg.fmt_percent(0.8) == "80%"


def test_log_axis_rejects_non_positive_ranges_and_leaves_out_non_positive_values():
    with pytest.raises(ValueError, match="positive"):
        svg.Scale(0, 10, log=True)
    with pytest.raises(ValueError, match="positive"):
        charts.line_chart([svg.Series("s", [1, 2], x=[0, 1])], title="t", y_log=True, y_range=(0, 10))
    with pytest.raises(ValueError, match="positive"):
        charts.line_chart([svg.Series("s", [0, -1], x=[0, 1])], title="t", y_log=True)
    with pytest.raises(ValueError, match="positive"):
        svg.nice_range([0.0, -2.0], log=True)
    # Two of five points cannot be placed: they are left out (the line breaks) and the chart says so.
    root = _svg(charts.line_chart([svg.Series("s", [1, 0, 10, -5, 100], x=[1, 2, 3, 4, 5], markers=True)],
                                  title="t", y_log=True))
    assert len(list(root.iter("circle"))) == 3
    assert any("2 values not positive" in t for t in _texts(root))
    bars = _svg(charts.bar_chart(["a", "b", "c"], [10, 0, 1000], title="t", y_log=True))
    assert len([r for r in bars.iter("rect") if r.find("title") is not None]) == 2
    assert any("1 value not positive" in t for t in _texts(bars))


def test_bars_and_histograms_count_and_place_values():
    with pytest.raises(ValueError):
        charts.grouped_bars(["a", "b"], [svg.Series("s", [1])], title="t")
    root = _svg(charts.grouped_bars(["up", "down"], [svg.Series("s", [2, -2])], title="t"))
    up, down = [r for r in root.iter("rect") if r.find("title") is not None]
    # Both bars start at the zero line: one above it, one below it, the same height.
    assert float(up.get("y")) + float(up.get("height")) == pytest.approx(float(down.get("y")), abs=0.2)
    assert float(up.get("height")) == pytest.approx(float(down.get("height")), abs=0.2)
    assert charts.histogram_counts([0, 0.5, 1, 1, 2, 3, math.nan], [0, 1, 2]) == [2, 3]
    hist = _svg(charts.histogram([svg.Series("a", [1, 2, 2]), svg.Series("b", [3])], bins=[0, 1, 2, 3, 4],
                                 title="t", extra_counts=[7, 0], extra_label="= 0"))
    assert "= 0" in _texts(hist) and "7" in _texts(hist)
    with pytest.raises(ValueError):
        charts.histogram([svg.Series("a", [1])], bins=[0, 0], title="t")
