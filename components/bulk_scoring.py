"""TFX's BulkInferrer for scoring: the serving signature on every scoring example, as PredictionLogs.

The component is TFX's `BulkInferrer` (Beam: DirectRunner here, Dataflow with the same runner
options) with one change to its executor: the inference batches have bounds. Beam's adaptive
batching otherwise grows batches until one takes about a second, up to 10,000 examples, and the
serving signature's memory grows with the batch (RQ-Reg's tree decoding holds every code path of
every example). The bounds go into the InferenceSpecType's `batch_parameters`, which tfx_bsl 1.16
drops on the way to Beam (its `_ModelHandlerWrapper` does not pass on the wrapped handler's
`batch_elements_kwargs`): while the executor builds its Beam pipeline, the wrapper forwards them.

The signature is `score_packed` when the model has it (`scoring_signature`): serialized raw
tf.Examples in (input `examples`), one float32 tensor `scores` [B, 4 + L] out (`models/serving.py`).
tfx_bsl turns every output of every example into a TensorProto in Python, so this one output costs a
fifth of `serving_default`'s five (`prediction`, `median`, `lower`, `upper`, RQ-Reg's `codes`):
measured, 7.2 of 18.4 CPU seconds per 20,000 examples went to that conversion. Models exported
before `score_packed` existed are scored with `serving_default`.

Its output is the `inference_result`: one PredictionLog per example, holding the example and the
signature's outputs (`components/predictions_writer.py` reads them). BulkInferrer can instead
append the outputs to the examples (`output_example_spec`), but that conversion, one example at a
time in Python, cost about as much as the inference itself (measured: 13 s of 60 s for 20,000
examples), and reading the logs in the writer costs a fifth of it.
"""

import contextlib
from typing import Sequence

from tfx import v1 as tfx
from tfx.components.bulk_inferrer import executor as bulk_inferrer_executor
from tfx.dsl.components.base import executor_spec
from tfx.proto import bulk_inferrer_pb2

from components.scoring_example_gen import SCORE_SPLIT
from schemas import features

SIGNATURE = "serving_default"
PACKED_SIGNATURE = features.SERVING_PACKED_SIGNATURE
INPUT = "examples"  # the serving signature's input: serialized raw tf.Examples
MIN_BATCH = 256
MAX_BATCH = 1024  # examples per call of the serving signature: bounds its memory


@contextlib.contextmanager
def forwarded_batch_parameters():
    """Makes tfx_bsl's model-handler wrapper pass on the wrapped handler's batch parameters (see above)."""
    from tfx_bsl.beam import run_inference

    wrapper = run_inference._ModelHandlerWrapper
    saved = wrapper.__dict__.get("batch_elements_kwargs")
    wrapper.batch_elements_kwargs = lambda self: self._model_handler.batch_elements_kwargs()
    try:
        yield
    finally:
        if saved is None:
            del wrapper.batch_elements_kwargs
        else:
            wrapper.batch_elements_kwargs = saved


def bounded(spec):
    """`spec` (an InferenceSpecType) with inference batches of MIN_BATCH..MAX_BATCH examples; returns it."""
    spec.batch_parameters.min_batch_size = MIN_BATCH
    spec.batch_parameters.max_batch_size = MAX_BATCH
    return spec


class BoundedBatchExecutor(bulk_inferrer_executor.Executor):
    """BulkInferrer's executor with inference batches of MIN_BATCH..MAX_BATCH examples."""

    def _get_inference_spec(self, model_path, exec_properties):
        return bounded(super()._get_inference_spec(model_path, exec_properties))

    def Do(self, input_dict, output_dict, exec_properties):
        with forwarded_batch_parameters():
            return super().Do(input_dict, output_dict, exec_properties)


class BoundedBulkInferrer(tfx.components.BulkInferrer):
    """TFX's BulkInferrer component running `BoundedBatchExecutor`."""

    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(BoundedBatchExecutor)


def scoring_inferrer(examples, model, signature: str = SIGNATURE) -> BoundedBulkInferrer:
    """The BulkInferrer node: the 'score' split of `examples` through `model`'s `signature`.

    Args:
      examples: channel of the scoring Examples (ScoringExampleGen).
      model: channel of the Model to score with (its Format-Serving SavedModel).
      signature: the signature to score with (`scoring_signature` of the model).
    """
    return BoundedBulkInferrer(
        examples=examples,
        model=model,
        data_spec=bulk_inferrer_pb2.DataSpec(example_splits=[SCORE_SPLIT]),
        model_spec=bulk_inferrer_pb2.ModelSpec(model_signature_name=[signature])).with_id("BulkInferrer")


def _signature_defs(saved_model_dir: str):
    """The SavedModel's SignatureDefs by name, read from saved_model.pb without loading the model."""
    from tensorflow.python.saved_model import loader_impl

    return loader_impl.parse_saved_model(saved_model_dir).meta_graphs[0].signature_def


def signature_outputs(saved_model_dir: str) -> Sequence[str]:
    """The output keys of the SavedModel's serving signature, read from saved_model.pb without loading it."""
    signatures = _signature_defs(saved_model_dir)
    if SIGNATURE not in signatures:
        raise ValueError(f"model {saved_model_dir!r} has no {SIGNATURE!r} signature (it has {sorted(signatures)})")
    return sorted(signatures[SIGNATURE].outputs)


def scoring_signature(saved_model_dir: str) -> str:
    """The signature BulkInferrer scores with: `score_packed` if the model has it, else `serving_default`."""
    return PACKED_SIGNATURE if PACKED_SIGNATURE in _signature_defs(saved_model_dir) else SIGNATURE
