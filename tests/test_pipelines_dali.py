"""The DALI backend on the CPU: batch contract, shards, keyed crops, passes started
mid-epoch, and IPMix through the Numba plugin against ``ipmix_ops.ipmix_apply``.

Tiny inputs (32 px demo ImageFolder, batches of 8): the whole file runs in about a minute on
2 cores once Numba's cache is warm (a cold cache adds ~1 min of kernel compilation).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("nvidia.dali")

from nvidia.dali import fn, pipeline_def, types  # noqa: E402
from PIL import Image  # noqa: E402

from ipmix_ops import IPMixConfig, ipmix_apply, ipmix_batch  # noqa: E402
from ipmix_ops.sampling import sample_records  # noqa: E402
from pipelines.contract import LoaderOptions  # noqa: E402
from pipelines.dali.feed import EpochFeed  # noqa: E402
from pipelines.dali.loader import epoch_order, make_loader  # noqa: E402
from pipelines.keyed import RATIO, SCALE, keyed_crop, keyed_flip  # noqa: E402

pytestmark = pytest.mark.dali

S, B, SEED = 32, 8, 3


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    from pipelines.datasets.demo import write_demo_imagefolder

    root = tmp_path_factory.mktemp("dali") / "demo"
    write_demo_imagefolder(root, size=S, train_per_class=4, val_per_class=2, progress=False)
    return root


@pytest.fixture(scope="module")
def cfg() -> IPMixConfig:
    return IPMixConfig.preset("cifar", image_size=S, jsd=True)


@pytest.fixture(scope="module")
def bank(fractal_like_bank) -> np.ndarray:
    return np.ascontiguousarray(fractal_like_bank[:, :48, :48])


def opts(train: bool = True, **kw) -> LoaderOptions:
    kw = {"batch_size": B, "image_size": S, "seed": SEED, "num_workers": 2, **kw}
    return LoaderOptions(train=train, **kw)


def raw_epoch(loader, epoch: int) -> tuple[np.ndarray, np.ndarray]:
    """All of one epoch's (images [N, V, S, S, 3], indices [N]) of a loader."""
    ims, idx = [], []
    for images, index in loader.raw_batches(epoch):
        ims.append(images.numpy().copy())
        idx.append(index.numpy().copy())
    return np.concatenate(ims), np.concatenate(idx)


def test_contract_jsd(folder, cfg, bank):
    loader = make_loader(folder / "train", opts(), cfg, bank)
    assert len(loader) == 40 // B
    batches = list(loader)
    assert len(batches) == len(loader) and loader.epoch == 1
    (clean, a, b), labels = batches[0]
    for x in (clean, a, b):
        assert x.shape == (B, 3, S, S) and x.dtype == torch.uint8
        assert x.is_contiguous(memory_format=torch.channels_last)
    assert labels.dtype == torch.int64 and labels.shape == (B,)
    assert 0 <= int(labels.min()) and int(labels.max()) < 10
    assert not torch.equal(clean, a) and not torch.equal(a, b)
    # batches are our own copies, not the iterator's reused buffers
    assert not torch.equal(batches[0][0][0], batches[1][0][0])

    # view 0 is the IPMix-off crop with the same seed and epoch
    plain = make_loader(folder / "train", opts(), None, None)
    for ((c, _, _), la), (x, lb) in zip(batches, plain):
        assert torch.equal(c, x) and torch.equal(la, lb)

    # float output: the same batch normalised with the config's mean/std
    fo = opts(output="float", mean=cfg.mean, std=cfg.std)  # as build_loader passes them
    fl = make_loader(folder / "train", fo, cfg, bank)
    (fc, fa, _), _ = next(iter(fl))
    mean = torch.tensor(cfg.mean).view(1, 3, 1, 1)
    std = torch.tensor(cfg.std).view(1, 3, 1, 1)
    assert fa.dtype == torch.float32 and fa.shape == (B, 3, S, S)
    torch.testing.assert_close(fa, (a.float() / 255 - mean) / std, atol=1e-5, rtol=0)
    torch.testing.assert_close(fc, (clean.float() / 255 - mean) / std, atol=1e-5, rtol=0)


def test_epochs_keyed_and_resumable(folder):
    loader = make_loader(folder / "train", opts(), None, None)
    x0, i0 = raw_epoch(loader, 0)
    pipe = loader._it._pipes[0]
    x1, i1 = raw_epoch(loader, 1)
    assert not np.array_equal(i0, i1)  # a new order each epoch
    # one pipeline for every epoch: the epoch is fed, not built in
    assert loader.builds == 1 and loader._it._pipes[0] is pipe
    next(iter(loader.raw_batches(2)))  # an epoch broken off after one batch
    x0b, i0b = raw_epoch(loader, 0)  # back to epoch 0 on the same pipeline: same bytes
    assert loader.builds == 1
    np.testing.assert_array_equal(i0, i0b)
    np.testing.assert_array_equal(x0, x0b)
    y0, j0 = raw_epoch(make_loader(folder / "train", opts(), None, None), 0)
    np.testing.assert_array_equal(i0, j0)
    np.testing.assert_array_equal(x0, y0)  # same seed + epoch: same bytes
    # the order is DistributedSampler's
    s = torch.utils.data.DistributedSampler(range(40), num_replicas=1, rank=0, seed=SEED)
    s.set_epoch(1)
    np.testing.assert_array_equal(i1, np.array(list(s)))


@pytest.mark.parametrize("drop_last", [True, False])
def test_two_shards_disjoint_and_cover(folder, drop_last):
    n = 40
    seen = []
    for rank in range(2):
        o = opts(rank=rank, world_size=2, drop_last=drop_last, batch_size=6)
        loader = make_loader(folder / "train", o, None, None)
        assert len(loader) == (20 // 6 if drop_last else 4)
        _, idx = raw_epoch(loader, 2)
        assert len(idx) == (18 if drop_last else 20)
        seen.append(idx)
    assert not set(seen[0]) & set(seen[1])
    if not drop_last:
        assert sorted(np.concatenate(seen)) == list(range(n))
    order = epoch_order(n, world_size=2, shuffle=True, seed=SEED, epoch=2)
    np.testing.assert_array_equal(seen[0], order[: len(seen[0])])


def test_epoch_order_pads_like_distributed_sampler():
    for rank in range(3):
        s = torch.utils.data.DistributedSampler(range(10), num_replicas=3, rank=rank, seed=5)
        s.set_epoch(4)
        order = epoch_order(10, world_size=3, shuffle=True, seed=5, epoch=4)
        np.testing.assert_array_equal(order[rank * 4 : (rank + 1) * 4], list(s))


def test_val_loader(folder, cfg):
    loader = make_loader(folder / "val", opts(train=False, drop_last=False), cfg, None)
    assert len(loader) == 3
    batches = list(loader)
    assert [x.shape[0] for x, _ in batches] == [8, 8, 4]
    x, y = batches[0]
    assert x.shape == (B, 3, S, S) and x.dtype == torch.uint8 and y.dtype == torch.int64


@pytest.mark.parametrize("scale", [SCALE, (0.5, 0.9)])
def test_ipmix_off_equals_hand_built_crop_flip(folder, scale):
    """Decode + keyed crop (ROI decode) + resize + flip equals a plain DALI graph: full decode,
    ``fn.slice`` at the box computed here in Python, resize, flip (default and another
    crop area range)."""
    loader = make_loader(folder / "train", opts(crop_scale=scale), None, None)
    ours, idx = raw_epoch(loader, 1)
    files = [loader.files[i] for i in idx]
    params = []
    for path, i in zip(files, idx):
        w, h = Image.open(path).size
        top, left, ch, cw = keyed_crop(h, w, np.array(scale), np.array(RATIO), SEED, 1, i)
        params.append((top, left, ch, cw, int(keyed_flip(SEED, 1, i, 0.5))))
    params = np.array(params, np.int64)

    @pipeline_def(batch_size=B, num_threads=2, device_id=None)
    def hand():
        jpegs, _ = fn.readers.file(files=files, random_shuffle=False)
        p = fn.external_source(source=[params[j : j + B] for j in range(0, 40, B)], batch=True)
        img = fn.decoders.image(jpegs, device="cpu", output_type=types.RGB)
        pf = fn.cast(p, dtype=types.FLOAT)
        img = fn.slice(
            img, pf[0:2], pf[2:4], axes=[0, 1], normalized_anchor=False, normalized_shape=False
        )
        img = fn.resize(img, size=[S, S], interp_type=types.INTERP_LINEAR, antialias=True)
        return fn.flip(img, horizontal=fn.cast(p[4], dtype=types.INT32))

    pipe = hand()
    pipe.build()
    ref = np.concatenate([np.array(pipe.run()[0].as_tensor()) for _ in range(40 // B)])
    diff = np.abs(ours[:, 0].astype(int) - ref.astype(int))
    # libjpeg-turbo's ROI decode may differ by a level at the crop's edge (chroma upsampling)
    assert (diff == 0).mean() > 0.99 and diff.max() <= 2, (diff.max(), (diff > 0).mean())


@pytest.mark.parametrize("jsd", [True, False])
def test_ipmix_equals_ipmix_apply(folder, bank, jsd):
    """The Numba-plugin IPMix is bit-identical to ipmix_apply on the same crops/records."""
    cfg = IPMixConfig.preset("cifar", image_size=S, jsd=jsd)
    crops, idx = raw_epoch(make_loader(folder / "train", opts(), None, None), 0)
    views, idx2 = raw_epoch(make_loader(folder / "train", opts(), cfg, bank), 0)
    np.testing.assert_array_equal(idx, idx2)
    crops = np.ascontiguousarray(crops[:, 0])
    np.testing.assert_array_equal(views, ipmix_batch(crops, bank, cfg, seed=SEED, epoch=0,
                                                     indices=idx, views=cfg.views))  # fmt: skip
    recs = sample_records(
        cfg,
        seed=SEED,
        epoch=0,
        indices=idx,
        n_fractals=len(bank),
        fractal_size=bank.shape[1],
        views=2 if jsd else 1,
        first_view=1 if jsd else 0,
    )
    np.testing.assert_array_equal(views, ipmix_apply(crops, bank, recs, cfg, clean_first=jsd))
    assert views.shape[1] == (3 if jsd else 1)


class RecordingFeed(EpochFeed):
    """The loader's own feed, recording the dataset indices it hands DALI (the files read)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.handed: list[int] = []

    def __next__(self):
        paths, index, key = super().__next__()
        self.handed += [int(i[0]) for i in index]
        return paths, index, key


@pytest.mark.parametrize("mode", ["off", "one", "jsd"])
def test_pass_started_mid_epoch_is_the_rest_and_skips_decoding(folder, bank, mode, monkeypatch):
    """``set_epoch(1, start_batch=k)``: batches k.. of epoch 1 byte for byte (crops, IPMix
    one view and JSD, the trimmed last batch included), labels too; the feed hands DALI only
    those batches' samples (the first k are never read nor decoded); on a fresh pipeline and
    on one reset after a pass; ``len`` stays the full pass and the next pass is whole."""
    import pipelines.dali.loader as dali_loader

    monkeypatch.setattr(dali_loader, "EpochFeed", RecordingFeed)
    cfg = None if mode == "off" else IPMixConfig.preset("cifar", image_size=S, jsd=mode == "jsd")
    o = opts(batch_size=6, drop_last=False)  # 7 batches, the last of 4

    def make():
        return make_loader(folder / "train", o, cfg, bank if cfg else None)

    def pass_of(loader):
        got = [(torch.stack(x if isinstance(x, tuple) else (x,), 1), y) for x, y in loader]
        return torch.cat([x for x, _ in got]), torch.cat([y for _, y in got]), len(got)

    full = make()
    assert full.starts_mid_epoch and len(full) == 7
    pass_of(full)  # epoch 0
    x1, y1, _ = pass_of(full)  # epoch 1, uninterrupted
    _, idx1 = raw_epoch(make(), 1)
    for k, fresh in ((5, True), (2, False)):
        loader = make() if fresh else full  # a new pipeline, or the built one reset
        loader.set_epoch(1, start_batch=k)
        if loader._feed is not None:
            loader._feed.handed.clear()
        x, y, n = pass_of(loader)
        assert n == 7 - k and len(loader) == 7 and loader.epoch == 2
        assert torch.equal(x, x1[6 * k :]) and torch.equal(y, y1[6 * k :])
        # DALI was fed exactly the rest of the epoch (the padded last batch repeats a sample)
        assert sorted(set(loader._feed.handed)) == sorted(set(idx1[6 * k :].tolist()))
        assert not set(loader._feed.handed) & set(idx1[: 6 * k].tolist())
        assert loader.builds == 1
    assert pass_of(full)[2] == 7  # epoch 2: from its first batch
    full.set_epoch(3, start_batch=7)  # nothing left of epoch 3: an empty pass
    assert list(full) == []
    with pytest.raises(ValueError, match="start_batch"):
        full.set_epoch(0, start_batch=8)


def test_no_ipmix_impl_option(folder, cfg, bank):
    """The native-graph choice is gone: passing ``ipmix_impl`` is an error, not ignored."""
    with pytest.raises(TypeError, match="ipmix_impl"):
        make_loader(folder / "train", opts(), cfg, bank, ipmix_impl="graph")
