"""Time of encoding retrieved rows as serialized tf.Examples when some rows miss feature values.

Feature-store rows often miss a value (a new entity absent from one feature view, a feature that is
null until a first event). This builds a frame like a retrieved spine (entity, prediction time, label,
numeric and categorical features), blanks values in a share of the rows in a few patterns (whole views
missing, one feature missing) plus a tail of rows with scattered missing values, and times
`components.training_examples.serialized_examples` on it, checking that it writes the same examples as
the row-by-row `to_examples` (parsed and compared on a sample).

  TF_USE_LEGACY_KERAS=1 .venv/bin/python benchmarks/ingestion_missing/measure.py --rows 200000
"""

import argparse
import json
import os
import sys
import time

import numpy as np
import pandas as pd

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))

NUMERIC = tuple(f"num_{i}" for i in range(20))
CATEGORICAL = ("channel", "cohort", "region")


def frame_with_missing(rows: int, missing_share: float, scattered_share: float, seed: int = 0) -> pd.DataFrame:
    """A retrieved-spine-like frame; `missing_share` of the rows miss values in one of four patterns,
    `scattered_share` miss each feature independently with probability 0.2."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({
        "customer_id": np.arange(rows, dtype=np.int64),
        "prediction_time": pd.Timestamp("2024-01-01", tz="UTC") + pd.to_timedelta(rng.integers(0, 365, rows), "D"),
        "label": np.where(rng.random(rows) < 0.6, 0.0, np.round(rng.lognormal(3, 1, rows), 2)),
    })
    for name in NUMERIC:
        frame[name] = rng.lognormal(1, 1, rows)
    frame["channel"] = rng.choice(["email", "search", "social"], rows)
    frame["cohort"] = pd.array(rng.integers(1, 13, rows), dtype="Int64")
    frame["region"] = rng.choice(["n", "s", "e", "w"], rows)
    patterns = [NUMERIC[:8], NUMERIC[8:14], ("num_19",), ("channel", "cohort")]
    kind = rng.random(rows)
    for i, columns in enumerate(patterns):
        low = missing_share * i / len(patterns)
        chosen = (kind >= low) & (kind < low + missing_share / len(patterns))
        for column in columns:
            frame.loc[chosen, column] = None
    scattered = (kind >= missing_share) & (kind < missing_share + scattered_share)
    for column in (*NUMERIC, *CATEGORICAL):
        frame.loc[scattered & (rng.random(rows) < 0.2), column] = None
    return frame


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--missing-share", type=float, default=0.3)
    parser.add_argument("--scattered-share", type=float, default=0.01)
    parser.add_argument("--check-rows", type=int, default=5_000)
    parser.add_argument("--out", default=None, help="JSON file for the numbers")
    args = parser.parse_args(argv)

    import tensorflow as tf

    from components import training_examples
    from components.ingestion_spec import IngestionSpec

    spec = IngestionSpec(feast_repo="", spine="", entity_columns=("customer_id",), feature_refs=(),
                         numeric_features=NUMERIC, categorical_features=CATEGORICAL,
                         timestamp_column="prediction_time", label="label", eval_fraction=0.2)
    frame = frame_with_missing(args.rows, args.missing_share, args.scattered_share)
    complete = frame[["label", *NUMERIC, *CATEGORICAL]].notna().all(axis=1)
    training_examples.serialized_examples(frame.head(1000), spec)  # warm-up (imports, first calls)
    started, cpu = time.perf_counter(), time.process_time()
    serialized = training_examples.serialized_examples(frame, spec)
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu
    sample = np.random.default_rng(1).choice(args.rows, min(args.check_rows, args.rows), replace=False)
    expected = training_examples.to_examples(frame.iloc[sample], spec)
    for i, example in zip(sample, expected):
        if tf.train.Example.FromString(serialized[i]) != example:
            raise AssertionError(f"row {i}: the encoding differs from to_examples")
    result = {"rows": args.rows, "rows_with_missing": int((~complete).sum()), "seconds": round(seconds, 2),
              "cpu_seconds": round(cpu_seconds, 2), "us_per_row": round(1e6 * seconds / args.rows, 1),
              "checked_rows": int(sample.size)}
    print(json.dumps(result))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
