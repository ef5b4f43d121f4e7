"""Baseline for the model gate: the latest blessed model other than the candidate itself.

TFX's LatestBlessedModelStrategy returns the latest blessed model, which on a re-run with unchanged
inputs is the (cached) candidate itself: the Evaluator would then compare a model with itself and
re-run, and the Pusher would push the same model again. Excluding the candidate keeps the baseline
meaningful and lets an unchanged re-run come entirely from the cache.
"""

from typing import Dict, List, Optional

import ml_metadata as mlmd
from tfx import types
from tfx import v1 as tfx
from tfx.components.evaluator import constants as evaluator_constants

MODEL_KEY = "model"
BLESSING_KEY = "model_blessing"
CANDIDATE_KEY = "candidate"


def latest_blessed_other(models: List[types.Artifact], blessings: List[types.Artifact],
                         candidates: List[types.Artifact]) -> Dict[str, List[types.Artifact]]:
    """The newest blessed model that is not a candidate, with its blessing (empty lists if none)."""
    excluded = {c.id for c in candidates}
    blessed = {b.get_int_custom_property(evaluator_constants.ARTIFACT_PROPERTY_CURRENT_MODEL_ID_KEY): b
               for b in blessings
               if b.get_int_custom_property(evaluator_constants.ARTIFACT_PROPERTY_BLESSED_KEY) == 1}
    for model in sorted(models, key=lambda a: a.id, reverse=True):
        if model.id in blessed and model.id not in excluded:
            return {MODEL_KEY: [model], BLESSING_KEY: [blessed[model.id]]}
    return {MODEL_KEY: [], BLESSING_KEY: []}


class LatestBlessedOtherModelStrategy(tfx.dsl.experimental.ResolverStrategy):
    """Resolver strategy over `model` (all models), `model_blessing` (all blessings) and `candidate`."""

    def resolve_artifacts(self, store: mlmd.MetadataStore, input_dict: Dict[str, List[types.Artifact]]
                          ) -> Optional[Dict[str, List[types.Artifact]]]:
        del store
        result = latest_blessed_other(input_dict.get(MODEL_KEY, []), input_dict.get(BLESSING_KEY, []),
                                      input_dict.get(CANDIDATE_KEY, []))
        result[CANDIDATE_KEY] = list(input_dict.get(CANDIDATE_KEY, []))
        return result


def baseline_resolver(candidate: types.BaseChannel) -> tfx.dsl.Resolver:
    """The resolver node; its `model` output is the Evaluator's baseline."""
    return tfx.dsl.Resolver(
        strategy_class=LatestBlessedOtherModelStrategy,
        model=tfx.dsl.Channel(type=tfx.types.standard_artifacts.Model),
        model_blessing=tfx.dsl.Channel(type=tfx.types.standard_artifacts.ModelBlessing),
        candidate=candidate,
    ).with_id("latest_blessed_model_resolver")
