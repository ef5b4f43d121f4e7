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
