"""The model kinds the pipeline can train, by name; each builds from (Trainer config, TrainContext)."""

from typing import Callable, Dict, Mapping

from models import base, baselines, d2q, gbdt, gr, rqreg

Builder = Callable[[Mapping, base.TrainContext], base.ValueModel]

BUILDERS: Dict[str, Builder] = {
    "rqreg": rqreg.RQRegModel.from_config_and_context,
    "ziln": baselines.ZILNModel.from_config_and_context,
    "mse": baselines.MSEModel.from_config_and_context,
    "logmse": baselines.LogMSEModel.from_config_and_context,
    "twostage": baselines.TwoStageModel.from_config_and_context,
    "gr": gr.GRModel.from_config_and_context,
    "d2q": d2q.D2QModel.from_config_and_context,
    "gbdt": gbdt.GBDTModel.from_config_and_context,
}
KINDS = tuple(BUILDERS)


def build(kind: str, config: Mapping, context: base.TrainContext) -> base.ValueModel:
    """Builds (uncompiled) the model of `kind`."""
    if kind not in BUILDERS:
        raise ValueError(f"model.kind: {kind!r} is not one of {KINDS}")
    return BUILDERS[kind](config, context)
