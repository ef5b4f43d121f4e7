"""What `rqvalue bench` runs: data sets, budgets, and the rows of its tables (kinds, ablations, variants)."""

import dataclasses
from typing import Any, Dict, List, Mapping, Optional, Tuple

import yaml

DATASETS = ("cdnow", "cdnow_snapshots", "synthetic_ltv", "watch_time")


VALIDATION_FRACTION = 0.1


# Eval rows scored with every numeric feature far out of range (only the categorical features differ).
OOD_ROWS = 256


# Kinds that only make sense on some data sets (D2Q needs a video duration).
ONLY_ON = {"d2q": ("watch_time",), "bgnbd_gamma_gamma": ("cdnow_snapshots",)}


# Feature that D2Q groups by, per data set (ModelConfig.duration_feature).
DURATION_FEATURE = {"watch_time": "video_duration"}


# RQ-Reg ablations: row id -> (row label, ModelConfig changes). "one level" also slices the codebook.
ONE_LEVEL = "rqreg_one_level"


ABLATIONS = {
    "rqreg_no_rnc": ("rqreg (no RnC)", {"rnc_weight": 0.0}),
    "rqreg_no_ss": ("rqreg (no scheduled sampling)", {"sampling_probability": 0.0}),
    "rqreg_reg": ("rqreg (with regression head)", {"regression_weight": 1.0}),
    ONE_LEVEL: ("rqreg (one level)", {}),
}


BASE_KIND = "rqreg"


# Peers trained outside the pipeline's model registry (bench only; `rqvalue.bench.lightgbm_peers`,
# `rqvalue.bench.bgnbd_peer`): row id (= kind) -> row label.
PEERS = {"lightgbm_tweedie": "LightGBM Tweedie", "lightgbm_two_stage": "LightGBM two-stage",
         "bgnbd_gamma_gamma": "BG/NBD + Gamma-Gamma"}


# ModelConfig fields that Transform uses (models.preprocessing.transform_config): a row that changes one
# gets its own Transform of the data set (`rqvalue.bench.data.reanalyze`).
TRANSFORM_SETTINGS = ("label_transform", "value_buckets", "codebook_sizes", "first_level_median",
                      "codebook_resolution", "numeric_encoding", "numeric_bins")


@dataclasses.dataclass(frozen=True)
class Budget:
    """Data sizes and training budgets of one bench run."""

    rows: Mapping[str, Optional[int]]  # data set -> rows for `prepare` (None: the data set's default)
    max_steps: int  # step budget per training run
    eval_every: int  # steps between validation passes (one Keras "epoch")
    patience: int  # validation passes without improvement before stopping
    batch_size: int
    eval_rows: Optional[int]  # cap on eval examples scored (None: the whole eval split)
    serving_batch: int  # examples per timed serving call
    serving_calls: int  # timed serving calls after one warm-up call
    serving_seeds: int  # serving is timed on the first `serving_seeds` seeds of each row (it does not depend on the seed)
    decodings: bool = True  # score every decoding rule on the default RQ-Reg (and GR) runs
    serving_memory: bool = True  # measure serving_default's peak memory (fresh process) where serving is timed
    serving_memory_rows: Optional[Tuple[str, ...]] = None  # only these row ids (None: every row)

    def measures_memory(self, row_id: str) -> bool:
        """Whether the serving memory of `row_id` is measured (where its serving is timed)."""
        return self.serving_memory and (self.serving_memory_rows is None or row_id in self.serving_memory_rows)


# Defaults: cdnow and cdnow_snapshots use every customer (None: all 23,570; cdnow_snapshots scores each
# at four cut-offs, 94,280 rows); synthetic_ltv and watch_time, off the default data sets, keep a sample.
# Training cost does not grow with the rows (a step budget); ingestion, Transform and scoring the eval
# split (RQ-Reg's tree-enumerating prediction, ~2 s per 1,000 examples) do.
CDNOW_CUSTOMERS = 23_570
DEFAULT_ROWS = {"cdnow": None, "cdnow_snapshots": None, "synthetic_ltv": 10_000, "watch_time": 12_000}

# What the default `rqvalue bench` runs, sized to stay under 45 min on 2 CPU cores: the two LTV data
# sets with real customers at full size, the pipeline's kinds that apply to LTV and the bench-only
# peers, 2 seeds (the paired bootstrap pools them), no per-decoding tables and the serving memory of
# RQ-Reg and MSE only (the cost target compares those two). Ablations, synthetic_ltv, watch_time and
# the decoding tables are opt-in (--models, --datasets, --decodings).
DEFAULT_DATASETS = ("cdnow_snapshots", "cdnow")
DEFAULT_MODELS = ("rqreg", "ziln", "mse", "twostage", "gbdt", "lightgbm_tweedie", "lightgbm_two_stage",
                  "bgnbd_gamma_gamma")
DEFAULT_SEEDS = 2
DEFAULT_MEMORY_ROWS = ("rqreg", "mse")

DEFAULT_BUDGET = Budget(rows=DEFAULT_ROWS, max_steps=400, eval_every=40, patience=3, batch_size=256,
                        eval_rows=None, serving_batch=1000, serving_calls=3, serving_seeds=1, decodings=False,
                        serving_memory_rows=DEFAULT_MEMORY_ROWS)

TINY_BUDGET = Budget(rows={"cdnow": 800, "cdnow_snapshots": 200, "synthetic_ltv": 800, "watch_time": 1500}, max_steps=20,
                     eval_every=10, patience=1, batch_size=64, eval_rows=None, serving_batch=100,
                     serving_calls=1, serving_seeds=1)


def budget_for(scale: float = 1.0, tiny: bool = False) -> Budget:
    """The default (or tiny) budget with data sizes and step budgets multiplied by `scale`."""
    base = TINY_BUDGET if tiny else DEFAULT_BUDGET
    if scale == 1.0:
        return base
    rows = {}
    for name, n in base.rows.items():
        full = CDNOW_CUSTOMERS if name in ("cdnow", "cdnow_snapshots") else None
        n = full if n is None else n
        scaled = None if n is None else max(200, int(round(n * scale)))
        rows[name] = None if full is not None and scaled >= full else scaled  # None: every customer
    return dataclasses.replace(base, rows=rows, max_steps=max(base.eval_every, int(round(base.max_steps * scale))))


@dataclasses.dataclass(frozen=True)
class Row:
    """One table row: a registered kind, an RQ-Reg ablation or a `--variant`."""

    id: str
    label: str
    kind: str
    changes: Mapping[str, Any]

    @property
    def transform_changes(self) -> Dict[str, Any]:
        """The row's changes to Transform settings (empty: the data set's default Transform serves it)."""
        return {key: value for key, value in self.changes.items() if key in TRANSFORM_SETTINGS}


def available_rows() -> Tuple[List[Row], List[str]]:
    """Every registered kind, the RQ-Reg ablations, then the bench-only peers; notes on kinds that cannot be built."""
    notes = []
    try:
        from models import registry
        kinds = list(registry.KINDS)
    except Exception as e:  # a kind being added may break the registry's imports
        from pipeline import config as config_lib
        kinds = [k for k in config_lib.MODEL_KINDS]
        notes.append(f"models.registry did not import ({type(e).__name__}: {e}); fell back to "
                     f"pipeline.config.MODEL_KINDS")
    rows = [Row(kind, kind, kind, {}) for kind in kinds]
    if BASE_KIND in kinds:
        rows += [Row(row_id, label, BASE_KIND, changes) for row_id, (label, changes) in ABLATIONS.items()]
    rows += [Row(kind, label, kind, {}) for kind, label in PEERS.items()]
    return rows, notes


def parse_variant(text: str) -> Row:
    """A row from `--variant "ID: key=value key=value ..."`: ModelConfig changes (YAML values), kind
    `rqreg` unless `kind=` says otherwise. An rqreg variant is never counted as a baseline. Transform
    settings (TRANSFORM_SETTINGS, e.g. codebook_sizes) are allowed: such a row is trained on its own
    Transform of the data set."""
    from pipeline import config as config_lib

    row_id, _, spec = text.partition(":")
    row_id, items = row_id.strip(), spec.split()
    if not row_id or not items or any("=" not in item for item in items):
        raise ValueError(f"--variant {text!r}: expected 'ID: key=value [key=value ...]', e.g. "
                         "'lr_low: learning_rate=0.001'")
    fields = {f.name for f in dataclasses.fields(config_lib.ModelConfig)}
    changes: Dict[str, Any] = {}
    for item in items:
        key, _, value = item.partition("=")
        if key not in fields:
            raise ValueError(f"--variant {row_id}: {key!r} is not a model setting (known: {', '.join(sorted(fields))})")
        parsed = yaml.safe_load(value)
        changes[key] = tuple(parsed) if isinstance(parsed, list) else parsed
    kind = changes.pop("kind", BASE_KIND)
    config_lib.ModelConfig(kind=kind, **changes)  # raises ConfigError naming a bad value
    return Row(row_id, f"{row_id} ({' '.join(items)})", kind, changes)


def applies(row: Row, dataset: str) -> bool:
    return dataset in ONLY_ON.get(row.kind, DATASETS)
