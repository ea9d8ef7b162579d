"""pipelines.dataloader (the reference pipeline) and build_loader's common contract and errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from ipmix_ops import IPMixConfig, ipmix_batch
from pipelines import build_loader
from pipelines.datasets.demo import write_demo_imagefolder
from pipelines.keyed import keyed_flip

S, B, N_TRAIN = 32, 16, 60


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """Fashion-MNIST as an ImageFolder: train 10 x 6, val 10 x 2 (32 px JPEG)."""
    root = tmp_path_factory.mktemp("torch") / "fm"
    write_demo_imagefolder(root, size=S, train_per_class=6, val_per_class=2, progress=False)
    return root


@pytest.fixture(scope="module")
def bank(fractal_like_bank) -> np.ndarray:
    return np.ascontiguousarray(fractal_like_bank[:, :64, :64])


def _loader(folder, **kw):
    args = dict(train=True, batch_size=B, image_size=S, num_workers=0, seed=5, drop_last=False)
    return build_loader("torch", folder / "train", **{**args, **kw})


def _epoch(loader) -> list:
    out = []
    for x, y in loader:
        out.append((x if isinstance(x, tuple) else (x,), y))
    return out


def _cat(epoch: list, view: int = 0) -> torch.Tensor:
    return torch.cat([views[view] for views, _ in epoch])


@pytest.fixture(scope="module")
def plain(folder) -> dict:
    loader = _loader(folder)
    e0, e1 = _epoch(loader), _epoch(loader)
    loader.set_epoch(0)
    return {"loader": loader, "e0": e0, "e1": e1, "again": _epoch(loader)}


def test_contract_shapes_layout_len_and_last_batch(plain, folder):
    loader, e0 = plain["loader"], plain["e0"]
    assert len(loader) == len(e0) == 4 and [len(y) for _, y in e0] == [16, 16, 16, 12]
    (x,), y = e0[0]
    assert x.shape == (B, 3, S, S) and x.dtype == torch.uint8 and x.device.type == "cpu"
    assert x.is_contiguous(memory_format=torch.channels_last)
    assert y.dtype == torch.int64 and y.shape == (B,) and int(y.max()) < 10
    assert x.float().std() > 20
    dropped = _loader(folder, drop_last=True)
    assert len(dropped) == 3 and [len(y) for _, y in dropped] == [16, 16, 16]


def test_pass_started_mid_epoch_is_the_rest_of_the_epoch(plain, folder):
    """``set_epoch(1, start_batch=2)``: batches 2, 3 of epoch 1, byte for byte, with only
    their samples read; ``len`` stays the full pass; the pass after it is whole again."""
    loader = _loader(folder, num_workers=1)
    loader.set_epoch(1, start_batch=2)
    assert len(loader) == 4
    rest = _epoch(loader)
    assert len(rest) == 2 and len(loader) == 4
    assert torch.equal(_cat(rest), _cat(plain["e1"][2:]))
    assert torch.equal(torch.cat([y for _, y in rest]), torch.cat([y for _, y in plain["e1"][2:]]))
    assert len(_epoch(loader)) == 4  # epoch 2: from its first batch
    with pytest.raises(ValueError, match="start_batch"):
        loader.set_epoch(0, start_batch=5)


def test_same_seed_same_bytes_any_workers_next_epoch_differs(plain, folder):
    e0, e1, again = plain["e0"], plain["e1"], plain["again"]
    assert torch.equal(_cat(e0), _cat(again))
    assert not torch.equal(_cat(e0), _cat(e1))
    two_workers = _epoch(_loader(folder, num_workers=2))  # keyed crops: workers don't matter
    assert torch.equal(_cat(e0), _cat(two_workers))
    assert torch.equal(torch.cat([y for _, y in e0]), torch.cat([y for _, y in two_workers]))


def test_jsd_views_clean_first_and_same_ipmix_as_the_fast_path(plain, folder, bank):
    """View 0 is the IPMix-off crop; views 1, 2 (the authors' Pillow IPMix) agree with the
    Numba fast path on the same keys: |diff| <= 1 on >= 99% of the values (the tolerance of
    tests/test_ipmix_batch.py), so both backends realise the same IPMix."""
    cfg = IPMixConfig.preset("cifar", all_ops=True)
    loader = _loader(folder, ipmix=cfg, jsd=True, fractals=bank, output="uint8")
    e0 = _epoch(loader)
    clean = _cat(e0, 0)
    assert torch.equal(clean, _cat(plain["e0"]))
    sampler = loader.sampler
    sampler.set_epoch(0)
    indices = np.fromiter(iter(sampler), np.int64)
    nhwc = np.ascontiguousarray(clean.permute(0, 2, 3, 1).numpy())
    fast = ipmix_batch(nhwc, bank, cfg.replace(image_size=S), seed=5, epoch=0, indices=indices)
    for v in (1, 2):
        x = _cat(e0, v)
        assert x.is_contiguous(memory_format=torch.channels_last) and x.dtype == torch.uint8
        diff = np.abs(x.permute(0, 2, 3, 1).numpy().astype(int) - fast[:, v].astype(int))
        assert (diff <= 1).mean() >= 0.99 and diff.mean() < 0.1, (v, diff.mean())
        assert not torch.equal(x, clean)


def test_float_output_is_normalised_uint8(plain, folder):
    x = _cat(_epoch(_loader(folder, output="float")))
    assert x.dtype == torch.float32 and x.is_contiguous(memory_format=torch.channels_last)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    assert torch.allclose(x, (_cat(plain["e0"]).float() / 255 - mean) / std, atol=1e-5)


def test_val_is_deterministic_and_complete(folder):
    loader = build_loader(
        "torch", folder / "val", train=False, batch_size=B, image_size=S, num_workers=0
    )
    e0, e1 = _epoch(loader), _epoch(loader)
    assert len(loader) == 2 and [len(y) for _, y in e0] == [16, 4]
    assert torch.equal(_cat(e0), _cat(e1))
    assert torch.cat([y for _, y in e0]).tolist() == loader.dataset.folder.targets


def test_distributed_shards_are_disjoint_cover_and_keyed(plain, folder):
    sampler = plain["loader"].sampler
    sampler.set_epoch(0)
    by_index = dict(zip(iter(sampler), _cat(plain["e0"])))
    seen = []
    for rank in (0, 1):
        loader = _loader(folder, rank=rank, world_size=2)
        x = _cat(_epoch(loader))
        loader.sampler.set_epoch(0)
        idx = list(loader.sampler)
        assert len(loader) == 2 and len(x) == len(idx) == N_TRAIN // 2
        assert all(torch.equal(x[i], by_index[j]) for i, j in enumerate(idx))
        seen.append(set(idx))
    assert not seen[0] & seen[1] and seen[0] | seen[1] == set(range(N_TRAIN))


def test_build_loader_errors(folder, bank):
    with pytest.raises(ValueError, match="pipeline"):
        build_loader("tf", folder, train=True, batch_size=B, image_size=S)
    with pytest.raises(ValueError, match="jsd=True needs"):
        _loader(folder, jsd=True)
    with pytest.raises(ValueError, match="fractals"):
        _loader(folder, ipmix="cifar")
    with pytest.raises(ValueError, match="F >= 32"):
        _loader(folder, ipmix="cifar", fractals=bank[:, :16, :16])
    with pytest.raises(ValueError, match="output"):
        _loader(folder, output="fp16")
    with pytest.raises(ValueError, match="rank"):
        _loader(folder, rank=2, world_size=2)
    with pytest.raises(FileNotFoundError):
        build_loader("torch", folder / "nope", train=True, batch_size=B, image_size=S)
    for bad in ((0.0, 1.0), (0.5, 1.5), (0.6, 0.5), 0.5, (0.1, 0.2, 0.3)):
        with pytest.raises(ValueError, match="crop_scale"):
            _loader(folder, crop_scale=bad)


def test_crop_scale_whole_image_is_the_file(plain, folder):
    """``crop_scale=(1, 1)`` on square files of the output size: each sample is its file,
    flipped by its keyed flip, exactly; the default range crops something else."""
    loader = _loader(folder, crop_scale=(1.0, 1.0))
    got = _cat(_epoch(loader)).permute(0, 2, 3, 1).numpy()
    loader.sampler.set_epoch(0)
    paths = [p for p, _ in loader.dataset.folder.samples]
    want = []
    for j in loader.sampler:
        im = np.asarray(Image.open(paths[j]).convert("RGB"))
        want.append(im[:, ::-1] if keyed_flip(5, 0, j, 0.5) else im)
    assert np.array_equal(got, np.stack(want))
    default = _cat(plain["e0"]).permute(0, 2, 3, 1).numpy()
    assert np.abs(default.astype(int) - got).mean() > 5


def test_bank_cache_from_a_store(folder, tmp_path):
    """``bank_cache=``: the first loader decodes the store and writes a verified raw copy,
    the next one reads that copy; both give the same bytes as a loader without the cache."""
    import fractal_store

    store = tmp_path / "fractals.zip"
    fractal_store.build_store(store, count=3, size=48, seed=1, workers=1, progress=False)
    cache = tmp_path / "bank-cache"
    kw = dict(ipmix="cifar", fractals=str(store))
    want = _cat(_epoch(_loader(folder, **kw)))
    first = _cat(_epoch(_loader(folder, bank_cache=cache, **kw)))
    files = sorted(p.suffix for p in cache.iterdir())
    assert files == [".json", ".npy"], files
    stamp = {p.name: p.stat().st_mtime_ns for p in cache.iterdir()}
    again = _cat(_epoch(_loader(folder, bank_cache=cache, **kw)))
    assert {p.name: p.stat().st_mtime_ns for p in cache.iterdir()} == stamp  # read, not rebuilt
    assert torch.equal(first, want) and torch.equal(again, want)


@pytest.mark.parametrize("output", ["uint8", "float"])
def test_finisher_view_major_hands_out_views_without_copies(output):
    """A [B, V, S, S, 3] batch whose memory is [V, B, S, S, 3] (the FFCV IPMix op's JSD
    layout): the view-major Finisher gives the same views as the default one on the
    [B, V, ...] batch, channels-last, and (uint8) as views of the input's memory."""
    from pipelines.contract import Finisher

    mean, std = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)
    by_view = torch.randint(0, 256, (3, 4, S, S, 3), dtype=torch.uint8)  # [V, B, S, S, 3]
    labels = torch.arange(4)
    declared = by_view.view(4, 3, S, S, 3)  # what FFCV hands on: same memory, [B, V] shape
    got, y = Finisher(output, mean, std, view_major=True)(declared, labels)
    want, _ = Finisher(output, mean, std)(by_view.permute(1, 0, 2, 3, 4).contiguous(), labels)
    assert torch.equal(y, labels) and len(got) == len(want) == 3
    for g, w in zip(got, want):
        assert g.shape == (4, 3, S, S) and g.is_contiguous(memory_format=torch.channels_last)
        assert torch.equal(g, w)
    if output == "uint8":
        base = by_view.untyped_storage().data_ptr()
        assert all(g.untyped_storage().data_ptr() == base for g in got)
        assert got[1].data_ptr() == by_view[1].data_ptr()


def test_default_workers_are_this_ranks_share_of_the_node(folder, monkeypatch):
    """build_loader's default num_workers: usable cores // LOCAL_WORLD_SIZE (at least 1)."""
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: set(range(8)))
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    args = dict(train=True, batch_size=B, image_size=S)
    assert build_loader("torch", folder / "train", **args).loader.num_workers == 8
    for local, share in (("2", 4), ("3", 2), ("16", 1)):
        monkeypatch.setenv("LOCAL_WORLD_SIZE", local)
        assert build_loader("torch", folder / "train", **args).loader.num_workers == share
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "0")
    with pytest.raises(ValueError, match="LOCAL_WORLD_SIZE"):
        build_loader("torch", folder / "train", **args)
