"""Per-dataset vs pooled: the comparison table from synthetic rows (no model runs)."""

from __future__ import annotations

import pandas as pd
import pytest

from medsam.finetune.per_dataset import compare


def rows(model: str, dataset: str, dice: list[float]) -> pd.DataFrame:
    return pd.DataFrame({"model": model, "strategy": "box", "dataset": dataset, "modality": "ct", "object": "o",
                         "image": [f"{dataset}/{i}.png" for i in range(len(dice))],
                         "mask": [f"{dataset}/{i}_m.png" for i in range(len(dice))], "seed": 0, "dice": dice})


def test_compare_pairs_per_dataset_with_pooled_and_zero_shot() -> None:
    shared = pd.concat([rows("litemedsam", "a", [0.1, 0.2, 0.3]), rows("litemedsam_ft", "a", [0.5, 0.6, 0.7]),
                        rows("litemedsam", "b", [0.9, 0.9, 0.9]), rows("litemedsam_ft", "b", [0.9, 0.9, 0.9])])
    own = rows("litemedsam_ft_a", "a", [0.6, 0.4, 0.9]).assign(train_pairs=7, steps=300, train_seconds=12.5)
    table = compare(own, shared)
    assert len(table) == 1  # dataset b has no per-dataset rows
    row = table.iloc[0]
    assert (row["dataset"], row["strategy"], row["n"]) == ("a", "box", 3)
    assert row["dice_litemedsam"] == pytest.approx(0.2) and row["dice_litemedsam_ft"] == pytest.approx(0.6)
    assert row["dice_per_dataset"] == pytest.approx(1.9 / 3) and row["mean_diff"] == pytest.approx(0.1 / 3)
    assert (row["better"], row["worse"]) == (2, 1) and 0 < row["p_value"] <= 1
    assert (row["train_pairs"], row["steps"], row["train_seconds"]) == (7, 300, 12.5)
