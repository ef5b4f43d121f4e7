"""Warm start: trainable weights saved by name beside the export, loaded where name and shape match."""

import os

import numpy as np
import tf_keras as keras

from models import warm_start


def _model(units: int, vocab: int) -> keras.Model:
    keras.utils.set_random_seed(units * 100 + vocab)
    inputs = keras.Input(shape=(3,))
    ids = keras.Input(shape=(1,), dtype="int32")
    embedded = keras.layers.Flatten()(keras.layers.Embedding(vocab, 2, name="ids_embedding")(ids))
    hidden = keras.layers.Dense(units, name="hidden")(keras.layers.Concatenate()([inputs, embedded]))
    output = keras.layers.Dense(1, name="out")(hidden)
    normalizer = keras.layers.Dense(1, trainable=False, name="frozen")(output)
    return keras.Model([inputs, ids], normalizer)


def test_weights_path_from_the_serving_dir_or_the_artifact():
    assert warm_start.weights_path("/m/7/Format-Serving") == "/m/7/weights/trainable.npz"
    assert warm_start.weights_path("/m/7/") == "/m/7/weights/trainable.npz"


def test_matching_weights_load_and_the_rest_stay_initialised(tmp_path):
    old, new = _model(4, vocab=10), _model(4, vocab=12)  # the vocabulary grew between runs
    path = warm_start.save(old, str(tmp_path / "Format-Serving"))
    assert os.path.exists(path)
    before = {v.name: v.numpy().copy() for v in new.variables}
    loaded, kept = warm_start.load(new, str(tmp_path / "Format-Serving"))
    assert (loaded, kept) == (4, 1)  # hidden and out kernels and biases; not the resized embedding
    saved = {v.name: v.numpy() for v in old.trainable_variables}
    for variable in new.variables:
        if variable.name.startswith(("hidden", "out")):
            np.testing.assert_array_equal(variable.numpy(), saved[variable.name])
        else:  # the embedding (shape changed) and the non-trainable layer keep this run's values
            np.testing.assert_array_equal(variable.numpy(), before[variable.name])


def test_nothing_to_load_is_not_an_error(tmp_path):
    model = _model(4, vocab=10)
    assert warm_start.load(model, None) == (0, 5)
    assert warm_start.load(model, str(tmp_path / "no_model_here")) == (0, 5)
