"""The ensemble measure's table, on seeded numpy predictions (no training, seconds)."""

import numpy as np

from rqvalue.bench import ensemble


def test_averaging_noisy_copies_ranks_better_and_the_interval_says_so():
    rng = np.random.default_rng(0)
    n = 3000
    labels = np.where(rng.random(n) < 0.5, 0.0, rng.lognormal(3, 1, n))
    ours = [labels + rng.normal(0, 40, n) for _ in range(4)]  # four independent noisy seeds
    theirs = [labels + rng.normal(0, 40, n) for _ in range(2)]
    table = {row["model"]: row for row in ensemble.ensemble_table(labels, None, ours, theirs)}
    assert list(table)[0] == "LightGBM Tweedie (seeds pooled)" and "normalized_gini_vs_lightgbm" not in table[
        "LightGBM Tweedie (seeds pooled)"]
    single = np.mean([table[f"RQ-Reg seed {s}"]["normalized_gini"] for s in range(4)])
    four = table["RQ-Reg ensemble of 4 seeds"]
    assert four["normalized_gini"] > table["RQ-Reg ensemble of 2 seeds"]["normalized_gini"] > single
    assert four["normalized_gini_vs_lightgbm"]["low"] > 0  # four averaged copies beat one noisy peer
    interval = table["RQ-Reg seed 0"]["normalized_gini_vs_lightgbm"]
    assert interval["low"] < 0 < interval["high"]  # one copy against another: no difference
    markdown = ensemble.render({"dataset": "toy", "counts": {"eval": n}, "train_s": {"rqreg": [1.0]},
                                "table": list(table.values())}, "cmd")
    assert "| RQ-Reg ensemble of 4 seeds |" in markdown and "above 0" in markdown
