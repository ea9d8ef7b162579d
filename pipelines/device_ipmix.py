"""IPMix on the training device: the Triton renderer (:mod:`ipmix_ops.gpu`) after the
host-to-device copy, shared by every backend (``build_loader(..., ipmix_device="cuda")``).

The backend's host side decodes, crops and flips (keyed by ``(seed, epoch, index)``, as
always) and hands the uint8 crops ``[B, S, S, 3]`` plus the batch's dataset indices (int64
``[B]``, on the host: records are sampled there) to :class:`DeviceIPMix`, which renders the
views with the records of :func:`ipmix_ops.ipmix_batch` for ``(seed, epoch, indices)``. The
views thus equal the CPU placement's for the same crops (point ops byte for byte, the
bilinear warps within 1 level; see ``ipmix_ops/gpu/README.md``).

``ipmix_device``: ``"auto"`` picks ``"cuda"`` when the loader's device is CUDA, else
``"cpu"``. ``"cuda"`` with a CPU loader device is an error, except under Triton's interpreter
(``TRITON_INTERPRET=1`` set before Triton is first imported): then the kernels run on CPU
tensors, which is how the CPU test suite checks this placement. Importing this module does
not import Triton; :class:`DeviceIPMix` does.
"""

from __future__ import annotations

import os

import numpy as np
import torch

from ipmix_ops import IPMixConfig

IPMIX_DEVICES = ("auto", "cpu", "cuda")


def _interpreting() -> bool:
    """Whether Triton's interpreter is (or will be, on first import) selected."""
    import sys

    if "triton" in sys.modules:
        return bool(sys.modules["triton"].knobs.runtime.interpret)
    return os.environ.get("TRITON_INTERPRET", "0").lower() in ("1", "true", "on", "yes")


def resolve_ipmix_device(ipmix_device: str, device: torch.device) -> str:
    """``"cpu"`` or ``"cuda"``: where IPMix runs for a loader yielding on ``device``.

    ``"auto"``: ``"cuda"`` when ``device`` is a CUDA device, else ``"cpu"``. ``"cuda"`` with
    a non-CUDA ``device`` raises ValueError unless Triton's interpreter is selected
    (``TRITON_INTERPRET=1``; the kernels then run, slowly, on CPU tensors).
    """
    if ipmix_device not in IPMIX_DEVICES:
        raise ValueError(f"ipmix_device must be one of {IPMIX_DEVICES}, got {ipmix_device!r}")
    if ipmix_device == "auto":
        return "cuda" if device.type == "cuda" else "cpu"
    if ipmix_device == "cuda" and device.type != "cuda" and not _interpreting():
        raise ValueError(
            f"ipmix_device='cuda' needs a CUDA loader device, got device={str(device)!r} "
            "(pass device='cuda', or ipmix_device='cpu'; on CPU tensors the renderer runs "
            "only under Triton's interpreter, TRITON_INTERPRET=1)"
        )
    return ipmix_device


class DeviceIPMix:
    """IPMix views of uint8 crops already on ``device``, keyed by ``(seed, epoch, index)``.

    The bank (uint8 ``[N, F, F, 3]``) is copied to ``device`` once, here. Calling with crops
    uint8 ``[B, S, S, 3]`` (NHWC, contiguous, on ``device``), the batch's dataset indices
    and the loader's epoch returns uint8 ``[B, V, S, S, 3]`` on ``device`` (JSD: view 0 the
    clean crop), for :class:`pipelines.contract.Finisher`.
    """

    def __init__(self, bank: np.ndarray, cfg: IPMixConfig, seed: int, device: torch.device):
        from ipmix_ops import gpu  # imports Triton (the interpreter choice is made then)

        self._render = gpu.ipmix_batch
        self.cfg, self.seed, self.device = cfg, int(seed), device
        self.bank = torch.from_numpy(np.ascontiguousarray(bank)).to(device)

    def __call__(self, crops: torch.Tensor, indices: np.ndarray, epoch: int) -> torch.Tensor:
        if crops.ndim == 5 and crops.shape[1] == 1:  # [B, 1, S, S, 3] from a view-stacked host
            crops = crops[:, 0]
        idx = np.asarray(indices, np.int64).reshape(-1)
        return self._render(
            crops.contiguous(), self.bank, self.cfg, seed=self.seed, epoch=int(epoch), indices=idx
        )


def make_device_ipmix(
    opts_ipmix_device: str,
    cfg: IPMixConfig | None,
    bank: np.ndarray | None,
    seed: int,
    device: torch.device,
    train: bool,
) -> DeviceIPMix | None:
    """The device stage of a loader, or None when IPMix is off or runs on the host."""
    if cfg is None or not train or opts_ipmix_device != "cuda":
        return None
    if bank is None:
        raise ValueError("IPMix needs a fractal bank")
    return DeviceIPMix(bank, cfg, seed, device)


__all__ = ["IPMIX_DEVICES", "DeviceIPMix", "make_device_ipmix", "resolve_ipmix_device"]
