"""Losses: cross-entropy and the IPMix/AugMix Jensen-Shannon consistency loss
(docs/algorithm.md §1)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def jsd_consistency(logits_clean: torch.Tensor, logits_a: torch.Tensor, logits_b: torch.Tensor):
    """JSD(p_clean, p_a, p_b) = mean over the three views of KL(p_j ‖ M), batch-mean.

    ``M = clamp(mean of the three softmax distributions, 1e-7, 1)``, as in the authors'
    code. Logits ``[B, C]``; computed in float32 whatever their dtype. Returns a scalar.
    """
    probs = [F.softmax(x.float(), dim=1) for x in (logits_clean, logits_a, logits_b)]
    log_m = torch.clamp((probs[0] + probs[1] + probs[2]) / 3.0, 1e-7, 1.0).log()
    # F.kl_div(input=log M, target=p) = sum p (log p - log M) = KL(p ‖ M)
    kl = [F.kl_div(log_m, p, reduction="batchmean") for p in probs]
    return (kl[0] + kl[1] + kl[2]) / 3.0


def ipmix_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    *,
    views: int,
    jsd_lambda: float = 12.0,
    label_smoothing: float = 0.0,
) -> torch.Tensor:
    """The training loss of one batch.

    ``views == 1``: ``CE(logits, labels)``. ``views == 3``: ``logits`` are the clean, a and
    b views concatenated along the batch (``[3B, C]``, one forward pass) and the loss is
    ``CE(logits_clean, y) + jsd_lambda * JSD(p_clean, p_a, p_b)``.
    """
    if views == 1:
        return F.cross_entropy(logits.float(), labels, label_smoothing=label_smoothing)
    if views != 3:
        raise ValueError(f"views must be 1 or 3, got {views}")
    clean, a, b = torch.chunk(logits, 3, dim=0)
    ce = F.cross_entropy(clean.float(), labels, label_smoothing=label_smoothing)
    return ce + jsd_lambda * jsd_consistency(clean, a, b)
