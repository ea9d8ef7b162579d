"""Evaluation metrics: top-k accuracy and the RMS calibration error."""

from __future__ import annotations

import numpy as np
import torch


def topk_correct(logits: torch.Tensor, labels: torch.Tensor, ks: tuple[int, ...] = (1, 5)):
    """Number of samples whose label is among the top-k logits, for each k (as floats);
    k is capped at the number of classes."""
    kmax = min(max(ks), logits.shape[1])
    top = logits.topk(kmax, dim=1).indices
    hit = top.eq(labels.view(-1, 1))
    return [float(hit[:, : min(k, kmax)].any(dim=1).sum()) for k in ks]


def calibration_rms(confidence: np.ndarray, correct: np.ndarray, bin_size: int = 100) -> float:
    """RMS calibration error with adaptive bins (Hendrycks et al.'s ``calib_err``, p=2).

    Samples are sorted by ``confidence`` (the top softmax probability) and cut into
    consecutive bins of ``bin_size``; the last bin also takes the remainder (a single bin
    when there are fewer than ``bin_size`` samples). Returns
    ``sqrt(sum_b n_b / N * (mean conf_b - accuracy_b)^2)``, in [0, 1].
    """
    conf = np.asarray(confidence, dtype=np.float64).ravel()
    hit = np.asarray(correct, dtype=np.float64).ravel()
    if conf.shape != hit.shape or conf.size == 0:
        raise ValueError(f"need equal, non-empty arrays, got {conf.shape} and {hit.shape}")
    if bin_size < 1:
        raise ValueError(f"bin_size must be >= 1, got {bin_size}")
    order = np.argsort(conf, kind="stable")
    conf, hit = conf[order], hit[order]
    n_bins = max(1, conf.size // bin_size)
    edges = [b * bin_size for b in range(n_bins)] + [conf.size]
    total = 0.0
    for lo, hi in zip(edges[:-1], edges[1:]):
        gap = conf[lo:hi].mean() - hit[lo:hi].mean()
        total += (hi - lo) / conf.size * gap * gap
    return float(np.sqrt(total))
