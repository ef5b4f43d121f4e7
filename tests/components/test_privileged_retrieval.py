"""The forward retrieval: privileged features over the window after each prediction time, training rows only."""

import dataclasses

import numpy as np
import pandas as pd
import pytest

from components import feature_store_example_gen as ingest
from components import privileged_retrieval as forward
from pipeline import datasets
from pipeline.datasets import cdnow
from schemas import features
from schemas.feature_repo import definitions

VIEW = definitions.CDNOW_SNAPSHOTS_VIEW
WINDOW = 30
SPEC = forward.PrivilegedSpec(names=("spend_next", "spend_at_end", "cds_next"),
                              refs=(f"{VIEW}:total_spend", f"{VIEW}:total_spend", f"{VIEW}:total_cds"),
                              reads=("change", "value", "change"), window_days=WINDOW)


@pytest.fixture(scope="module")
def snapshots(tmp_path_factory):
    """60 CDNOW customers at four cut-offs, retrieved point in time."""
    data = datasets.prepare("cdnow_snapshots", str(tmp_path_factory.mktemp("snapshots")), rows=60)
    spec = ingest.IngestionSpec.from_data_config(data)
    return spec, ingest.retrieve(spec)


def _spent(transactions, customer, after, until):
    rows = transactions[(transactions.customer_id == customer) & (transactions.date > after)
                        & (transactions.date <= until)]
    return rows.dollar_value.sum(), rows.number_of_cds.sum()


def test_forward_values_are_what_happened_in_the_window_after_the_prediction_time(snapshots):
    spec, frame = snapshots
    values = forward.forward_values(frame, spec.feast_repo, spec.timestamp_column, SPEC)
    transactions = cdnow.load_transactions()
    assert (values.spend_next > 0).sum() >= 5, "some customers must buy in the window for this test to bite"
    for i in frame.sample(80, random_state=0).index:
        day = frame.at[i, spec.timestamp_column].tz_localize(None).normalize()
        end = day + pd.Timedelta(days=WINDOW)
        spend, cds = _spent(transactions, frame.at[i, "customer_id"], day, end)
        assert values.at[i, "spend_next"] == pytest.approx(spend, abs=0.005)
        assert values.at[i, "cds_next"] == pytest.approx(cds)
        total, _ = _spent(transactions, frame.at[i, "customer_id"], pd.Timestamp("1900-01-01"), end)
        assert values.at[i, "spend_at_end"] == pytest.approx(total, abs=0.005)
    # The serving feature is the total as of t; the privileged change is what came after it.
    np.testing.assert_allclose(values.spend_at_end - values.spend_next, frame.total_spend, atol=0.005)


def test_only_training_rows_get_privileged_features_and_nothing_else_changes(snapshots):
    spec, frame = snapshots
    extended, write_spec, lacking = ingest.with_privileged(frame, spec, SPEC)
    splits = ingest.entity_keys_of(frame, spec).map(
        lambda key: ingest.split_of(key, spec.eval_fraction, spec.validation_fraction))
    assert set(splits) == {"train", "valid", "eval"}
    evaluated = (splits == "eval").to_numpy()
    assert extended.loc[evaluated, list(SPEC.names)].isna().all().all()
    assert extended.loc[~evaluated, list(SPEC.names)].notna().all().all() and lacking == 0
    pd.testing.assert_frame_equal(extended[frame.columns], frame)
    assert write_spec.numeric_features == (*spec.numeric_features, *SPEC.names)
    encoded = ingest.to_examples(extended, write_spec)
    for example, is_eval in zip(encoded, evaluated):
        assert any(name in example.features.feature for name in SPEC.names) != is_eval


def test_a_privileged_feature_equal_to_the_label_stops_ingestion(snapshots):
    spec, frame = snapshots
    values = forward.forward_values(frame, spec.feast_repo, spec.timestamp_column, SPEC)
    leaking = frame.assign(**{spec.label: values.spend_next})
    with pytest.raises(ingest.IngestionError, match="'spend_next' equals the label 'label' on 100.0%"):
        ingest.with_privileged(leaking, spec, SPEC)


def test_label_check_on_hand_written_rows():
    labels = pd.Series([0.0, 5.0, 7.0, np.nan])
    # Equal wherever both are present, some non-zero: the label.
    with pytest.raises(forward.PrivilegedRetrievalError, match="'p'"):
        forward.check_not_label(pd.DataFrame({"p": [0.0, 5.0, 7.0, 1.0]}), labels, "label")
    # Equal only on the zero labels, or only on one row of two: a feature.
    forward.check_not_label(pd.DataFrame({"p": [0.0, 4.0, 7.5, np.nan]}), labels, "label")
    forward.check_not_label(pd.DataFrame({"p": [0.0, np.nan, np.nan, 2.0]}), labels, "label")


def test_unknown_feature_view_is_named(snapshots):
    spec, frame = snapshots
    wrong = dataclasses.replace(SPEC, refs=("nope:total_spend",) * 3)
    with pytest.raises(ingest.IngestionError, match="feature view 'nope'.*nothing was trained"):
        ingest.with_privileged(frame, spec, wrong)


def test_spec_refuses_the_eval_split_and_round_trips():
    with pytest.raises(ValueError, match="eval"):
        dataclasses.replace(SPEC, splits=("train", "eval"))
    with pytest.raises(ValueError, match="window_days"):
        dataclasses.replace(SPEC, window_days=0)
    assert forward.PrivilegedSpec.from_json(SPEC.to_json()) == SPEC


def test_spec_from_config():
    from pipeline import config

    section = config.DistillationConfig(privileged_features=({"name": "a", "ref": "v:x"},), window_days=14)
    spec = forward.PrivilegedSpec.from_config(section)
    assert (spec.names, spec.refs, spec.reads, spec.window_days) == (("a",), ("v:x",), ("change",), 14)
    assert features.LABEL_KEY not in spec.names
