"""Statistics of the dashboard: means with 95% CIs, Spearman and rank partial correlations, fits.

A 95% CI is mean +- 1.96 SE (``Z95``), 0 wide for a single value; correlations are computed over
the finite pairs of values only, NaN when too few remain.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats

Z95 = 1.959963984540054


def spearman(x: Sequence[float], y: Sequence[float]) -> tuple[float, float, int]:
    """Spearman rho, two-sided p-value and n over the finite (x, y) pairs (NaN when n < 3)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    ok = np.isfinite(x) & np.isfinite(y)
    if ok.sum() < 3:
        return np.nan, np.nan, int(ok.sum())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # constant input: NaN, shown as such
        res = stats.spearmanr(x[ok], y[ok])
    return float(res.statistic), float(res.pvalue), int(ok.sum())


def partial_spearman(x: Sequence[float], y: Sequence[float], z: Sequence[float]) -> tuple[float, float, int]:
    """Rank partial correlation of x and y controlling for z: the ranks of x and y are each
    residualised on the ranks of z (least squares), then correlated; p from t with n - 3 df."""
    x, y, z = (np.asarray(v, float) for v in (x, y, z))
    ok = np.isfinite(x) & np.isfinite(y) & np.isfinite(z)
    n = int(ok.sum())
    if n < 4:
        return np.nan, np.nan, n
    rx, ry, rz = (stats.rankdata(v[ok]) for v in (x, y, z))
    design = np.column_stack([np.ones(n), rz])
    res_x = rx - design @ np.linalg.lstsq(design, rx, rcond=None)[0]
    res_y = ry - design @ np.linalg.lstsq(design, ry, rcond=None)[0]
    denom = np.sqrt((res_x @ res_x) * (res_y @ res_y))
    if denom == 0:
        return np.nan, np.nan, n
    r = float(np.clip(res_x @ res_y / denom, -1, 1))
    t = r * np.sqrt((n - 3) / max(1 - r * r, 1e-300))
    return r, float(2 * stats.t.sf(abs(t), n - 3)), n


def rho_text(rho: float, p: float, n: int) -> str:
    """How a correlation appears in titles, e.g. 'ρ = 0.412 (p = 0.0031, n = 57)'."""
    return f"ρ = {rho:.3f} (p = {p:.2g}, n = {n})" if np.isfinite(rho) else f"ρ undefined (n = {n})"


def summary(df: pd.DataFrame, by: list[str], value: str) -> pd.DataFrame:
    """Per group: mean, 95% CI half-width (1.96 SE; 0 for one value) and count of ``value``."""
    out = df.groupby(by, sort=False, observed=True)[value].agg(["mean", "std", "count"]).reset_index()
    out = out[out["count"] > 0]
    out["ci"] = Z95 * out["std"].fillna(0) / np.sqrt(out["count"])
    return out


def linear_fit(x: np.ndarray, y: np.ndarray, logx: bool) -> tuple[np.ndarray, np.ndarray] | None:
    ok = np.isfinite(x) & np.isfinite(y) & ((x > 0) if logx else True)
    if ok.sum() < 2 or np.ptp(x[ok]) == 0:
        return None
    u = np.log10(x[ok]) if logx else x[ok]
    slope, intercept = np.polyfit(u, y[ok], 1)
    grid = np.linspace(u.min(), u.max(), 30)
    return (10 ** grid if logx else grid), intercept + slope * grid



def binned_means(x: np.ndarray, y: np.ndarray, bins: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Mean y in quantile bins of x (about equal counts; finite pairs only), at each bin's median x."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    ok = np.isfinite(x) & np.isfinite(y)
    if ok.sum() < 2 * bins:
        bins = max(1, int(ok.sum()) // 2)
    if not ok.any():
        return np.empty(0), np.empty(0)
    frame = pd.DataFrame({"x": x[ok], "y": y[ok]})
    frame["bin"] = pd.qcut(frame["x"], bins, labels=False, duplicates="drop")
    grouped = frame.groupby("bin")
    return grouped["x"].median().to_numpy(), grouped["y"].mean().to_numpy()
