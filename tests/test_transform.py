"""ipmix_ops.IPMix / IPMixDataset in a plain PyTorch DataLoader: plain calls never repeat
across epochs, keyed calls give ipmix_batch's bytes, with 0, 1 and 2 workers, persistent
or not (real photos at 32 px, cifar preset)."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from ipmix_ops import IPMix, IPMixConfig, IPMixDataset, ipmix_batch

CFG = IPMixConfig.preset("cifar", jsd=False)
N = 8  # samples: the four photos and their mirror images
LOADERS = [(0, False), (1, False), (1, True), (2, False), (2, True)]  # (workers, persistent)


@pytest.fixture(scope="module")
def images(photos32) -> np.ndarray:
    return np.ascontiguousarray(np.concatenate([photos32, photos32[:, :, ::-1]]))


class Photos(Dataset):
    """Fixed photos as uint8 [3, S, S] tensors with their index; ``ipmix`` applied plainly
    when given, the way a torchvision transform is."""

    def __init__(self, images: np.ndarray, ipmix: IPMix | None = None) -> None:
        self.images, self.ipmix = images, ipmix

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        img = torch.from_numpy(self.images[i]).permute(2, 0, 1).contiguous()
        return (img if self.ipmix is None else self.ipmix(img)), i


def _epochs(ds, workers: int, persistent: bool, shuffle: bool = False) -> list[np.ndarray]:
    """Two epochs of ``ds``: per epoch uint8 [N, S, S, 3] in index order."""
    loader = DataLoader(
        ds, batch_size=3, shuffle=shuffle, num_workers=workers, persistent_workers=persistent
    )
    out = []
    for epoch in range(2):
        if hasattr(ds, "set_epoch"):
            ds.set_epoch(epoch)
        got = np.zeros((len(ds), *ds[0][0].shape[1:], 3), np.uint8)
        for x, idx in loader:
            got[idx.numpy()] = x.permute(0, 2, 3, 1).numpy()
        out.append(got)
    return out


def _expected(images, bank, seed: int, epoch: int) -> np.ndarray:
    return ipmix_batch(images, bank, CFG, seed=seed, epoch=epoch, indices=np.arange(len(images)))[
        :, 0
    ]


@pytest.mark.parametrize("workers,persistent", LOADERS)
def test_plain_transform_never_repeats_an_epoch(images, fractal_like_bank, workers, persistent):
    _expected(images[:1], fractal_like_bank, 0, 0)  # compile before forking the workers
    torch.manual_seed(0)  # the workers' seeds: a deterministic test
    same = np.ascontiguousarray(np.repeat(images[:1], N, axis=0))  # one photo, N samples
    a, b = _epochs(Photos(same, IPMix(fractal_like_bank, CFG, seed=5)), workers, persistent)
    # 2N draws of one photo in two epochs (and over the workers) are all different, except
    # draws that leave the photo unchanged (~3% at this preset)
    changed = [x.tobytes() for x in np.concatenate([a, b]) if not np.array_equal(x, same[0])]
    repeats = len(changed) - len(set(changed))
    assert len(changed) >= N and repeats == 0, f"{repeats} of {2 * N} draws repeat others"


def test_plain_transform_repeats_with_the_same_torch_seed(images, fractal_like_bank):
    runs = []
    for _ in range(2):
        torch.manual_seed(11)
        runs.append(_epochs(Photos(images, IPMix(fractal_like_bank, CFG, seed=5)), 2, False))
    assert np.array_equal(runs[0][0], runs[1][0]) and np.array_equal(runs[0][1], runs[1][1])


@pytest.mark.parametrize("workers,persistent", LOADERS)
def test_keyed_dataset_gives_ipmix_batch_bytes(images, fractal_like_bank, workers, persistent):
    ds = IPMixDataset(Photos(images), IPMix(fractal_like_bank, CFG, seed=7))
    epochs = _epochs(ds, workers, persistent, shuffle=True)
    for epoch, got in enumerate(epochs):  # set_epoch reached the (persistent) workers
        np.testing.assert_array_equal(got, _expected(images, fractal_like_bank, 7, epoch))
    assert all(not np.array_equal(epochs[0][i], epochs[1][i]) for i in range(N))


def test_keyed_call_and_jsd_views(images, fractal_like_bank):
    cfg = IPMixConfig.preset("cifar")  # JSD: (clean, a, b)
    t = IPMix(fractal_like_bank, cfg, seed=3)
    want = ipmix_batch(images[2:3], fractal_like_bank, cfg, seed=3, epoch=4, indices=[2])[0]
    pil = Image.fromarray(images[2])
    got = t(pil, index=2, epoch=4)
    assert isinstance(got, tuple) and len(got) == 3
    np.testing.assert_array_equal(np.stack([np.asarray(v) for v in got]), want)
    t.set_epoch(4)
    assert t.epoch == 4
    np.testing.assert_array_equal(np.stack([np.asarray(v) for v in t(pil, index=2)]), want)
    copy = pickle.loads(pickle.dumps(t))  # what a spawned worker gets
    assert copy.epoch == 4 and np.array_equal(np.asarray(copy(pil, index=2)[1]), want[1])
    ds = IPMixDataset(Photos(images), t, post=lambda v: v.float() / 255)
    views, label = ds[2]
    assert label == 2 and len(views) == 3 and views[1].dtype == torch.float32
    np.testing.assert_allclose(views[1].permute(1, 2, 0).numpy(), want[1] / 255, atol=1e-6)
    with pytest.raises(ValueError, match="epoch= needs index="):
        t(pil, epoch=1)
    with pytest.raises(ValueError, match="epoch must be >= 0"):
        t.set_epoch(-1)
    with pytest.raises(TypeError, match="must be an IPMix"):
        IPMixDataset(Photos(images), lambda x: x)
