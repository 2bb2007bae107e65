"""Point and interval error measures of a forecast against actual values.

MAE, RMSE; sMAPE = 100 % / n * sum(2 |y - f| / (|y| + |f|)) (a term with y = f = 0 counts 0),
as in Lago et al. (2021); rMAE = MAE / MAE of the seasonal naive forecast on the same hours
(below 1: better than the naive); coverage = share of actuals inside [P10, P90] (0.8 when the
quantiles are calibrated).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def mae(actual: np.ndarray, pred: np.ndarray) -> float:
    return float(np.mean(np.abs(np.asarray(actual) - np.asarray(pred))))


def rmse(actual: np.ndarray, pred: np.ndarray) -> float:
    return float(np.sqrt(np.mean((np.asarray(actual) - np.asarray(pred)) ** 2)))


def smape(actual: np.ndarray, pred: np.ndarray) -> float:
    """Symmetric MAPE in percent (0 .. 200)."""
    a, p = np.asarray(actual, dtype=np.float64), np.asarray(pred, dtype=np.float64)
    den = np.abs(a) + np.abs(p)
    terms = np.divide(2.0 * np.abs(a - p), den, out=np.zeros_like(den), where=den > 0)
    return float(100.0 * np.mean(terms))


def coverage(actual: np.ndarray, p10: np.ndarray, p90: np.ndarray) -> float:
    a = np.asarray(actual)
    return float(np.mean((a >= np.asarray(p10)) & (a <= np.asarray(p90))))


@dataclass(frozen=True)
class Scores:
    """Errors of one model over `n` hours; `rmae` relative to the naive on the same hours."""

    n: int
    mae: float
    rmse: float
    smape: float
    rmae: float
    coverage: float | None = None


def score(actual: np.ndarray, pred: np.ndarray, naive: np.ndarray,
          p10: np.ndarray | None = None, p90: np.ndarray | None = None) -> Scores:
    """Scores over the hours where actual, pred and naive are all finite."""
    a, p, b = (np.asarray(x, dtype=np.float64) for x in (actual, pred, naive))
    ok = np.isfinite(a) & np.isfinite(p) & np.isfinite(b)
    if not ok.any():
        raise ValueError("no hour with an actual value and both forecasts")
    naive_mae = mae(a[ok], b[ok])
    model_mae = mae(a[ok], p[ok])
    cov = None
    if p10 is not None and p90 is not None:
        cov = coverage(a[ok], np.asarray(p10)[ok], np.asarray(p90)[ok])
    return Scores(n=int(ok.sum()), mae=model_mae, rmse=rmse(a[ok], p[ok]),
                  smape=smape(a[ok], p[ok]),
                  rmae=model_mae / naive_mae if naive_mae > 0 else float("nan"), coverage=cov)
