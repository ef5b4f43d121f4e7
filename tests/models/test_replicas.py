"""The multi-replica path the Trainer takes on several GPUs, on two logical CPU devices: RQ-Reg learns as on one.

Logical devices must be configured before TensorFlow initialises its devices, which the test
process has done long before; so the training runs in a child process (this file run as a script)
that prints its measurements as JSON.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

STEPS = 8
BATCH = 64  # the global batch; each of two replicas gets 32 rows


def test_rqreg_under_mirrored_strategy_on_two_devices_learns_as_on_one():
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = {**os.environ, "TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "3",
           "PYTHONPATH": os.pathsep.join([root, os.path.dirname(os.path.abspath(__file__))])}
    child = subprocess.run([sys.executable, os.path.abspath(__file__)], env=env, capture_output=True, text=True,
                           timeout=600)
    assert child.returncode == 0, child.stderr[-3000:]
    result = json.loads(child.stdout.strip().splitlines()[-1])
    one, two = result["one"], result["two"]
    assert (one["replicas"], two["replicas"]) == (1, 2)

    # The batch-wise Rank-N-Contrast term of one global batch: each replica holds half of it, and the
    # term is computed over the whole batch, as on one device (over each half alone it would differ).
    assert two["rnc"] == pytest.approx(one["rnc"], rel=1e-5)
    assert abs(result["rnc_of_halves"] - one["rnc"]) > 100 * abs(two["rnc"] - one["rnc"])
    # Its gradient, summed over the replicas as Keras does, is the one-device gradient.
    np.testing.assert_allclose(two["rnc_gradient"], one["rnc_gradient"], rtol=1e-4, atol=1e-6)
    # Training: the same losses step by step (RNC included), and the same weights at the end.
    assert one["losses"][-1] < 0.9 * one["losses"][0]
    np.testing.assert_allclose(two["losses"], one["losses"], rtol=1e-5)
    np.testing.assert_allclose(two["weights"], one["weights"], rtol=1e-4, atol=1e-5)


# -- the child process ---------------------------------------------------------------------------------------

def _measure(strategy, inputs, target, book):
    """Trains a small RQ-Reg under `strategy`; returns what the parent compares."""
    import tensorflow as tf
    import tf_keras as keras

    from models import base, rnc, rqreg

    keras.utils.set_random_seed(0)
    context = base.TrainContext(numeric_keys=("x",), vocab_sizes={"c": 4}, label_transform="log1p",
                                train_labels=np.expm1(target), codebook_levels=tuple(book))
    # Scheduled sampling draws random numbers per replica: off, so that both runs see the same inputs.
    settings = dict(embedding_dim=4, hidden_units=(16,), lstm_units=16, regression_weight=0.0, rnc_weight=1.0,
                    rnc_temperature=2.0, sampling_probability=0.0, decoding="tree", beam_width=4, code_smoothing=0.0,
                    rnc_representation="codes")
    with strategy.scope():
        model = rqreg.RQRegModel(context, **settings)
        loss, weights = model.loss_config()
        model.compile(optimizer=keras.optimizers.Adam(1e-2), loss=loss, loss_weights=weights)
        features = {k: tf.constant(v) for k, v in inputs.items()}
        model(features, training=True)  # creates the variables, mirrored on every device
    targets = model.training_targets(features, tf.constant(target))
    batch = {k: v[:BATCH] for k, v in features.items()}

    def rnc_and_gradient(local):
        with tf.GradientTape() as tape:
            model(local, training=True)
            term = tf.add_n(model.losses)
            scaled = term / tf.distribute.get_strategy().num_replicas_in_sync  # as Keras scales a replica's loss
        variables = [v for v in model.trainable_variables if "code_embed" in v.name]
        return term, tape.gradient(scaled, variables)

    distributed = strategy.experimental_distribute_dataset(tf.data.Dataset.from_tensor_slices(batch).batch(BATCH))
    term, gradients = tf.function(lambda local: strategy.run(rnc_and_gradient, args=(local,)))(
        next(iter(distributed)))
    term = strategy.reduce("MEAN", term, axis=None)
    gradients = [strategy.reduce("SUM", g, axis=None) for g in gradients]

    halves = float(np.mean([rnc.rnc_loss(rep, lab, 2.0) for rep, lab in _halves(model, batch)]))

    dataset = tf.data.Dataset.from_tensor_slices((features, targets)).batch(BATCH, drop_remainder=True).repeat()
    model.run_eagerly = True  # eight steps: cheaper than tracing a distributed training function
    history = model.fit(dataset, epochs=STEPS, steps_per_epoch=1, verbose=0).history["loss"]
    return {"replicas": strategy.num_replicas_in_sync, "rnc": float(term), "rnc_of_halves": halves,
            "rnc_gradient": np.concatenate([tf.reshape(g, [-1]).numpy() for g in gradients]).tolist(),
            "losses": [float(v) for v in history],
            "weights": np.concatenate([w.reshape(-1) for w in model.get_weights()]).tolist()}


def _halves(model, batch):
    """(code-path embeddings, decoded labels) of each half of the batch: what each replica holds."""
    half = BATCH // 2
    for part in ({k: v[:half] for k, v in batch.items()}, {k: v[half:] for k, v in batch.items()}):
        codes = part["rq_codes"]
        yield model._path_embedding(codes), model._decode(codes)


def _child():
    import tensorflow as tf

    (cpu,) = tf.config.list_physical_devices("CPU")
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from toy_data import zero_inflated

    from models import codebook
    from schemas import features

    inputs, target, _ = zero_inflated(BATCH * STEPS)
    book = codebook.fit(target, (6, 4, 3))
    inputs[features.CODES_KEY] = codebook.encode(target, book)
    one = _measure(tf.distribute.MirroredStrategy(["/cpu:0"]), inputs, target, book)
    two = _measure(tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]), inputs, target, book)
    print(json.dumps({"one": one, "two": two, "rnc_of_halves": one["rnc_of_halves"]}))


if __name__ == "__main__":
    _child()
