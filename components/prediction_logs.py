"""BulkInferrer's PredictionLogs, decoded a batch at a time in TensorFlow's C++ proto decoder.

For a predict signature tfx_bsl writes one `tensorflow.serving.PredictionLog` per example: the
request holds the serialized example (the signature's single input), the response one TensorProto
per output, each of shape [1, ...] — a scalar as `float_val`, a vector (RQ codes) as packed
`tensor_content`. `tf.io.decode_proto` reads a field of a whole batch of messages at once, so the
logs are taken apart level by level (log -> request/response -> map entries -> tensors) without a
Python step per example (about 4x faster than parsing each log in Python).

Logs of the packed signature (`score_packed`, `models/serving.py`) hold one output, `scores` [1, 4 + L]:
the four values (`features.SERVING_VALUE_KEYS`, in that order), then the L codes as floats. They are
decoded into the same columns as the logs of `serving_default`.
"""

import dataclasses
import functools
from typing import Dict, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

from schemas import features

_SERVING = "tensorflow.serving."


@functools.lru_cache(maxsize=1)
def _descriptors() -> bytes:
    """The PredictionLog's proto definitions and all they import, as a FileDescriptorSet for decode_proto."""
    from google.protobuf import descriptor_pb2
    from tensorflow_serving.apis import prediction_log_pb2

    files, seen = descriptor_pb2.FileDescriptorSet(), set()

    def add(file_descriptor) -> None:
        if file_descriptor.name in seen:
            return
        seen.add(file_descriptor.name)
        for dependency in file_descriptor.dependencies:
            add(dependency)
        file_descriptor.CopyToProto(files.file.add())

    add(prediction_log_pb2.DESCRIPTOR)
    return b"bytes://" + files.SerializeToString()


def _fields(messages: tf.Tensor, message_type: str, fields: Sequence[str],
            dtypes: Sequence[tf.DType]) -> Tuple[np.ndarray, list]:
    """([N, fields] value counts, [N, max count] values per field) of N serialized messages."""
    sizes, values = tf.io.decode_proto(messages, message_type, list(fields), list(dtypes),
                                       descriptor_source=_descriptors())
    return sizes.numpy(), values


@dataclasses.dataclass
class Decoded:
    """A batch of logs: the serialized examples [N], each scalar output [N] and the codes [N, levels]."""

    examples: np.ndarray
    values: Dict[str, np.ndarray]
    codes: Optional[np.ndarray]


def decode(records: tf.Tensor, scalar_keys: Sequence[str], codes_key: Optional[str]) -> Decoded:
    """Decodes serialized PredictionLogs of a predict signature.

    Args:
      records: [N] serialized PredictionLogs.
      scalar_keys: outputs of one value per example (read as float32).
      codes_key: an output of an int64 vector per example (RQ codes), or None.
    """
    rows = int(records.shape[0])
    _, (log,) = _fields(records, _SERVING + "PredictionLog", ["predict_log"], [tf.string])
    _, (request, response) = _fields(log[:, 0], _SERVING + "PredictLog", ["request", "response"],
                                     [tf.string, tf.string])
    _, (inputs,) = _fields(request[:, 0], _SERVING + "PredictRequest", ["inputs"], [tf.string])
    _, (value,) = _fields(inputs[:, 0], _SERVING + "PredictRequest.InputsEntry", ["value"], [tf.string])
    _, (examples,) = _fields(value[:, 0], "tensorflow.TensorProto", ["string_val"], [tf.string])

    counts, (entries,) = _fields(response[:, 0], _SERVING + "PredictResponse", ["outputs"], [tf.string])
    outputs = int(counts.max()) if rows else 0
    if rows and (counts != outputs).any():
        raise ValueError("prediction logs: examples differ in their number of outputs")
    _, (names, tensors) = _fields(tf.reshape(entries, [-1]), _SERVING + "PredictResponse.OutputsEntry",
                                  ["key", "value"], [tf.string, tf.string])
    sizes, (floats, content, ints) = _fields(tensors[:, 0], "tensorflow.TensorProto",
                                             ["float_val", "tensor_content", "int64_val"],
                                             [tf.float32, tf.string, tf.int64])
    names = names.numpy()[:, 0].reshape(rows, outputs)
    content = content.numpy()[:, 0]
    floats, ints = floats.numpy(), ints.numpy()
    if outputs == 1 and (names == features.SERVING_PACKED_KEY.encode()).all():
        return _unpacked(examples.numpy()[:, 0], _rows(sizes[:, 0], floats, content), scalar_keys, codes_key)

    def column(key: str) -> np.ndarray:
        found = names == key.encode()
        if not found.any(axis=1).all():
            raise ValueError(f"prediction logs: output {key!r} is missing")
        return np.arange(rows) * outputs + found.argmax(axis=1)  # each row's entry of `key`

    values = {}
    for key in scalar_keys:
        at = column(key)
        packed = sizes[at, 0] == 0  # no float_val: the value is in tensor_content
        value = floats[at, 0].astype(np.float32) if floats.shape[1] else np.zeros(rows, np.float32)
        if packed.any():
            value[packed] = [np.frombuffer(c, dtype=np.float32)[0] for c in content[at[packed]]]
        values[key] = value
    codes = None
    if codes_key is not None:
        at = column(codes_key)
        if rows and (sizes[at, 2] > 0).all():
            codes = ints[at, :int(sizes[at, 2].max())]
        else:
            codes = np.frombuffer(b"".join(content[at]), dtype=np.int64).reshape(rows, -1)
    return Decoded(examples.numpy()[:, 0], values, codes)


def _rows(counts: np.ndarray, floats: np.ndarray, content: np.ndarray) -> np.ndarray:
    """[N, W] float32: each row's [1, W] tensor, from `float_val` (`counts` values) or packed `tensor_content`."""
    in_floats = counts > 0
    widths = np.where(in_floats, counts, [len(c) // 4 for c in content]) if len(counts) else counts
    width = int(widths.max()) if len(counts) else 0
    if (widths != width).any():
        raise ValueError("prediction logs: examples differ in the width of their packed scores")
    scores = np.empty((len(counts), width), np.float32)
    scores[in_floats] = floats[in_floats, :width]
    scores[~in_floats] = np.frombuffer(b"".join(content[~in_floats]), dtype=np.float32).reshape(-1, width)
    return scores


def _unpacked(examples: np.ndarray, scores: np.ndarray, scalar_keys: Sequence[str],
              codes_key: Optional[str]) -> Decoded:
    """The columns of the packed `scores` [N, 4 + L] (module docstring)."""
    value_keys = features.SERVING_VALUE_KEYS
    if scores.shape[0] and scores.shape[1] < len(value_keys):
        raise ValueError(f"prediction logs: packed scores have {scores.shape[1]} columns, fewer than the "
                         f"{len(value_keys)} values {list(value_keys)}")
    unknown = [key for key in scalar_keys if key not in value_keys]
    if unknown:
        raise ValueError(f"prediction logs: packed scores hold {list(value_keys)} and codes, not {unknown}")
    values = {key: np.ascontiguousarray(scores[:, value_keys.index(key)]) for key in scalar_keys}
    codes = None
    if codes_key is not None:
        if scores.shape[0] and scores.shape[1] == len(value_keys):
            raise ValueError(f"prediction logs: output {codes_key!r} is missing (the packed scores hold no codes)")
        codes = np.rint(scores[:, len(value_keys):]).astype(np.int64)
    return Decoded(examples, values, codes)
