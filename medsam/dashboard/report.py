"""The benchmark of one model in text, for notes and the terminal (``python -m medsam.benchmark --report``)."""

from __future__ import annotations

import pandas as pd

from .data import DESCRIPTORS, pair_means, strategy_order
from .stats import rho_text, spearman


def report(df: pd.DataFrame, model: str, top: int = 5) -> str:
    """The benchmark in text (for notes and the terminal): mean DICE per strategy with both mask
    selections, the ``top`` best and worst targets (dataset x object) for ``box``, and the Spearman
    correlation of per-pair ``box`` DICE with each target descriptor."""
    rows = df[df["model"] == model]
    if rows.empty:
        return f"No rows for {model}."
    pairs = pair_means(rows, ("dice", "dice_oracle"))
    means = pairs.groupby("strategy", observed=True).agg(
        pairs=("mask", "size"), dice=("dice", "mean"), dice_oracle=("dice_oracle", "mean"))
    means = means.reindex(strategy_order(means.index)).round(3)
    lines = [f"{model}: {rows['mask'].nunique()} pairs, {len(rows)} rows", "",
             "| strategy | pairs | DICE (top-scored mask) | DICE (oracle mask) |", "|---|---|---|---|"]
    lines += [f"| {s} | {int(r.pairs)} | {r.dice:.3f} | {r.dice_oracle:.3f} |" for s, r in means.iterrows()]
    box = pairs[pairs["strategy"] == "box"]
    if not box.empty:
        targets = (box.groupby(["dataset", "object"], observed=True)["dice"].agg(["mean", "size"])
                   .sort_values("mean", ascending=False).round(3))
        for title, part in (("best", targets.head(top)), ("worst", targets.tail(top).iloc[::-1])):
            lines += ["", f"{top} {title} box targets (dataset / object: mean DICE, pairs): " +
                      "; ".join(f"{d} / {o}: {r['mean']:.3f} ({int(r['size'])})" for (d, o), r in part.iterrows())]
        lines += ["", "Spearman correlation of box DICE with:"]
        lines += [f"- {title}: {rho_text(*spearman(box[col], box['dice']))}"
                  for col, title, _ in DESCRIPTORS if col in box.columns]
    return "\n".join(lines)
