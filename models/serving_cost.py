"""Peak memory and time of a SavedModel's `serving_default` on one batch of N raw examples.

Each batch size is measured in a fresh Python process, so one measurement's memory never counts
in another's: the process loads the model, scores a 16-row warm-up batch, builds the N-row batch,
resets the kernel's resident-set high-water mark (Linux: /proc/self/clear_refs), scores the N rows
in one call and reports

  - `seconds`: the wall time of that call;
  - `extra_mb`: the peak resident memory during the call minus the resident memory before it.

Command (examples: TFRecord files of raw `tf.Example`s, e.g. a run's eval split; gzip or not;
rows are repeated to reach N, a label feature in them is ignored by the signature):

  python -m models.serving_cost runs/serving/<version> \
      'runs/pipeline_root/FeatureStoreExampleGen/examples/*/Split-eval/*' --rows 1000 10000 100000
"""

import argparse
import glob
import json
import os
import re
import subprocess
import sys
import time
from typing import Dict, List, Sequence

_STATUS = "/proc/self/status"


def _memory_mb(field: str) -> float:
    """`VmRSS` (resident now) or `VmHWM` (resident high-water mark) of this process, in MB."""
    with open(_STATUS) as status:
        match = re.search(rf"^{field}:\s+(\d+) kB", status.read(), re.MULTILINE)
    return int(match.group(1)) / 1024.0


def _reset_peak() -> None:
    with open("/proc/self/clear_refs", "w") as refs:
        refs.write("5")


def read_records(pattern: str, rows: int) -> List[bytes]:
    """Up to `rows` serialized examples from the TFRecord files matching `pattern` (gzipped or not), in file order."""
    import tensorflow as tf

    files = sorted(glob.glob(pattern))
    if not files:
        raise FileNotFoundError(f"examples: no file matches {pattern!r}")
    compression = "GZIP" if files[0].endswith(".gz") else ""
    return [record.numpy() for record in tf.data.TFRecordDataset(files, compression_type=compression).take(rows)]


def read_examples(pattern: str, rows: int) -> List[bytes]:
    """`rows` serialized examples from the TFRecord files matching `pattern`, repeated as needed."""
    pool = read_records(pattern, rows)
    if not pool:
        raise ValueError(f"examples: {pattern!r} holds no records")
    return [pool[i % len(pool)] for i in range(rows)]


def measure_here(model_dir: str, pattern: str, rows: int) -> Dict[str, float]:
    """Scores `rows` examples in this process; see the module docstring for what is measured."""
    import tensorflow as tf

    serve = tf.saved_model.load(model_dir).signatures["serving_default"]
    serialized = read_examples(pattern, rows)
    serve(examples=tf.constant(serialized[:16]))
    batch = tf.constant(serialized)
    _reset_peak()
    resident = _memory_mb("VmRSS")
    started = time.perf_counter()
    outputs = serve(examples=batch)
    _ = {key: value.numpy() for key, value in outputs.items()}
    seconds = time.perf_counter() - started
    return {"rows": rows, "seconds": round(seconds, 2), "extra_mb": round(_memory_mb("VmHWM") - resident, 1)}


def measure(model_dir: str, pattern: str, sizes: Sequence[int]) -> List[Dict[str, float]]:
    """One fresh process per batch size: [{rows, seconds, extra_mb}, ...]."""
    results = []
    for rows in sizes:
        done = subprocess.run([sys.executable, "-m", "models.serving_cost", model_dir, pattern, "--rows", str(rows),
                               "--in-process"], capture_output=True, text=True, env=os.environ.copy())
        if done.returncode != 0:
            raise RuntimeError(f"measuring {rows} rows failed:\n{done.stderr[-2000:]}")
        results.append(json.loads(done.stdout.strip().splitlines()[-1]))
    return results


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m models.serving_cost", description=__doc__.split("\n")[0])
    parser.add_argument("model_dir", help="a SavedModel with serving_default (e.g. runs/serving/<version>)")
    parser.add_argument("examples", help="glob of TFRecord files of raw tf.Examples")
    parser.add_argument("--rows", type=int, nargs="+", default=[1000, 10000, 100000])
    parser.add_argument("--in-process", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.in_process:
        print(json.dumps(measure_here(args.model_dir, args.examples, args.rows[0])))
        return 0
    print(f"{'rows':>8}  {'seconds':>8}  {'extra MB':>9}")
    for result in measure(args.model_dir, args.examples, args.rows):
        print(f"{result['rows']:>8}  {result['seconds']:>8.2f}  {result['extra_mb']:>9.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
