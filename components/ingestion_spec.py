"""What the training ingestion reads (`IngestionSpec`) and the error it stops with (`IngestionError`)."""

import dataclasses
import json
from typing import Sequence

NOTHING_KEPT = "nothing was trained or pushed"


class IngestionError(ValueError):
    """The spine or the feature store cannot produce examples; the message names the field."""


@dataclasses.dataclass(frozen=True)
class IngestionSpec:
    """What to retrieve: mirrors `pipeline.config.DataConfig` (kept plain so it serialises to JSON)."""

    feast_repo: str
    spine: str
    entity_columns: Sequence[str]
    feature_refs: Sequence[str]
    numeric_features: Sequence[str]
    categorical_features: Sequence[str]
    timestamp_column: str
    label: str
    eval_fraction: float
    validation_fraction: float = 0.0
    span_days: int = 0
    span_origin: str = "1970-01-05"
    max_missing_feature_share: float = 0.0
    chunk_rows: int = 250_000

    def __post_init__(self):
        if self.chunk_rows < 1:
            raise IngestionError(f"data.chunk_rows: {self.chunk_rows} must be a positive number of rows")

    @classmethod
    def from_data_config(cls, data) -> "IngestionSpec":
        return cls(**{f.name: getattr(data, f.name) for f in dataclasses.fields(cls)})

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "IngestionSpec":
        return cls(**json.loads(text))
