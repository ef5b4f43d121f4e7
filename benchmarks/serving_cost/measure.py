"""Serving cost of RQ-Reg against the MSE network, measured in one process.

Trains (once; weights and prepared data are cached in the work folder) a default RQ-Reg and a
default MSE network on cdnow_snapshots with the bench's own code (`rqvalue.bench`), then times
`models.serving.signatures(...)["serving_default"]` of both, interleaved, at batch 1,000 and at
batch 1 on raw eval examples, for each RQ-Reg decoding given; and scores each decoding's outputs
on the eval rows against the exact tree mean (Gini, CRPS of the served quantiles, largest
difference of the mean).

  TF_USE_LEGACY_KERAS=1 .venv/bin/python benchmarks/serving_cost/measure.py \
      --work /tmp/serving_cost --decodings tree beam
"""

import argparse
import dataclasses
import json
import os
import pickle
import statistics
import sys
import time


def prepared_data(work: str, rows: int):
    """The bench's prepared cdnow_snapshots (cached as a pickle without the TFTransformOutput)."""
    import tensorflow_transform as tft

    from rqvalue.bench import data

    cache = os.path.join(work, "prepared.pkl")
    if os.path.exists(cache):
        with open(cache, "rb") as f:
            prepared = pickle.load(f)
        return dataclasses.replace(prepared, tft_output=tft.TFTransformOutput(prepared.transform_dir))
    prepared = data.prepare_dataset("cdnow_snapshots", work, rows)
    with open(cache, "wb") as f:
        pickle.dump(dataclasses.replace(prepared, tft_output=None), f)
    return prepared


def trained(prepared, kind: str, work: str, seed: int = 0):
    """(model, config): the bench's default row of `kind`, trained once, then loaded from its weights."""
    import tensorflow as tf
    import tf_keras as keras

    from models import calibration, trainer
    from rqvalue.bench import rows, train
    from schemas import features

    budget = rows.DEFAULT_BUDGET
    config, _ = train.model_settings(prepared, rows.Row(kind, kind, kind, {}), seed, budget)
    split = {name: train._slice_codes(columns, config["num_levels"]) for name, columns in prepared.splits.items()}
    keras.utils.set_random_seed(seed)
    train_x, train_y = train._features_only(split["train"]), split["train"][features.TARGET_KEY]
    val_x, val_y = train._features_only(split["validation"]), split["validation"][features.TARGET_KEY]
    context = trainer.train_context(config, prepared.tft_output,
                                    tf.data.Dataset.from_tensor_slices((train_x, train_y)).batch(1024))
    model = trainer.build_model(config, context)
    path = os.path.join(work, f"{kind}.ckpt")  # a TF checkpoint: restored as the layers are built
    if os.path.exists(path + ".index"):
        model.load_weights(path).expect_partial()
    else:
        train._fit_keras(model, config, budget, seed, (train_x, train_y), (val_x, val_y))
        calibration.calibrate_model(model, tf.data.Dataset.from_tensor_slices((val_x, val_y)).batch(1024), log=None,
                                    mean=config["mean_calibration"])
        model.save_weights(path)
    return model, config


def timed(serves, batch, calls: int):
    """Median seconds of `calls` calls of each signature in `serves` on `batch`, the signatures called
    in turn (so a change of the machine's load reaches every one alike), after one warm-up call each."""
    for serve in serves:
        serve(batch)["prediction"].numpy()
    times = [[] for _ in serves]
    for _ in range(calls):
        for serve, spent in zip(serves, times):
            started = time.perf_counter()
            serve(batch)["prediction"].numpy()
            spent.append(time.perf_counter() - started)
    return [statistics.median(spent) for spent in times]


def use_decoding(model, spec: str, baseline: str) -> None:
    """Sets RQ-Reg's decoding from `spec`: "<decoding>" or "<decoding>:<beam_width>"; "before" serves
    with `serving_outputs` of the rqreg.py at `baseline` (an earlier version, for before/after)."""
    import importlib.util
    import types

    for name in ("serving_outputs", "leaf_probabilities", "_greedy_codes"):
        if name in model.__dict__:
            object.__delattr__(model, name)
    if spec == "before":
        loader = importlib.util.spec_from_file_location("rqreg_before", baseline)
        module = importlib.util.module_from_spec(loader)
        loader.loader.exec_module(module)
        for name in ("serving_outputs", "leaf_probabilities", "_greedy_codes"):
            object.__setattr__(model, name, types.MethodType(getattr(module.RQRegModel, name), model))
        spec = "tree"
    decoding, _, width = spec.partition(":")
    model.decoding = decoding
    model.beam_width = int(width) if width else 4


def accuracy(model, eval_x, labels, reference):
    """Gini, CRPS (served quantiles) and the largest |mean - tree mean| of the model's outputs on eval."""
    import numpy as np

    from models import metrics
    from rqvalue.bench import compare, scoring

    outputs = scoring.predict(scoring.predict_function(model, eval_x), eval_x)
    losses = compare.mean_losses(labels, outputs)
    result = {"crps_quantiles": losses.get("crps_quantiles", losses.get("crps")),"normalized_gini": metrics.summary(labels, outputs["prediction"])["normalized_gini"],
              "max_abs_diff_vs_tree": float(np.max(np.abs(outputs["prediction"] - reference["prediction"]))),
              "max_rel_diff_vs_tree": float(np.max(np.abs(outputs["prediction"] - reference["prediction"])
                                                   / np.maximum(reference["prediction"], 1e-3)))}
    for key in ("median", "lower", "upper"):
        result[f"max_abs_diff_{key}"] = float(np.max(np.abs(outputs[key] - reference[key])))
    return result, outputs


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--work", default="/tmp/serving_cost")
    parser.add_argument("--rows", type=int, default=6000)
    parser.add_argument("--decodings", nargs="+", default=["tree"],
                        help='"tree", "pruned:<beam_width>", "beam:<beam_width>", ..., or "before" (--baseline)')
    parser.add_argument("--baseline", default="", help="an earlier models/rqreg.py, served as decoding 'before'")
    parser.add_argument("--calls", type=int, default=7)
    parser.add_argument("--single_calls", type=int, default=200)
    parser.add_argument("--memory", action="store_true", help="also RQ-Reg's serving memory per 1,000 rows")
    parser.add_argument("--out", default="")
    args = parser.parse_args(argv)
    os.makedirs(args.work, exist_ok=True)

    import tensorflow as tf

    from models import serving
    from rqvalue.bench import train

    prepared = prepared_data(args.work, args.rows)
    models = {kind: trained(prepared, kind, args.work) for kind in ("mse", "rqreg")}
    pool = prepared.serialized["eval"]
    batches = {"1000": tf.constant(pool[:1000]), "1": tf.constant(pool[:1])}
    eval_x = train._features_only(prepared.splits["eval"])
    labels = prepared.labels["eval"]
    rqreg, _ = models["rqreg"]
    use_decoding(rqreg, "tree", args.baseline)
    _, reference = accuracy(rqreg, eval_x, labels, {k: 0.0 for k in ("prediction", "median", "lower", "upper")})
    mse_serve = serving.signatures(models["mse"][0], prepared.tft_output, models["mse"][1])["serving_default"]
    results = []
    for spec in args.decodings:
        use_decoding(rqreg, spec, args.baseline)
        row = {"decoding": spec}
        serve = serving.signatures(rqreg, prepared.tft_output, models["rqreg"][1])["serving_default"]
        for name, batch in batches.items():
            calls = args.calls if name == "1000" else args.single_calls
            rq_s, mse_s = timed([serve, mse_serve], batch, calls)
            scale = 1000.0 if name == "1000" else 1.0  # ms per 1,000 rows; ms per call at batch 1
            row[f"rqreg_ms_{name}"], row[f"mse_ms_{name}"] = 1000.0 * rq_s * scale / int(name), 1000.0 * mse_s * scale / int(name)
            row[f"ratio_{name}"] = rq_s / mse_s
        if args.memory:  # exported and scored in a fresh process (models.serving_cost), as the bench does
            from rqvalue.bench import scoring
            signatures = serving.signatures(rqreg, prepared.tft_output, models["rqreg"][1])
            row["rqreg_mb_per_1000"] = scoring.serving_memory(rqreg, signatures, prepared, 1000)["serve_mb_per_1000"]
        scores, _ = accuracy(rqreg, eval_x, labels, reference)
        row.update(scores)
        results.append(row)
        print(json.dumps(row), flush=True)
    use_decoding(rqreg, "tree", args.baseline)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(results, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
