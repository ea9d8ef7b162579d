"""pipelines.ffcv.loader: the loader contract, reproducibility, IPMix inside FFCV, shards.

Every FFCV Loader compiles its pipeline (a few seconds each), so the loaders are built
once per module and shared; most use one thread (``num_workers=1``), one uses two.
"""
# ruff: noqa: E402  (FFCV is imported after the skip check)

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

pytestmark = [
    pytest.mark.ffcv,
    # a collected FFCV Loader prints Numba finalizer KeyErrors (known, harmless: README)
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
]
pytest.importorskip("ffcv")
cv2 = pytest.importorskip("cv2")  # installed with FFCV

from ffcv.fields.basics import IntDecoder
from ffcv.fields.rgb_image import RandomResizedCropRGBImageDecoder
from ffcv.loader import Loader, OrderOption
from ffcv.transforms import Squeeze, ToDevice, ToTensor, ToTorchImage

import fractal_store
from ipmix_ops import IPMixConfig, ipmix_batch
from pipelines import build_loader
from pipelines.contract import LoaderOptions
from pipelines.datasets.beton import read_beton, write_beton
from pipelines.datasets.demo import write_demo_imagefolder
from pipelines.ffcv import ops as ffcv_ops
from pipelines.ffcv.loader import label_pipeline, train_pipeline
from pipelines.ffcv.ops import EpochCell, IPMixOp, KeyedRandomResizedCropDecoder
from pipelines.keyed import keyed_flip

S, B, N_TRAIN, N_VAL = 32, 16, 60, 20
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def betons(tmp_path_factory) -> dict:
    """Fashion-MNIST train/val (real photos, 32 px) as .beton files; the train file mixes
    raw and JPEG samples (proportion mode) so both decode paths run."""
    root = tmp_path_factory.mktemp("ffcv")
    write_demo_imagefolder(root / "fm", size=S, train_per_class=6, val_per_class=2, progress=False)
    kw = dict(num_workers=1, progress=False)
    write_beton(root / "fm/train", root / "train.beton", write_mode="proportion", **kw)
    write_beton(root / "fm/val", root / "val.beton", write_mode="jpg", **kw)
    return {"train": str(root / "train.beton"), "val": str(root / "val.beton"), "root": root}


@pytest.fixture(scope="module")
def bank(fractal_like_bank) -> np.ndarray:
    return np.ascontiguousarray(fractal_like_bank[:, :64, :64])


def _epoch(loader) -> list:
    """One epoch, copied out of FFCV's ring buffer: [(views tuple, labels)]."""
    out = []
    for x, y in loader:
        views = x if isinstance(x, tuple) else (x,)
        out.append((tuple(v.clone() for v in views), y.clone()))
    return out


def _cat(epoch: list, view: int = 0) -> torch.Tensor:
    return torch.cat([views[view] for views, _ in epoch])


def _order(seed: int, epoch: int, n: int = N_TRAIN) -> np.ndarray:
    """FFCV's RANDOM order of one rank (``Random.sample_order``)."""
    return np.random.default_rng(seed + epoch).permutation(np.arange(n, dtype=np.uint64))


def _loader(betons, **kw):
    args = dict(train=True, batch_size=B, image_size=S, num_workers=1, seed=5, drop_last=False)
    return build_loader("ffcv", betons["train"], **{**args, **kw})


@pytest.fixture(scope="module")
def plain(betons) -> dict:
    """The IPMix-off train loader and its epochs 0, 1 and 0 again (after set_epoch)."""
    loader = _loader(betons)
    e0, e1 = _epoch(loader), _epoch(loader)
    loader.set_epoch(0)
    return {"loader": loader, "e0": e0, "e1": e1, "again": _epoch(loader)}


def test_contract_shapes_layout_len_and_last_batch(plain):
    loader, e0 = plain["loader"], plain["e0"]
    assert len(loader) == len(e0) == 4  # 60 = 3 x 16 + 12, drop_last=False
    assert [len(y) for _, y in e0] == [16, 16, 16, 12]
    (x,), y = e0[0]
    assert x.shape == (B, 3, S, S) and x.dtype == torch.uint8 and x.device.type == "cpu"
    assert x.is_contiguous(memory_format=torch.channels_last)
    assert y.dtype == torch.int64 and y.shape == (B,) and 0 <= int(y.min()) <= int(y.max()) < 10
    assert x.float().std() > 20  # real pictures, not a constant buffer
    assert not any(
        isinstance(op, IPMixOp) for op in loader.loader.pipeline_specs["image"].transforms
    )


def test_same_seed_same_bytes_next_epoch_differs(plain):
    e0, e1, again = plain["e0"], plain["e1"], plain["again"]
    assert torch.equal(_cat(e0), _cat(again))
    assert torch.equal(torch.cat([y for _, y in e0]), torch.cat([y for _, y in again]))
    assert not torch.equal(_cat(e0), _cat(e1))
    assert plain["loader"].epoch == 1


def test_plain_equals_the_ffcv_pipeline_built_by_hand(betons, plain):
    opts = LoaderOptions(train=True, batch_size=B, image_size=S, seed=5, drop_last=False)
    cell = EpochCell()
    loader = Loader(
        betons["train"],
        batch_size=B,
        num_workers=1,
        order=OrderOption.RANDOM,
        seed=5,
        drop_last=False,
        pipelines={"image": train_pipeline(opts, cell), "label": label_pipeline(CPU)},
    )
    by_hand = [(x.clone(), y.clone()) for x, y in loader]
    assert torch.equal(torch.cat([x for x, _ in by_hand]), _cat(plain["e0"]))
    assert torch.equal(torch.cat([y for _, y in by_hand]), torch.cat([y for _, y in plain["e0"]]))


def test_keyed_decoder_decodes_like_ffcv_stock_decoder(betons):
    """With a deterministic crop (whole image) the keyed decoder gives FFCV's bytes."""

    def run(decoder):
        loader = Loader(
            betons["train"],
            batch_size=B,
            num_workers=1,
            order=OrderOption.SEQUENTIAL,
            pipelines={
                "image": [decoder, ToTensor(), ToDevice(CPU), ToTorchImage()],
                "label": [IntDecoder(), ToTensor(), Squeeze(1)],
            },
        )
        return torch.cat([x.clone() for x, _ in loader])

    full = dict(scale=(1.0, 1.0), ratio=(1.0, 1.0))
    stock = run(RandomResizedCropRGBImageDecoder((S, S), **full))
    keyed = run(KeyedRandomResizedCropDecoder((S, S), 0, EpochCell(), **full))
    assert stock.shape == (48, 3, S, S) and torch.equal(stock, keyed)


def test_jsd_views_two_threads_match_ipmix_batch(betons, bank, plain):
    """JSD on 2 threads: view 0 is the IPMix-off crop; views 1, 2 are ipmix_batch of it
    under the same keys (dataset index reaches IPMix); drop_last drops the 12 left over."""
    cfg = IPMixConfig.preset("cifar")
    loader = _loader(betons, ipmix=cfg, jsd=True, fractals=bank, num_workers=2, drop_last=True)
    e0 = _epoch(loader)
    assert len(loader) == len(e0) == 3 and all(len(y) == B for _, y in e0)
    clean = _cat(e0, 0)
    assert torch.equal(clean, _cat(plain["e0"])[: 3 * B])
    for v in range(3):
        x = _cat(e0, v)
        assert x.shape == (3 * B, 3, S, S) and x.dtype == torch.uint8
        assert x.is_contiguous(memory_format=torch.channels_last)
    nhwc = np.ascontiguousarray(clean.permute(0, 2, 3, 1).numpy())
    want = ipmix_batch(
        nhwc, bank, cfg.replace(image_size=S), seed=5, epoch=0, indices=_order(5, 0)[: 3 * B]
    )
    for v in (1, 2):
        got = _cat(e0, v).permute(0, 2, 3, 1).numpy()
        assert np.array_equal(got, want[:, v])
        assert not np.array_equal(got, nhwc)
    assert not torch.equal(_cat(e0, 1), _cat(e0, 2))


def test_one_view_float_output_from_a_fractal_store(betons, plain, monkeypatch):
    store = betons["root"] / "fractals.zip"
    fractal_store.build_store(store, count=3, size=36, seed=0, progress=False)
    loader = _loader(betons, ipmix="cifar", fractals=store, output="float")
    e0 = _epoch(loader)
    x = _cat(e0)
    assert x.dtype == torch.float32 and x.is_contiguous(memory_format=torch.channels_last)
    cfg = IPMixConfig.preset("cifar", jsd=False)
    with fractal_store.open(store) as st:
        bank = st.load_bank(size=cfg.fractal_size)
    nhwc = np.ascontiguousarray(_cat(plain["e0"]).permute(0, 2, 3, 1).numpy())
    mixed = ipmix_batch(nhwc, bank, cfg, seed=5, epoch=0, indices=_order(5, 0))[:, 0]
    want = (torch.from_numpy(mixed).permute(0, 3, 1, 2).float() / 255 - 0.5) / 0.5
    assert torch.allclose(x, want, atol=1e-5)
    assert -1.0 - 1e-6 <= float(x.min()) and float(x.max()) <= 1.0 + 1e-6

    def broken(*args, **kwargs):
        raise ValueError("boom")

    # an error in FFCV's thread is raised
    monkeypatch.setattr(ffcv_ops, "render_records_into", broken)
    with pytest.raises(RuntimeError, match="IPMix failed") as err:
        _epoch(loader)
    assert "boom" in str(err.value.__cause__)


def test_val_centre_crop_sequential_and_complete(betons):
    loader = build_loader(
        "ffcv", betons["val"], train=False, batch_size=B, image_size=S, num_workers=1
    )
    e0, e1 = _epoch(loader), _epoch(loader)
    assert len(loader) == 2 and [len(y) for _, y in e0] == [16, 4]  # val keeps the last batch
    assert torch.equal(_cat(e0), _cat(e1))  # no randomness
    labels = [label for _, label in read_beton(betons["val"])]
    assert torch.cat([y for _, y in e0]).tolist() == labels
    # centre 28 px (224/256 of 32) of each stored image, resized to 32 (OpenCV area filter)
    src = [
        cv2.resize(img[2:30, 2:30], (S, S), interpolation=cv2.INTER_AREA)
        for img, _ in read_beton(betons["val"])
    ]
    got = _cat(e0).permute(0, 2, 3, 1).numpy().astype(int)
    assert np.abs(got - np.stack(src)).mean() < 1.0


def test_distributed_shards_are_disjoint_cover_and_keyed(betons, plain):
    """World size 2: each rank's indices are disjoint and cover the epoch; every sample's
    crop equals the single-process crop of the same index (keys, not order, decide)."""
    by_index = dict(zip(_order(5, 0).tolist(), _cat(plain["e0"])))
    seen = []
    for rank in (0, 1):
        loader = _loader(betons, rank=rank, world_size=2)
        idx = loader.loader.traversal_order.sample_order(0)
        x = _cat(_epoch(loader))
        assert len(loader) == 2 and len(x) == len(idx) == N_TRAIN // 2
        assert all(torch.equal(x[i], by_index[int(j)]) for i, j in enumerate(idx))
        seen.append(set(idx.tolist()))
    assert not seen[0] & seen[1] and seen[0] | seen[1] == set(range(N_TRAIN))


def test_same_crops_as_the_torch_pipeline(betons, plain):
    """Both backends take the crop box and flip of a sample from the same keys: per sample,
    FFCV's crop (OpenCV area resize) and torchvision's (Pillow bilinear) of the same picture
    agree up to interpolation and JPEG re-encoding."""
    args = dict(train=True, batch_size=B, image_size=S, num_workers=0, seed=5, drop_last=False)
    loader = build_loader("torch", betons["root"] / "fm/train", **args)
    got = torch.cat([x for x, _ in loader]).float()
    loader.sampler.set_epoch(0)
    torch_pos = {int(j): i for i, j in enumerate(loader.sampler)}
    ffcv = _cat(plain["e0"]).float()
    diffs = [
        float((ffcv[i] - got[torch_pos[int(j)]]).abs().mean()) for i, j in enumerate(_order(5, 0))
    ]
    other = [float((ffcv[i] - got[(i + 1) % len(got)]).abs().mean()) for i in range(len(got))]
    assert np.mean(diffs) < 4 and np.max(diffs) < 16, (np.mean(diffs), np.max(diffs))
    assert np.mean(other) > 4 * np.mean(diffs)  # a different sample or box is far off


def test_crop_scale_whole_image_is_the_stored_picture(betons, plain):
    """``crop_scale=(1, 1)`` on square pictures of the output size: every crop is the whole
    picture (no resampling), flipped by the sample's keyed flip; raw samples match
    exactly, JPEG samples up to decoder rounding. The default range crops something else."""
    stored = np.stack([im for im, _ in read_beton(betons["train"])])
    loader = _loader(betons, crop_scale=(1.0, 1.0))
    got = _cat(_epoch(loader)).permute(0, 2, 3, 1).numpy().astype(int)
    order = _order(5, 0)
    want = np.stack([stored[j][:, ::-1] if keyed_flip(5, 0, j, 0.5) else stored[j] for j in order])
    diff = np.abs(got - want)
    worst = diff.reshape(len(got), -1).max(1)  # raw samples 0; JPEG: OpenCV vs Pillow decode
    assert diff.mean() < 0.5 and worst.max() <= 8 and (worst == 0).sum() >= 10, worst
    default = _cat(plain["e0"]).permute(0, 2, 3, 1).numpy().astype(int)
    assert np.abs(default - want).mean() > 10 * max(diff.mean(), 0.1)
    with pytest.raises(ValueError, match="crop_scale"):
        _loader(betons, crop_scale=(0.5, 0.2))


def test_torch_thread_count_survives_ffcv(betons):
    """FFCV sets torch's thread count on import and per Loader; the project's imports and
    loaders leave the caller's count alone (a CPU trainer would otherwise use one core)."""
    import subprocess
    import sys

    code = (
        "import torch; torch.set_num_threads(2); "
        "import pipelines.datasets.beton, pipelines.ffcv.loader; "
        "print(torch.get_num_threads())"
    )
    root = str(Path(__file__).resolve().parents[1])
    out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True)
    assert out.stdout.strip() == "2", out.stderr[-2000:]
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        loader = _loader(betons, num_workers=1)
        assert torch.get_num_threads() == 2
        next(iter(loader))
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_an_os_cache_loader_leaves_numbas_shared_types_alone(betons):
    """FFCV 1.0's page-cache reader set ``mutable = False`` on Numba's interned ``uint8[::1]``
    type in place, changing its hash under every dict that held it (Numba's overload tables:
    ``KeyError`` in ``Dispatcher.nopython_signatures`` on later compiles). pipelines.ffcv
    replaces that reader's type code; the reader still hands out readonly bytes."""
    import numba as nb

    t = nb.uint8[::1]
    held = {(t, nb.uint64): "kernel"}
    before = hash(t)
    loader = _loader(betons, os_cache=True)
    next(iter(loader))
    assert t.mutable and hash(t) == before
    assert held[(nb.uint8[::1], nb.uint64)] == "kernel" and list(held) == [(t, nb.uint64)]
    from ffcv.memory_managers.os_cache import OSCacheManager

    state = OSCacheManager.state_type.fget(None)
    assert not state.types[0].mutable and state.types[0] is not t
