"""The signatures a trained model is exported with, the same for every model kind.

  - `serving_default`: serialized raw `tf.Example`s without the label (input `examples`, [B]) ->
    `prediction` (mean, label units), `median`, `lower`, `upper` [B] (`base.ValueModel.predict_outputs`)
    plus the kind's extras (RQ-Reg: `codes` [B, L]);
  - `score_packed` (`features.SERVING_PACKED_SIGNATURE`): the same input, checks and chunks, and the
    same values in ONE float32 output `scores` [B, 4 + L]: columns `prediction`, `median`, `lower`,
    `upper` (`features.SERVING_VALUE_KEYS`), then the L RQ codes coarse to fine as floats (exact:
    codes are small integers); L = 0 for kinds without codes, whose other extras are left out. The
    layout is fixed, so a reader gets L from the width. Batch scoring (BulkInferrer) reads it: tfx_bsl
    writes one TensorProto per output per row, so one output instead of five costs a fifth;
  - `transform_features`: serialized raw examples with the label -> the transformed features; TFMA
    uses it to slice by `value_bucket`.

What `serving_default` guarantees:
  - Each row's answer depends on that row alone. Missing numeric values and NaN/±inf (both made 0
    before scaling by `preprocessing_fn`, the same graph in training and at serving) and unknown
    categories (the out-of-vocabulary id) are answered; nothing batch-wide enters a row's value.
  - Memory does not grow with the batch beyond its inputs and outputs: rows are parsed, transformed
    and scored `serving_chunk_rows` (Trainer config) at a time, one chunk after another, in a loop
    inside the graph.
  - A row that cannot be read stops the whole call with an InvalidArgumentError naming the row:
    bytes that are not a serialized `tf.Example`, a feature of another type than the model reads,
    or more than one value in a feature.
"""

from typing import Any, Callable, Dict, Mapping

import tensorflow as tf
import tensorflow_transform as tft

from models import base
from schemas import features

_EXAMPLES = tf.TensorSpec([None], tf.string, name="examples")


def _expected(spec: Mapping[str, Any]) -> str:
    """What the parse spec asks of each feature, e.g. "c: bytes_list; x: float_list, required"."""
    lists = {tf.float32: "float_list", tf.int64: "int64_list", tf.string: "bytes_list"}
    return "; ".join(
        f"{key}: {lists.get(value.dtype, value.dtype.name)}"
        + (", required" if isinstance(value, tf.io.FixedLenFeature) and value.default_value is None else "")
        for key, value in sorted(spec.items()))


def _missing(values: tf.Tensor, kept: tf.Tensor) -> tf.Tensor:
    """The entries of `values` [N] that are not in `kept` [M]."""
    return tf.sets.difference(values[None, :], kept[None, :]).values


def _plain_options() -> tf.data.Options:
    """tf.data options for the small dataset `check_examples` builds on every call: no autotuning,
    no graph rewrites, one thread. Each would be set up anew per call, and together they cost
    more than the parsing itself (about half of the check's time at 1 to 1,000 rows)."""
    options = tf.data.Options()
    options.autotune.enabled = False
    options.experimental_optimization.apply_default_optimizations = False
    options.threading.private_threadpool_size = 1
    return options


_PLAIN = _plain_options()


def check_examples(serialized: tf.Tensor, spec: Mapping[str, Any], chunk_rows: int) -> tf.Operation:
    """An op that fails with InvalidArgumentError naming the first row `tf.io.parse_example` cannot read.

    TensorFlow's own parse error quotes the row's bytes, which a Python client cannot decode when
    they are not UTF-8 (it gets a UnicodeDecodeError instead of the error). So the rows are first
    parsed `chunk_rows` at a time in a dataset that drops the chunks that fail; only if one fails
    are its rows parsed one by one to find the first bad one.
    """
    rows = tf.size(serialized, out_type=tf.int64)
    chunks = (rows + chunk_rows - 1) // chunk_rows

    def readable(starts: tf.Tensor, length: int) -> tf.Tensor:
        """The start rows of the blocks of `length` rows from `starts` that parse."""
        def parse(start):
            parsed = tf.io.parse_example(serialized[start:start + length], spec)
            parsed = tf.nest.flatten(parsed, expand_composites=True)
            # A data dependency: the dataset's map function drops ops reached by control edges only.
            return start + 0 * tf.add_n([tf.size(value, out_type=tf.int64) for value in parsed] + [start])

        dataset = tf.data.Dataset.from_tensor_slices(starts).map(parse).ignore_errors().with_options(_PLAIN)
        return dataset.reduce(tf.zeros([0], tf.int64), lambda kept, start: tf.concat([kept, [start]], 0))

    chunk_starts = tf.range(chunks) * chunk_rows
    kept = readable(chunk_starts, chunk_rows)
    all_readable = tf.equal(tf.size(kept, out_type=tf.int64), chunks)

    def first_bad_row() -> tf.Tensor:
        start = tf.reduce_min(_missing(chunk_starts, kept))
        row_starts = tf.range(start, tf.minimum(start + chunk_rows, rows))
        return tf.reduce_min(_missing(row_starts, readable(row_starts, 1)))

    message = tf.cond(
        all_readable, lambda: tf.constant(""),
        lambda: tf.strings.format(
            "examples[{}] cannot be read: it is not a serialized tf.Example, or a feature the model reads holds "
            f"another type or lacks a required value (the model reads {_expected(spec)})", (first_bad_row(),)))
    return tf.debugging.Assert(all_readable, [message], name="check_examples")


def _single_valued(raw: Mapping[str, Any], offset: tf.Tensor) -> tf.Operation:
    """An op that fails with InvalidArgumentError if a row holds more than one value in a feature."""
    checks = []
    for key, value in sorted(raw.items()):
        if not isinstance(value, tf.SparseTensor):
            continue
        rows = tf.boolean_mask(value.indices[:, 0], value.indices[:, 1] > 0)  # rows with a second value
        checks.append(tf.debugging.Assert(
            tf.equal(tf.size(rows), 0),
            [tf.strings.format("examples[{}]: feature " + key + " holds more than one value; the model reads "
                               "one value per feature", (tf.reduce_min(rows) + offset,))],
            name="check_single_value"))
    return tf.group(checks)


def in_chunks(score: Callable[[tf.Tensor, tf.Tensor], Dict[str, tf.Tensor]], serialized: tf.Tensor,
              chunk_rows: int) -> Dict[str, tf.Tensor]:
    """`score(rows, offset)` on `chunk_rows` rows at a time, one chunk after another, outputs concatenated.

    `score` must be a `tf.function` returning a dict of tensors whose first dimension is the row.
    The loop runs its iterations strictly in turn (parallel_iterations=1), so at most one chunk's
    intermediate tensors are alive at once.
    """
    outputs = score.get_concrete_function(tf.TensorSpec([None], tf.string), tf.TensorSpec([], tf.int64)
                                          ).structured_outputs
    rows = tf.size(serialized, out_type=tf.int64)
    chunks = (rows + chunk_rows - 1) // chunk_rows
    arrays = {key: tf.TensorArray(value.dtype, size=tf.cast(chunks, tf.int32), infer_shape=False,
                                  element_shape=tf.TensorShape([None]).concatenate(value.shape[1:]))
              for key, value in outputs.items()}

    def body(chunk, arrays):
        start = chunk * chunk_rows
        scored = score(serialized[start:start + chunk_rows], start)
        return chunk + 1, {key: arrays[key].write(tf.cast(chunk, tf.int32), scored[key]) for key in arrays}

    _, arrays = tf.while_loop(lambda chunk, _: chunk < chunks, body, (tf.constant(0, tf.int64), arrays),
                              parallel_iterations=1)
    return {key: _concat(array, outputs[key]) for key, array in arrays.items()}


def _concat(array: tf.TensorArray, like: tf.Tensor) -> tf.Tensor:
    """The rows of every chunk; an empty [0, ...] tensor for an empty batch."""
    empty = tf.zeros([0] + [size or 0 for size in like.shape[1:].as_list()], like.dtype)
    return tf.cond(array.size() > 0, array.concat, lambda: empty)


def packed(outputs: Mapping[str, tf.Tensor]) -> tf.Tensor:
    """`serving_default`'s outputs as `score_packed`'s `scores` [B, 4 + L] (module docstring)."""
    columns = [tf.stack([tf.cast(outputs[key], tf.float32) for key in features.SERVING_VALUE_KEYS], axis=1)]
    if features.SERVING_CODES_KEY in outputs:
        columns.append(tf.cast(outputs[features.SERVING_CODES_KEY], tf.float32))
    return tf.concat(columns, axis=1)


def signatures(model: base.ValueModel, tft_output: tft.TFTransformOutput, config: Mapping[str, Any]
               ) -> Dict[str, Any]:
    """The `signatures` argument of `tf.saved_model.save` for a trained model (module docstring)."""
    model.tft_layer = tft_output.transform_features_layer()
    raw_spec = tft_output.raw_feature_spec()
    used = set(config["numeric_features"]) | set(config["categorical_features"])
    serving_spec = {key: value for key, value in raw_spec.items() if key in used}
    chunk_rows = int(config["serving_chunk_rows"])

    @tf.function
    def score(rows, offset):
        raw = tf.io.parse_example(rows, serving_spec)
        with tf.control_dependencies([_single_valued(raw, offset)]):
            raw = {key: tf.nest.map_structure(tf.identity, value, expand_composites=True)
                   for key, value in raw.items()}
        return model.predict_outputs(model.tft_layer(raw))

    @tf.function(input_signature=[_EXAMPLES])
    def serve(serialized):
        with tf.control_dependencies([check_examples(serialized, serving_spec, chunk_rows)]):
            serialized = tf.identity(serialized)
        return in_chunks(score, serialized, chunk_rows)

    @tf.function(input_signature=[_EXAMPLES])
    def serve_packed(serialized):
        return {features.SERVING_PACKED_KEY: packed(serve(serialized))}

    @tf.function(input_signature=[_EXAMPLES])
    def transform_features(serialized):
        with tf.control_dependencies([check_examples(serialized, raw_spec, chunk_rows)]):
            serialized = tf.identity(serialized)
        return model.tft_layer(tf.io.parse_example(serialized, raw_spec))

    return {"serving_default": serve, features.SERVING_PACKED_SIGNATURE: serve_packed,
            "transform_features": transform_features}
