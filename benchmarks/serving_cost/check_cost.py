"""The fixed cost of `serving_default`'s row check (`models.serving.check_examples`).

Times, called in turn on the same raw eval rows (1 and 1,000), the check with the tf.data options
it uses (`serving._PLAIN`: no autotuning, no graph rewrites, one thread), the same check with
tf.data's default options, and `tf.io.parse_example` alone.

  TF_USE_LEGACY_KERAS=1 .venv/bin/python benchmarks/serving_cost/check_cost.py --work /tmp/serving_cost
"""

import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--work", default="/tmp/serving_cost")
    parser.add_argument("--calls", type=int, default=40)
    args = parser.parse_args(argv)

    import measure
    import tensorflow as tf

    from models import serving

    prepared = measure.prepared_data(args.work, 6000)
    _, config = measure.trained(prepared, "mse", args.work)
    used = set(config["numeric_features"]) | set(config["categorical_features"])
    spec = {key: value for key, value in prepared.tft_output.raw_feature_spec().items() if key in used}
    plain = serving._PLAIN

    def check(options):
        serving._PLAIN = options  # read when the check is traced

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
        def run(serialized):
            with tf.control_dependencies([serving.check_examples(serialized, spec, 1024)]):
                return tf.size(serialized)

        run.get_concrete_function()
        serving._PLAIN = plain
        return run

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def parse_only(serialized):
        parsed = tf.nest.flatten(tf.io.parse_example(serialized, spec), expand_composites=True)
        return tf.add_n([tf.size(value) for value in parsed])

    functions = {"check (plain options)": check(plain), "check (default options)": check(tf.data.Options()),
                 "parse_example alone": parse_only}
    for rows in (1, 1000):
        batch = tf.constant(prepared.serialized["eval"][:rows])
        times = {name: [] for name in functions}
        for name, fn in functions.items():
            fn(batch).numpy()
        for _ in range(args.calls):
            for name, fn in functions.items():
                started = time.perf_counter()
                fn(batch).numpy()
                times[name].append(time.perf_counter() - started)
        print(f"{rows} rows: " + ", ".join(f"{name} {1000 * statistics.median(spent):.1f} ms"
                                           for name, spent in times.items()), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
