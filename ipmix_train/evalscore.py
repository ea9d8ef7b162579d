"""Scores of :mod:`ipmix_train.evaluate`: errors, calibration, the corruption summary and mCE.

Units: every score is in percent (0-100) and its key says so (``top1_err_pct``,
``calib_rms_pct``, ``mce_pct``: the convention of the trainer's ``val_top1_pct``); counts
are images (``n``). :func:`upgrade_keys` renames the unit-less keys of older results files.

The mCE (Hendrycks & Dietterich, ICLR 2019): for each of the 15 ImageNet-C corruptions, the
model's top-1 error summed over the 5 severities divided by AlexNet's summed the same way
(``CE_c``, in %), averaged over the 15 (100 = AlexNet's robustness). It is defined for
ImageNet's 1000-class val set at 224 px with the released ImageNet-C files;
:func:`mce_caveats` lists every way a result departs from that.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import torch

from .corruptions import ALEXNET_ERR, CORRUPTIONS, SEVERITIES
from .metrics import calibration_rms

IMAGENET_CLASSES, IMAGENET_VAL_IMAGES, IMAGENET_SIZE = 1000, 50_000, 224
_WNID = re.compile(r"n\d{8}")
_OLD_KEYS = {  # unit-less keys of results written before the _pct names (values were %)
    "top1_err": "top1_err_pct",
    "top5_err": "top5_err_pct",
    "calib_rms": "calib_rms_pct",
    "corruption_err": "corruption_err_pct",
    "mean_corruption_err": "mean_corruption_err_pct",
    "corrupted_calib_rms": "corrupted_calib_rms_pct",
    "ce_alexnet": "ce_alexnet_pct",
    "mce": "mce_pct",
}


class Tally:
    """Per-image top-1 and top-5 hits and top-1 confidence of a set of ``n`` images, filled
    batch by batch at the images' indices (so the order batches arrive in does not matter)."""

    def __init__(self, n: int) -> None:
        self.conf = np.zeros(n, np.float64)
        self.hit1 = np.zeros(n, bool)
        self.hit5 = np.zeros(n, bool)
        self.seen = np.zeros(n, bool)

    def add(self, start: int, logits: torch.Tensor, labels: np.ndarray | torch.Tensor) -> None:
        """Record float logits ``[B, C]`` of images ``start .. start + B - 1``."""
        labels = torch.as_tensor(labels, dtype=torch.int64)
        logits = logits.float().cpu()
        if len(labels) and int(labels.max()) >= logits.shape[1]:
            raise ValueError(
                f"label {int(labels.max())} but the model has {logits.shape[1]} classes"
            )
        top = logits.topk(min(5, logits.shape[1]), dim=1).indices.eq(labels.view(-1, 1))
        p = logits.softmax(dim=1).max(dim=1)
        sl = slice(start, start + len(labels))
        self.conf[sl] = p.values.double().numpy()
        self.hit1[sl] = top[:, 0].numpy()
        self.hit5[sl] = top.any(dim=1).numpy()
        self.seen[sl] = True

    def scores(self) -> dict[str, float]:
        """top-1/top-5 error and RMS calibration error (adaptive bins of 100 samples sorted by
        confidence, :func:`ipmix_train.metrics.calibration_rms`), in %, and the image count."""
        if not self.seen.all():
            raise RuntimeError(f"{int((~self.seen).sum())} of {len(self.seen)} images not scored")
        n = len(self.seen)
        return {
            "top1_err_pct": 100 - 100 * float(self.hit1.sum()) / n,
            "top5_err_pct": 100 - 100 * float(self.hit5.sum()) / n,
            "calib_rms_pct": 100 * calibration_rms(self.conf, self.hit1),
            "n": n,
        }


def scores(logits: torch.Tensor, labels: np.ndarray | torch.Tensor) -> dict[str, float]:
    """:meth:`Tally.scores` of one batch of logits ``[N, C]``."""
    t = Tally(len(labels))
    t.add(0, logits, labels)
    return t.scores()


def missing_imagenet_c(errors: dict[str, dict[int, Any]]) -> dict[str, list[int]]:
    """``{corruption: [severities]}`` of the 15 x 5 ImageNet-C variants not in ``errors``."""
    out = {}
    for c in CORRUPTIONS:
        miss = [s for s in SEVERITIES if s not in errors.get(c, {})]
        if miss:
            out[c] = miss
    return out


def corruption_summary(errors: dict[str, dict[int, float]]) -> dict[str, Any]:
    """From top-1 errors (%) per corruption and severity: each corruption's mean error
    (``corruption_err_pct``), their mean (``mean_corruption_err_pct``, over everything
    given), and the AlexNet-normalised ``ce_alexnet_pct`` of each ImageNet-C corruption
    present at all 5 severities. ``mce_pct``: their mean, only when all 15 are; otherwise
    ``imagenet_c_missing`` lists what is missing and, when some corruptions are complete,
    ``mce_partial_pct`` is the mean over those (named in ``mce_partial_over``)."""
    if not errors:
        raise ValueError("no corruption errors to summarise")
    per = {c: float(np.mean(list(e.values()))) for c, e in errors.items()}
    out: dict[str, Any] = {
        "corruption_err_pct": per,
        "mean_corruption_err_pct": float(np.mean(list(per.values()))),
    }
    missing = missing_imagenet_c(errors)
    complete = [c for c in CORRUPTIONS if c in errors and c not in missing]
    # CE_c = sum_s E_{s,c} / sum_s E^AlexNet_{s,c}; ALEXNET_ERR holds AlexNet's mean over s
    ce = {c: float(np.mean([errors[c][s] for s in SEVERITIES])) / ALEXNET_ERR[c] for c in complete}
    if ce:
        out["ce_alexnet_pct"] = ce
    if not missing:
        out["mce_pct"] = float(np.mean(list(ce.values())))
        return out
    out["imagenet_c_missing"] = missing
    if ce:
        out["mce_partial_pct"] = float(np.mean(list(ce.values())))
        out["mce_partial_over"] = complete
    return out


def mce_caveats(
    *,
    num_classes: int,
    image_size: int,
    images: int,
    classes: list[str] | None,
    generated: bool,
    missing: dict[str, list[int]] | None = None,
) -> list[str]:
    """Each way an mCE of this setting is not comparable to published ImageNet-C mCEs (none:
    the released files on ImageNet's val set at 224 px, all 15 x 5 variants)."""
    out = []
    if missing:
        out.append(
            f"partial: {len(missing)} of the 15 corruptions lack severities (see "
            "imagenet_c_missing)"
        )
    if num_classes != IMAGENET_CLASSES:
        out.append(f"{num_classes} classes, not ImageNet's {IMAGENET_CLASSES}")
    if image_size != IMAGENET_SIZE:
        out.append(f"{image_size} px inputs, not {IMAGENET_SIZE}")
    if images != IMAGENET_VAL_IMAGES:
        out.append(f"{images:,} val images, not ImageNet's {IMAGENET_VAL_IMAGES:,}")
    if classes is not None and not all(_WNID.fullmatch(c) for c in classes):
        out.append("class folders are not ImageNet's WordNet ids (n01440764, ...)")
    if generated:
        out.append(
            "corruptions generated here with imagecorruptions (own random draws, no "
            "JPEG round trip), not the released ImageNet-C files"
        )
    return out


def upgrade_keys(obj: Any) -> Any:
    """``obj`` (a results dict, at any depth) with the unit-less keys of older results files
    renamed to their ``_pct`` names (the values were percent already)."""
    if isinstance(obj, dict):
        return {_OLD_KEYS.get(k, k): upgrade_keys(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [upgrade_keys(v) for v in obj]
    return obj
