"""How fast Beam reads one split of training examples written as one gzip file or as several.

A gzip file cannot be split, so Beam gives one file to one worker. This writes `--rows` examples
(20 numeric and 3 categorical features, like a retrieved spine row) as 1 file and as `--files`
files, then times a Beam pipeline that reads and parses every example on the direct runner with
`--workers` processes (a stand-in for Transform's and StatisticsGen's reads on Dataflow).

  TF_USE_LEGACY_KERAS=1 .venv/bin/python benchmarks/example_shards/measure.py --rows 400000
"""

import argparse
import glob
import json
import os
import sys
import tempfile
import time


def _write(directory: str, rows: int, files: int) -> None:
    import numpy as np
    import tensorflow as tf

    os.makedirs(directory, exist_ok=True)
    rng = np.random.default_rng(0)
    for index in range(files):
        path = os.path.join(directory, f"data_tfrecord-{index:05d}.gz")
        with tf.io.TFRecordWriter(path, options="GZIP") as writer:
            for row in range(rows // files):
                example = tf.train.Example()
                for k in range(20):
                    example.features.feature[f"n{k}"].float_list.value.append(float(rng.random()))
                for k in range(3):
                    example.features.feature[f"c{k}"].bytes_list.value.append(b"cat%d" % (row % 7))
                writer.write(example.SerializeToString())


def _features(record: bytes) -> int:
    from tensorflow.core.example import example_pb2

    return len(example_pb2.Example.FromString(record).features.feature)


def _read_seconds(pattern: str, workers: int) -> float:
    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions

    options = PipelineOptions([f"--direct_num_workers={workers}", "--direct_running_mode=multi_processing"])
    started = time.perf_counter()
    with beam.Pipeline(options=options) as pipeline:
        _ = (pipeline | beam.io.ReadFromTFRecord(pattern) | beam.Map(_features)
             | beam.combiners.Count.Globally())
    return time.perf_counter() - started


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=400_000)
    parser.add_argument("--files", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--work", default=None, help="folder for the files (default: a temporary one)")
    args = parser.parse_args(argv)
    work = args.work or tempfile.mkdtemp(prefix="rqvalue_shards_")
    result = {"rows": args.rows, "workers": args.workers}
    for files in (1, args.files):
        directory = os.path.join(work, f"files_{files}")
        if not glob.glob(os.path.join(directory, "*.gz")):
            _write(directory, args.rows, files)
        result[f"read_s_{files}_files"] = round(_read_seconds(os.path.join(directory, "*.gz"), args.workers), 1)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
