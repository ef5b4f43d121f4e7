"""Where RQ-Reg's serving time goes: each part of `serving_default` timed as its own tf.function.

Uses the models `measure.py` trained and cached in the work folder. Each part is timed on the
same 1,000 eval rows (median of several calls after a warm-up), in this order: parsing + the
transform layer, the encoder, the leaf probabilities up to each level, the serving outputs
(mean, quantiles, greedy codes; `tree`), `predict_outputs` (plus calibration and clipping), the whole
signature; the MSE network's signature for reference.

  TF_USE_LEGACY_KERAS=1 .venv/bin/python benchmarks/serving_cost/parts.py --work /tmp/serving_cost
"""

import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def median_ms(fn, arg, calls: int) -> float:
    import tensorflow as tf

    tf.nest.map_structure(lambda t: t.numpy() if hasattr(t, "numpy") else t, fn(arg))
    times = []
    for _ in range(calls):
        started = time.perf_counter()
        tf.nest.map_structure(lambda t: t.numpy() if hasattr(t, "numpy") else t, fn(arg))
        times.append(time.perf_counter() - started)
    return 1000.0 * statistics.median(times)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--work", default="/tmp/serving_cost")
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--calls", type=int, default=7)
    args = parser.parse_args(argv)

    import measure
    import tensorflow as tf

    from models import serving
    from rqvalue.bench import train

    prepared = measure.prepared_data(args.work, 6000)
    model, config = measure.trained(prepared, "rqreg", args.work)
    mse, mse_config = measure.trained(prepared, "mse", args.work)
    n = args.rows
    eval_x = {k: tf.constant(v[:n]) for k, v in train._features_only(prepared.splits["eval"]).items()}
    serialized = tf.constant(prepared.serialized["eval"][:n])
    raw_spec = prepared.tft_output.raw_feature_spec()
    used = set(config["numeric_features"]) | set(config["categorical_features"])
    spec = {key: value for key, value in raw_spec.items() if key in used}
    serve = serving.signatures(model, prepared.tft_output, config)["serving_default"]
    serve_mse = serving.signatures(mse, prepared.tft_output, mse_config)["serving_default"]

    parts = {
        "parse + transform layer": (tf.function(lambda s: model.tft_layer(tf.io.parse_example(s, spec))), serialized),
        "encoder": (tf.function(model.encoder), eval_x),
    }
    for levels in range(1, len(model.sizes) + 1):
        def upto(x, levels=levels):
            sizes = model.sizes
            model.sizes = sizes[:levels]
            try:
                return model.leaf_probabilities(x)
            finally:
                model.sizes = sizes
        parts[f"leaf_probabilities, levels 1..{levels}"] = (tf.function(upto), eval_x)
    parts[f"leaf_probabilities, pruned to {model.beam_width}"] = (
        tf.function(lambda x: model.leaf_probabilities(x, model.beam_width)), eval_x)
    parts.update({
        "serving_outputs": (tf.function(model.serving_outputs), eval_x),
        "predict_outputs": (tf.function(model.predict_outputs), eval_x),
        "serving_default (whole)": (lambda s: serve(s), serialized),
        "MSE serving_default (whole)": (lambda s: serve_mse(s), serialized),
        "MSE predict_outputs": (tf.function(mse.predict_outputs), eval_x),
    })
    print(f"{'part':<40} {'ms per ' + str(n) + ' rows':>16}")
    for name, (fn, arg) in parts.items():
        print(f"{name:<40} {median_ms(fn, arg, args.calls):>16.1f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
