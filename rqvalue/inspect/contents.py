"""The inspect views of what a run's artifacts hold: the RQ `codebook`, the `schema` and the `stats`."""

import glob
import json
import math
import os
from typing import Any, Callable, Dict, List, Optional, Sequence

from pipeline import mlmd
from rqvalue.inspect.sections import Section, cell, number, run_header, run_title, shorten


def codebook_view(store: mlmd.RunHistory, run_ref: Optional[str]) -> tuple:
    run = store.run(run_ref)
    graph = store.artifact(run, "TransformGraph", "transform_graph", "codebook", "Transform")
    examples = store.artifact(run, "Examples", "transformed_examples", "codebook", "Transform")
    config = _transform_config(run)
    transform = config.get("label_transform", "log1p")
    if transform not in _INVERSE:
        raise mlmd.MetadataError(f"{run.label}: label transform {transform!r} is unknown to `rqvalue inspect` "
                                 f"(known: {', '.join(sorted(_INVERSE))})")
    centroids = _read_centroids(graph["path"], len(config["codebook_sizes"]), run)
    counts, nonzero = _code_counts(examples["path"], [len(c) for c in centroids])
    levels = [_level_record(level, c, n, nz, transform, _INVERSE[transform])
              for level, (c, n, nz) in enumerate(zip(centroids, counts, nonzero), start=1)]
    data = {
        "run": run_header(run),
        "label_transform": transform,
        "codebook_sizes": [len(c) for c in centroids],
        "transform_graph_uri": graph["uri"],
        "train_examples": int(counts[0].sum()) if counts else 0,
        "levels": levels,
    }
    return data, _codebook_sections(run, data)


def _transform_config(run: mlmd.Run) -> Dict[str, Any]:
    step = run.step("Transform")
    properties = step.execution.custom_properties if step else {}
    if "custom_config" not in properties or "codebook_sizes" not in properties["custom_config"].string_value:
        raise mlmd.MetadataError(f"{run.label}: the Transform execution has no custom_config, so the codebook sizes "
                                 f"and label transform are unknown")
    return json.loads(properties["custom_config"].string_value)


_INVERSE: Dict[str, Callable[[float], float]] = {"log1p": math.expm1, "identity": lambda t: t}


def _read_centroids(graph_path: str, num_levels: int, run: mlmd.Run) -> List[List[float]]:
    """Each level's centroids, from the text assets of the transform graph (one number per line)."""
    import tensorflow_transform as tft

    from models.codebook_analyzer import codebook_asset_key

    output = tft.TFTransformOutput(graph_path)
    levels = []
    for level in range(1, num_levels + 1):
        try:
            path = output.vocabulary_file_by_name(codebook_asset_key(level))
        except (KeyError, ValueError):
            raise mlmd.MetadataError(f"{run.label}: the transform graph has no asset {codebook_asset_key(level)!r}; "
                                     f"it was made by an older preprocessing_fn: run `rqvalue run --no-cache`") from None
        with open(path) as f:
            levels.append([float(line) for line in f if line.strip()])
    return levels


def _code_counts(examples_path: str, sizes: Sequence[int]) -> tuple:
    """How many train examples take each code, per level: all of them, and those with a non-zero label."""
    import numpy as np
    import tensorflow as tf

    from models.codebook import ZERO_CODE
    from schemas import features

    files = sorted(glob.glob(os.path.join(examples_path, "Split-train", "*.gz")))
    if not files:
        raise mlmd.MetadataError(f"no train split under {examples_path}: run `rqvalue run --no-cache` to write it again")
    spec = {features.CODES_KEY: tf.io.FixedLenFeature([len(sizes)], tf.int64)}
    counts = [np.zeros(k, dtype=np.int64) for k in sizes]
    nonzero = [np.zeros(k, dtype=np.int64) for k in sizes]
    dataset = tf.data.TFRecordDataset(files, compression_type="GZIP").batch(4096)
    for batch in dataset.map(lambda records: tf.io.parse_example(records, spec)[features.CODES_KEY]):
        codes = batch.numpy()
        positive = codes[:, 0] != ZERO_CODE
        for level, k in enumerate(sizes):
            counts[level] += np.bincount(codes[:, level], minlength=k)[:k]
            nonzero[level] += np.bincount(codes[positive, level], minlength=k)[:k]
    return counts, nonzero


def _level_record(level: int, centroids: List[float], counts, nonzero, transform: str, inverse) -> Dict[str, Any]:
    total = max(int(counts.sum()), 1)
    codes = []
    for code, centroid in enumerate(centroids):
        item = {"code": code, "centroid": centroid}
        if level == 1:
            item["label_value"] = inverse(centroid)  # the label this code stands for on its own
        elif transform == "log1p":
            item["label_factor"] = math.exp(centroid)  # the offset multiplies (1 + label)
        else:
            item["label_offset"] = centroid
        item.update(count=int(counts[code]), share=int(counts[code]) / total, count_nonzero=int(nonzero[code]))
        codes.append(item)
    return {"level": level, "size": len(centroids), "codes": codes}


def _codebook_sections(run: mlmd.Run, data: Dict[str, Any]) -> List[Section]:
    transform, sizes = data["label_transform"], ", ".join(str(k) for k in data["codebook_sizes"])
    finer = "x (1+label)" if transform == "log1p" else "+ label"
    sections = [Section(title=run_title(run) + " — RQ codebook", notes=[
        f"label transform {transform}; codes per level {sizes}; counts over the {data['train_examples']} "
        f"examples of the train split",
        "a code path decodes to the sum of its centroids (transformed units); code 0 of level 1 stands for "
        "the zero label and a path starting with it decodes to 0, so finer levels matter for non-zero labels only"])]
    for level in data["levels"]:
        first = level["level"] == 1
        section = Section(title=f"level {level['level']} ({level['size']} codes)",
                          headers=["code", "centroid", "label value" if first else finer, "count", "share"]
                          + ([] if first else ["non-zero labels"]))
        for item in level["codes"]:
            if first:
                label = f"{item['label_value']:.2f}"
            else:
                label = f"{item.get('label_factor', item.get('label_offset')):.4f}"
            section.rows.append([str(item["code"]), f"{item['centroid']:+.5f}", label, str(item["count"]),
                                 f"{100 * item['share']:.1f}%"] + ([] if first else [str(item["count_nonzero"])]))
        sections.append(section)
    return sections


def schema_view(store: mlmd.RunHistory, run_ref: Optional[str]) -> tuple:
    from google.protobuf import text_format
    from tensorflow_metadata.proto.v0 import schema_pb2

    run = store.run(run_ref)
    artifact = store.artifact(run, "Schema", "schema", "schema", _schema_component(run))
    path = os.path.join(artifact["path"], "schema.pbtxt")
    schema = schema_pb2.Schema()
    with open(path) as f:
        text_format.Parse(f.read(), schema)
    domains = {d.name: d for d in schema.string_domain}
    rows = [_schema_feature(f, domains) for f in schema.feature]
    data = {"run": run_header(run), "schema_uri": artifact["uri"], "component": artifact["component"],
            "features": rows}
    section = Section(title=f"{run_title(run)} — schema from {artifact['component']}",
                      headers=["feature", "type", "presence", "values", "domain", "environments"])
    section.rows = [[r["feature"], r["type"], r["presence"], r["values"], shorten(r["domain"], 60),
                     r["environments"] or "all"] for r in rows]
    return data, [section]


def _schema_component(run: mlmd.Run) -> str:
    return next((c for c in ("LabelRules", "SchemaGen") if run.step(c)), "ImportSchemaGen")


def _schema_feature(feature, string_domains) -> Dict[str, Any]:
    from tensorflow_metadata.proto.v0 import schema_pb2

    presence = "optional"
    if feature.HasField("presence"):
        fraction = feature.presence.min_fraction
        presence = "required" if fraction >= 1.0 else (f"min {fraction:.0%}" if fraction else "optional")
    values = "-"
    if feature.HasField("shape"):
        values = "shape [" + ",".join(str(d.size) for d in feature.shape.dim) + "]"
    elif feature.HasField("value_count"):
        low, high = feature.value_count.min, feature.value_count.max
        values = str(low) if low == high else f"{low}..{high or 'any'}"
    not_in = list(feature.not_in_environment)
    return {"feature": feature.name, "type": schema_pb2.FeatureType.Name(feature.type), "presence": presence,
            "values": values, "domain": _domain_text(feature, string_domains),
            "environments": f"not in {', '.join(not_in)}" if not_in else
            (", ".join(feature.in_environment) if feature.in_environment else "")}


def _domain_text(feature, string_domains) -> str:
    kind = feature.WhichOneof("domain_info")
    if kind == "float_domain" or kind == "int_domain":
        domain = getattr(feature, kind)
        low = f"{domain.min:g}" if domain.HasField("min") else ""
        high = f"{domain.max:g}" if domain.HasField("max") else ""
        if low and high:
            return f"[{low}, {high}]"
        return f">= {low}" if low else (f"<= {high}" if high else "any")
    if kind == "domain":
        domain = string_domains.get(feature.domain)
        return _values_text(domain.value) if domain else f"domain {feature.domain!r}"
    if kind == "string_domain":
        return _values_text(feature.string_domain.value)
    if kind == "bool_domain":
        return "bool"
    return "-" if kind is None else kind


def _values_text(values) -> str:
    values = list(values)
    return f"{len(values)} values: " + ", ".join(values)


def stats_view(store: mlmd.RunHistory, run_ref: Optional[str]) -> tuple:
    run = store.run(run_ref)
    artifact = store.artifact(run, "ExampleStatistics", "statistics", "statistics", "StatisticsGen")
    splits = [_split_stats(artifact["path"], split) for split in artifact["properties"].get("split_names", [])]
    data = {"run": run_header(run), "statistics_uri": artifact["uri"], "splits": splits}
    sections = []
    for split in splits:
        section = Section(title=f"{run_title(run)} — split {split['split']} ({split['num_examples']} examples)",
                          headers=["feature", "type", "count", "missing", "mean", "min", "max", "unique",
                                   "top values"])
        for f in split["features"]:
            top = ", ".join(f"{v} ({n})" for v, n in f.get("top_values", []))
            section.rows.append([f["feature"], f["type"], str(f["count"]), str(f["missing"]),
                                 number(f.get("mean")), number(f.get("min")), number(f.get("max")),
                                 cell(f.get("unique")), shorten(top, 40)])
        sections.append(section)
    return data, sections


def _split_stats(statistics_path: str, split: str) -> Dict[str, Any]:
    from tensorflow_metadata.proto.v0 import statistics_pb2

    path = os.path.join(statistics_path, f"Split-{split}", "FeatureStats.pb")
    stats = statistics_pb2.DatasetFeatureStatisticsList()
    with open(path, "rb") as f:
        stats.ParseFromString(f.read())
    dataset = stats.datasets[0]
    return {"split": split, "num_examples": int(dataset.num_examples),
            "features": [_feature_stats(f) for f in dataset.features]}


def _feature_stats(feature) -> Dict[str, Any]:
    from tensorflow_metadata.proto.v0 import statistics_pb2

    name = ".".join(feature.path.step) or feature.name
    result = {"feature": name, "type": statistics_pb2.FeatureNameStatistics.Type.Name(feature.type)}
    kind = feature.WhichOneof("stats")
    stats = getattr(feature, kind) if kind else None
    common = stats.common_stats if stats is not None and stats.HasField("common_stats") else None
    result["count"] = int(common.num_non_missing) if common else 0
    result["missing"] = int(common.num_missing) if common else 0
    if kind == "num_stats":
        result.update(mean=stats.mean, std_dev=stats.std_dev, min=stats.min, max=stats.max,
                      zeros=int(stats.num_zeros))
    elif kind == "string_stats":
        result.update(unique=int(stats.unique),
                      top_values=[[v.value, int(v.frequency)] for v in stats.top_values[:3]])
    return result
