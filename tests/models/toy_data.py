"""A small zero-inflated regression set shared by the model tests."""

import numpy as np

from schemas import features

# RQ-Reg's settings beyond its layer sizes, as the model tests build it: the code cross-entropy and
# the Huber term, no Rank-N-Contrast, no scheduled sampling, the exact tree decoding.
RQREG_PLAIN = dict(regression_weight=1.0, rnc_weight=0.0, rnc_temperature=2.0, sampling_probability=0.0,
                   decoding="tree", beam_width=4, code_smoothing=0.0, rnc_representation="codes")


def zero_inflated(n: int = 512, seed: int = 0):
    """One numeric and one categorical feature that determine a zero-inflated target.

    Returns (transformed-feature inputs, log1p target float32, labels float32).
    """
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n).astype(np.float32)
    cat = rng.integers(0, 3, size=n)
    y = np.where(x + 0.5 * cat > 0.5, np.exp(2.0 + x + cat), 0.0).astype(np.float32)
    inputs = {features.transformed_name("x"): x, features.transformed_name("c"): cat.astype(np.int64)}
    return inputs, np.log1p(y).astype(np.float32), y


def serialized_example(row, feature_spec) -> bytes:
    """One tf.Example of `row` ({key: list of values}); string keys of `feature_spec` as bytes, the rest as floats."""
    import tensorflow as tf

    feature = {}
    for key, values in row.items():
        if feature_spec[key].dtype == tf.string:
            feature[key] = tf.train.Feature(bytes_list=tf.train.BytesList(value=values))
        else:
            feature[key] = tf.train.Feature(float_list=tf.train.FloatList(value=values))
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()
