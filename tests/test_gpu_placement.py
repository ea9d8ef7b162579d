"""``build_loader(..., ipmix_device="cuda")``: IPMix rendered on the device (Triton) after
the loader, against the same loader with ``ipmix_device="cpu"``, per backend.

Without CUDA the renderer runs in Triton's interpreter on CPU tensors (``TRITON_INTERPRET=1``
is set here, before Triton is imported); with CUDA the loaders yield on the GPU. Fashion-MNIST
at 32 px, tiny batches (the interpreter is slow). Same keys on both placements, so: labels
and the clean view identical, IPMix views within 1 level with < 1% of the bytes differing
(the warps; the torch backend's CPU placement is the authors' Pillow IPMix, so there the
tolerance is that of tests/test_pipelines_torch.py: |diff| <= 1 on >= 99%, mean < 0.1).
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

if not torch.cuda.is_available():  # before the first ``import triton``
    os.environ.setdefault("TRITON_INTERPRET", "1")

from ipmix_ops import IPMixConfig  # noqa: E402
from pipelines import build_loader  # noqa: E402
from pipelines.datasets.demo import write_demo_imagefolder  # noqa: E402
from pipelines.device_ipmix import resolve_ipmix_device  # noqa: E402

S, B = 32, 4
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """Fashion-MNIST as an ImageFolder: train 10 x 1 (2 full batches of 4), 32 px JPEG."""
    root = tmp_path_factory.mktemp("place") / "fm"
    write_demo_imagefolder(root, size=S, train_per_class=1, val_per_class=1, progress=False)
    return root


@pytest.fixture(scope="module")
def bank(fractal_like_bank) -> np.ndarray:
    """Six photos as fractals, 40 px (F >= S)."""
    return np.ascontiguousarray(fractal_like_bank[:, 100:140, 100:140])


def _maker(pipeline: str, data, bank: np.ndarray, jsd: bool, workers: int):
    """``make(ipmix_device)``: the backend's train loader with the cifar preset, all ops."""
    cfg = IPMixConfig.preset("cifar", all_ops=True)
    kw = dict(train=True, batch_size=B, image_size=S, seed=3, num_workers=workers, device=DEVICE)
    return lambda place: build_loader(
        pipeline, data, ipmix=cfg, jsd=jsd, fractals=bank, ipmix_device=place, **kw
    )


def _epoch(loader) -> list:
    """One epoch on the host: [(views tuple, labels)], copied (FFCV reuses its buffers)."""
    return [
        (tuple(v.cpu().clone() for v in (x if isinstance(x, tuple) else (x,))), y.cpu().clone())
        for x, y in loader
    ]


def _views(epoch: list) -> list[torch.Tensor]:
    return [torch.cat([v[i] for v, _ in epoch]) for i in range(len(epoch[0][0]))]


def _labels(epoch: list) -> torch.Tensor:
    return torch.cat([y for _, y in epoch])


def _close(a: torch.Tensor, b: torch.Tensor, reference: bool) -> None:
    """Same records: the fast path's bytes up to the warps (max 1 level, < 1% of the bytes);
    ``reference``: the CPU side is the authors' Pillow IPMix (>= 99% within 1, mean < 0.1)."""
    assert a.shape == b.shape and a.dtype == b.dtype == torch.uint8
    diff = (a.int() - b.int()).abs()
    stats = (int(diff.max()), float((diff > 0).float().mean()), float(diff.float().mean()))
    if reference:
        assert float((diff <= 1).float().mean()) >= 0.99 and stats[2] < 0.1, stats
    else:
        assert stats[0] <= 1 and stats[1] < 0.01, stats


def _compare(make, jsd: bool, reference: bool = False) -> tuple:
    """``make(ipmix_device)`` -> loader; CPU vs device placement, epochs 0, 1, set_epoch(0).
    Returns both loaders."""
    cpu, dev = make("cpu"), make("cuda")
    c0, d0 = _epoch(cpu), _epoch(dev)
    assert torch.equal(_labels(c0), _labels(d0))
    cv, dv = _views(c0), _views(d0)
    assert len(cv) == len(dv) == (3 if jsd else 1)
    if jsd:
        assert torch.equal(cv[0], dv[0])  # the clean crop
    for i in range(1 if jsd else 0, len(cv)):
        assert dv[i].is_contiguous(memory_format=torch.channels_last)
        _close(cv[i], dv[i], reference)
        if jsd:
            assert not torch.equal(dv[i], dv[0])
    d1 = _epoch(dev)
    assert not torch.equal(_views(d1)[-1], dv[-1])
    dev.set_epoch(0)
    again = _views(_epoch(dev))
    assert all(torch.equal(a, b) for a, b in zip(again, dv))
    return cpu, dev


def test_resolve_ipmix_device():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert resolve_ipmix_device("auto", cpu) == "cpu"
    assert resolve_ipmix_device("auto", cuda) == "cuda"
    assert resolve_ipmix_device("cpu", cuda) == "cpu"
    with pytest.raises(ValueError, match="ipmix_device must be one of"):
        resolve_ipmix_device("gpu", cpu)
    # TRITON_INTERPRET=1 (set above without CUDA): "cuda" on CPU tensors is allowed
    assert resolve_ipmix_device("cuda", cpu) == "cuda"


def test_cuda_on_a_cpu_device_without_the_interpreter_is_an_error(monkeypatch):
    import triton

    monkeypatch.setattr(triton.knobs.runtime, "interpret", False)
    with pytest.raises(ValueError, match="needs a CUDA loader device"):
        resolve_ipmix_device("cuda", torch.device("cpu"))


@pytest.mark.parametrize("jsd", [True, False])
def test_torch_backend(folder, bank, jsd):
    make = _maker("torch", folder / "train", bank, jsd, workers=0)

    _compare(make, jsd, reference=True)


@pytest.fixture(scope="module")
def beton(folder, tmp_path_factory) -> str:
    """The train folder as a .beton (raw and JPEG samples, as in tests/test_pipelines_ffcv.py)."""
    pytest.importorskip("ffcv")
    from pipelines.datasets.beton import write_beton

    path = tmp_path_factory.mktemp("place_beton") / "train.beton"
    write_beton(folder / "train", path, write_mode="proportion", num_workers=1, progress=False)
    return str(path)


@pytest.mark.ffcv
@pytest.mark.parametrize("jsd", [True, False])
def test_ffcv_backend(beton, bank, jsd):
    make = _maker("ffcv", beton, bank, jsd, workers=1)

    cpu, dev = _compare(make, jsd)
    # the loader threads run the plain pipeline (no IPMix op) and pair labels with indices
    specs = {
        k: [type(op).__name__ for op in v.transforms] for k, v in dev.loader.pipeline_specs.items()
    }
    assert "IPMixOp" not in specs["image"] and "LabelAndIndex" in specs["label"], specs
    assert cpu.ipmix is not None and dev.ipmix is None and dev.device_ipmix is not None


@pytest.mark.dali
@pytest.mark.parametrize("jsd", [True, False])
def test_dali_backend(folder, bank, jsd):
    """DALI's graph (CPU without CUDA, where its IPMix is the Numba plugin) vs the renderer
    after the iterator."""
    pytest.importorskip("nvidia.dali")
    make = _maker("dali", folder / "train", bank, jsd, workers=1)

    _compare(make, jsd)
