"""The inspect view `predictions`: which model scored which as-of time, how many rows, where they went.

It reads the scoring store of the output folder (`<output-dir>/scoring/metadata.sqlite`, written by
`rqvalue predict`), one row per scoring run, oldest first.
"""

from typing import Optional

from pipeline import mlmd, mlmd_scoring
from rqvalue.inspect.sections import Section, cell, iso_time, relative_uri

HEADERS = ("as of", "model", "rows", "entities", "without features", "online", "scoring run", "written", "parquet")


def predictions_view(store: mlmd.RunHistory, run_ref: Optional[str]) -> tuple:
    """(data, sections) of every scoring of the output folder."""
    del run_ref
    records = mlmd_scoring.scorings(mlmd_scoring.scoring_metadata_path(store.output_dir))
    data = {"output_dir": store.output_dir,
            "scorings": [dict(r.properties, scoring_run=r.run, written=iso_time(r.written_ms)) for r in records]}
    section = Section(headers=list(HEADERS))
    for record in data["scorings"]:
        section.rows.append([cell(record.get("as_of")), cell(record.get("model_version")), cell(record.get("rows")),
                             cell(record.get("entities")), cell(record.get("entities_without_features")),
                             cell(record.get("online_rows")), cell(record["scoring_run"]), record["written"],
                             relative_uri(record.get("parquet") or "", store.output_dir)])
    latest = {}
    for record in data["scorings"]:
        latest[record.get("as_of")] = record
    replaced = len(data["scorings"]) - len(latest)
    if replaced:
        section.notes.append(f"({replaced} scoring(s) of an as-of time were replaced by a later scoring of the same "
                             "time: the Parquet partition holds the latest one only)")
    views = sorted({r.get("feature_view") for r in data["scorings"] if r.get("feature_view")})
    section.notes.append(f"feature view(s): {', '.join(views)}; entities without features are listed in each "
                         "scoring's entities_without_features_list (--json)")
    return data, [section]
