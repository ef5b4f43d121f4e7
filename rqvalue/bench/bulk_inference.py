"""CPU time of BulkInferrer's inference on N raw examples, with one of the model's signatures.

Runs what `components/bulk_scoring.py`'s executor runs inside BulkInferrer: tfx_bsl's
RunInference with the same batch bounds (256-1,024 examples) on a one-worker DirectRunner,
writing gzipped PredictionLogs, then decodes the logs as the PredictionsWriter does (100,000 at a time). The N rows
are first written to a plain TFRecord file that the pipeline reads (so Beam's `Create`, which
pickles and compresses its data, is not measured). It prints the process CPU seconds of the
pipeline and of the decoding, and the first predictions (the same for every signature).

Command (examples: TFRecord files of raw `tf.Example`s, e.g. a scoring run's score split):

  python -m rqvalue.bench.bulk_inference runs/serving/<version> \
      'runs/scoring/pipeline_root/ScoringExampleGen/examples/*/Split-score/*' --rows 20000 \
      --signature serving_default score_packed
"""

import argparse
import glob
import os
import tempfile
import time
from typing import Dict, Sequence

from schemas import features


def _rows(pattern: str, count: int) -> list:
    from models.serving_cost import read_records

    rows = read_records(pattern, count)
    if len(rows) < count:
        raise ValueError(f"examples: {pattern!r} holds {len(rows)} rows, fewer than --rows {count}")
    return rows


def measure(model_dir: str, rows: Sequence[bytes], signature: str) -> Dict[str, object]:
    """CPU seconds of RunInference with `signature` on `rows`, and of decoding its PredictionLogs."""
    import apache_beam as beam
    import tensorflow as tf
    from tensorflow_serving.apis import prediction_log_pb2
    from tfx_bsl.public.beam import run_inference
    from tfx_bsl.public.proto import model_spec_pb2

    from components import bulk_scoring, prediction_logs

    out = tempfile.mkdtemp(prefix="bulk_inference_")
    examples = os.path.join(out, "examples.tfrecord")
    with tf.io.TFRecordWriter(examples) as writer:
        for row in rows:
            writer.write(row)
    spec = bulk_scoring.bounded(model_spec_pb2.InferenceSpecType(saved_model_spec=model_spec_pb2.SavedModelSpec(
        model_path=model_dir, signature_name=[signature])))
    start = time.process_time()
    with bulk_scoring.forwarded_batch_parameters(), beam.Pipeline() as pipeline:
        _ = (pipeline | beam.io.ReadFromTFRecord(examples) | beam.Map(tf.train.Example.FromString)
             | run_inference.RunInference(spec)
             | beam.io.WriteToTFRecord(os.path.join(out, "logs"), file_name_suffix=".gz",
                                       coder=beam.coders.ProtoCoder(prediction_log_pb2.PredictionLog)))
    inference = time.process_time() - start
    outputs = bulk_scoring.signature_outputs(model_dir)
    codes = features.SERVING_CODES_KEY if features.SERVING_CODES_KEY in outputs else None
    start = time.process_time()
    logs = tf.data.TFRecordDataset(glob.glob(os.path.join(out, "logs*")), compression_type="GZIP")
    decoded = [prediction_logs.decode(batch, features.SERVING_VALUE_KEYS, codes) for batch in logs.batch(100_000)]
    decoding = time.process_time() - start
    return {"signature": signature, "rows": sum(len(d.examples) for d in decoded),
            "inference_cpu_s": round(inference, 2), "decode_cpu_s": round(decoding, 2),
            "first_predictions": decoded[0].values["prediction"][:3].tolist()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rqvalue.bench.bulk_inference",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("model_dir", help="a pushed SavedModel folder (runs/serving/<version>)")
    parser.add_argument("examples", help="glob of TFRecord files of raw tf.Examples")
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--signature", nargs="+", default=[features.SERVING_PACKED_SIGNATURE])
    args = parser.parse_args(argv)
    rows = _rows(args.examples, args.rows)
    for signature in args.signature:
        print(measure(args.model_dir, rows, signature), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
