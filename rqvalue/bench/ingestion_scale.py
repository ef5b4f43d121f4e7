"""Training ingestion at scale: wall time, CPU, rows per second and peak memory of FeatureStoreExampleGen.

  python -m rqvalue.bench.ingestion_scale --rows 1000000 --out /tmp/rqvalue_ingest_1m

Prepares once (kept in --out/data): the seeded synthetic LTV data set at --rows customers (one
spine row each) with its Feast repo, as `pipeline.datasets.prepare("synthetic_ltv", ...)` writes
it. Then it runs, in a child process, a pipeline holding only FeatureStoreExampleGen (ML Metadata
in SQLite, cache off, a fresh pipeline root) through TFX's LocalDagRunner, sampling the resident
memory of that process and all its descendants every 0.2 s (`scoring_scale.tree_rss_bytes`). It
prints and writes `<out>/ingestion_scale.json`: rows, examples per split, wall and CPU seconds,
rows per second and the peak. The child's time includes importing TFX and Feast (about 10 s);
the input fingerprint a run computes before its pipeline is not part of it. The load average
before and after is recorded: other work on the machine slows the wall-clock numbers.
"""

import argparse
import dataclasses
import json
import os
import shutil
import sys

from rqvalue.bench import scoring_scale

DATA_SET = "synthetic_ltv"
RESULT_FILE = "ingestion_scale.json"


def _data_config(data_dir: str, rows: int, seed: int, chunk_rows: int = 0):
    from pipeline import datasets

    data = datasets.prepare(DATA_SET, data_dir, rows=rows, seed=seed)
    if chunk_rows:
        data = dataclasses.replace(data, chunk_rows=chunk_rows)
    return data


def run_component(data_dir: str, rows: int, seed: int, chunk_rows: int, root: str) -> dict:
    """Runs FeatureStoreExampleGen alone through LocalDagRunner; returns the examples artifact's counts."""
    from tfx import v1 as tfx
    from tfx.orchestration import metadata

    from components.feature_store_example_gen import FeatureStoreExampleGen, IngestionSpec

    data = _data_config(data_dir, rows, seed, chunk_rows)
    example_gen = FeatureStoreExampleGen(spec_json=IngestionSpec.from_data_config(data).to_json(),
                                         fingerprint="ingestion_scale", span=0)
    connection = metadata.sqlite_metadata_connection_config(os.path.join(root, "metadata.sqlite"))
    pipeline = tfx.dsl.Pipeline(pipeline_name="ingestion_scale", pipeline_root=os.path.join(root, "pipeline_root"),
                                components=[example_gen], enable_cache=False,
                                metadata_connection_config=connection)
    tfx.orchestration.LocalDagRunner().run(pipeline)
    with metadata.Metadata(connection) as store:
        artifact = store.store.get_artifacts_by_type("Examples")[-1]
    return {name: value.int_value for name, value in artifact.custom_properties.items()
            if name.endswith("_examples") or name == "rows_without_features"}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rqvalue.bench.ingestion_scale", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000, help="synthetic customers (= spine rows)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--chunk-rows", type=int, default=0,
                        help="data.chunk_rows for the ingestion (0: the config's default)")
    parser.add_argument("--out", default="/tmp/rqvalue_ingest")
    parser.add_argument("--keep-examples", action="store_true", help="keep the written examples under --out/run")
    parser.add_argument("--component-only", action="store_true", help=argparse.SUPPRESS)  # the measured child
    args = parser.parse_args(argv)
    out = os.path.abspath(args.out)
    data_dir, root = os.path.join(out, "data"), os.path.join(out, "run")
    if args.component_only:
        print("COUNTS " + json.dumps(run_component(data_dir, args.rows, args.seed, args.chunk_rows, root)))
        return 0
    _data_config(data_dir, args.rows, args.seed)  # prepared outside the measurement
    shutil.rmtree(root, ignore_errors=True)
    os.makedirs(root)
    child = [sys.executable, "-m", "rqvalue.bench.ingestion_scale", "--component-only", "--rows", str(args.rows),
             "--seed", str(args.seed), "--chunk-rows", str(args.chunk_rows), "--out", out]
    load_before = os.getloadavg()[0]
    log = os.path.join(out, "ingestion.log")
    measured = scoring_scale.run_measured(child, log)
    counts_line = [line for line in open(log) if line.startswith("COUNTS ")][-1]
    counts = json.loads(counts_line[len("COUNTS "):])
    written = sum(count for name, count in counts.items() if name.endswith("_examples"))
    result = {
        "rows": args.rows, "examples": written, "counts": counts, "chunk_rows": args.chunk_rows or None,
        "seconds": round(measured["seconds"], 1), "rows_per_second": round(written / measured["seconds"]),
        "cpu_seconds": round(measured["cpu_seconds"], 1),
        "cpu_ms_per_row": round(1000 * measured["cpu_seconds"] / written, 3),
        "peak_rss_gb": round(measured["peak_rss_bytes"] / 2**30, 2),
        "load_average_before": load_before, "load_average_after": os.getloadavg()[0], "cpus": os.cpu_count(),
        "command": " ".join(["python -m rqvalue.bench.ingestion_scale", *(argv if argv is not None else sys.argv[1:])]),
    }
    if not args.keep_examples:
        shutil.rmtree(os.path.join(root, "pipeline_root"), ignore_errors=True)  # GBs at millions of rows
    with open(os.path.join(out, RESULT_FILE), "w") as f:
        json.dump(result, f, indent=2)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
