"""Decoding BulkInferrer's PredictionLogs a batch at a time gives what each log holds."""

import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import prediction_log_pb2

from components import prediction_logs


def _log(example: bytes, outputs, packed=()):
    log = prediction_log_pb2.PredictionLog()
    request = log.predict_log.request.inputs["examples"]
    request.dtype = tf.string.as_datatype_enum
    request.string_val.append(example)
    for key, value in outputs.items():
        value = np.asarray(value)
        tensor = tf.make_tensor_proto(value, shape=(1,) + value.shape)  # as tfx_bsl writes each output
        if key in packed:  # the packed layout, which make_tensor_proto uses for more than one value
            tensor.ClearField("float_val")
            tensor.tensor_content = value.tobytes()
        log.predict_log.response.outputs[key].CopyFrom(tensor)
    return log.SerializeToString()


def test_decodes_examples_scalars_and_codes_whatever_their_layout():
    records = [
        _log(b"e0", {"prediction": np.float32(1.5), "upper": np.float32(3.0), "codes": np.int64([1, 2, 3])}),
        _log(b"e1", {"codes": np.int64([0, 0, 7]), "upper": np.float32(9.0), "prediction": np.float32(0.0)},
             packed=("prediction",)),
    ]
    decoded = prediction_logs.decode(tf.constant(records), ["prediction", "upper"], "codes")
    assert decoded.examples.tolist() == [b"e0", b"e1"]
    np.testing.assert_array_equal(decoded.values["prediction"], [1.5, 0.0])
    np.testing.assert_array_equal(decoded.values["upper"], [3.0, 9.0])
    np.testing.assert_array_equal(decoded.codes, [[1, 2, 3], [0, 0, 7]])


def test_single_level_codes_and_no_codes():
    records = [_log(b"a", {"prediction": np.float32(2.0), "codes": np.int64([4])}),
               _log(b"b", {"prediction": np.float32(5.0), "codes": np.int64([1])})]
    decoded = prediction_logs.decode(tf.constant(records), ["prediction"], "codes")
    np.testing.assert_array_equal(decoded.codes, [[4], [1]])
    assert prediction_logs.decode(tf.constant(records), ["prediction"], None).codes is None


def test_a_missing_output_is_named():
    records = [_log(b"a", {"prediction": np.float32(2.0)})]
    with pytest.raises(ValueError, match="output 'median' is missing"):
        prediction_logs.decode(tf.constant(records), ["prediction", "median"], None)


def _float_val_log(example: bytes, scores: np.ndarray) -> bytes:
    """A log of the packed output [1, W] with its values in `float_val`, the other layout a writer may choose."""
    log = prediction_log_pb2.PredictionLog.FromString(_log(example, {}))
    tensor = log.predict_log.response.outputs["scores"]
    tensor.CopyFrom(tf.make_tensor_proto(scores, shape=(1,) + scores.shape))
    tensor.ClearField("tensor_content")
    tensor.float_val.extend(scores.tolist())
    return log.SerializeToString()


def test_packed_scores_decode_into_the_same_columns_whatever_their_layout():
    rows = np.float32([[1.5, 1.0, 0.5, 3.0, 2, 0, 7], [0.0, 0.0, 0.0, 0.25, 0, 15, 1]])
    records = [_float_val_log(b"e0", rows[0]), _log(b"e1", {"scores": rows[1]})]  # tensor_content
    decoded = prediction_logs.decode(tf.constant(records), ["prediction", "median", "lower", "upper"], "codes")
    assert decoded.examples.tolist() == [b"e0", b"e1"]
    for column, key in enumerate(("prediction", "median", "lower", "upper")):
        np.testing.assert_array_equal(decoded.values[key], rows[:, column], err_msg=key)
    assert decoded.codes.dtype == np.int64
    np.testing.assert_array_equal(decoded.codes, [[2, 0, 7], [0, 15, 1]])


def test_packed_scores_without_codes():
    records = [_log(b"a", {"scores": np.float32([2.0, 1.0, 0.5, 4.0])}, packed=("scores",))]
    decoded = prediction_logs.decode(tf.constant(records), ["prediction", "upper"], None)
    assert decoded.values == {"prediction": [2.0], "upper": [4.0]} and decoded.codes is None
    with pytest.raises(ValueError, match="output 'codes' is missing"):
        prediction_logs.decode(tf.constant(records), ["prediction"], "codes")
