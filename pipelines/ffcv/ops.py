"""FFCV operations: keyed random-resized-crop decoding, keyed flip, IPMix (train) and a
centre crop that survives any picture size (val).

FFCV's own ``RandomResizedCropRGBImageDecoder`` and ``RandomHorizontalFlip`` draw from Numba's
per-thread ``np.random`` state, which is seeded from OS entropy and shared by whichever
samples a thread happens to get: a run cannot be repeated. The two ops here keep FFCV's
algorithms and kernels (libjpeg-turbo ``imdecode``, the OpenCV ``resize_crop``, the crop
rule and defaults of torchvision/FFCV) but take every choice from :mod:`pipelines.keyed`,
keyed by ``(seed, epoch, index)``.

The epoch reaches compiled code through an :class:`EpochCell`: a one-element int64 array
read through its address, because Numba freezes arrays captured by a closure into
constants (later writes would not be seen). The loader writes the cell before each epoch.

:class:`IPMixOp` is a *non-jitted* op (``jit_mode=False``): FFCV calls it from Python once
per batch, in its loader thread, right after the compiled crop and flip, and it calls the
batch-parallel Numba kernels of :mod:`ipmix_ops` on the whole uint8 batch. This keeps the
fractal bank a plain Python-owned argument (no constant freezing), costs one Python call
per batch, and respects FFCV 1.0.2's rule that no compiled op may follow a non-compiled one
(IPMix comes after every compiled op and before ``ToTensor``).

:class:`CenterCropDecoder` is FFCV's ``CenterCropRGBImageDecoder`` with its crop kept at
1 px or more: FFCV's ``int(ratio * shorter side)`` is 0 for a 1 px side, and OpenCV's resize
of the empty crop aborts the whole process (a C++ exception, no Python traceback).
``tools/write_beton.py`` no longer writes such pictures (its ``min_side`` rule), but .beton
files written before, or by other tools, may hold them. The keyed train crop is >= 1 px
for any picture of >= 1 px already.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import replace

# isort: off
from . import _import  # noqa: F401  (before any ffcv import: keeps torch's threads)

# isort: on
import numba
import numpy as np
from ffcv.fields.rgb_image import (
    IMAGE_MODES,
    CenterCropRGBImageDecoder,
    RandomResizedCropRGBImageDecoder,
)
from ffcv.libffcv import imdecode, resize_crop
from ffcv.pipeline.allocation_query import AllocationQuery
from ffcv.pipeline.compiler import Compiler
from ffcv.pipeline.operation import Operation
from ffcv.pipeline.state import State
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from ipmix_ops import IPMixConfig
from ipmix_ops.batch import RenderScratch, render_records_into
from ipmix_ops.ops import copy_box_k, mirror_k
from ipmix_ops.sampling import sample_records

from ..keyed import RATIO, SCALE, keyed_crop, keyed_flip


@intrinsic
def _as_voidptr(typingctx, address):
    """Numba intrinsic: an integer address as ``void*`` (for ``numba.carray``)."""
    if not isinstance(address, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        return builder.inttoptr(args[0], cgutils.voidptr_t)

    return types.voidptr(address), codegen


@njit(cache=True)
def read_cell(address):
    """The int64 stored at ``address`` (an :class:`EpochCell`)."""
    return numba.carray(_as_voidptr(address), (1,), np.int64)[0]


class EpochCell:
    """The current epoch, shared by Python and the compiled ops of one loader."""

    def __init__(self, epoch: int = 0) -> None:
        self.array = np.full(1, epoch, np.int64)

    @property
    def address(self) -> int:
        return int(self.array.ctypes.data)

    @property
    def epoch(self) -> int:
        return int(self.array[0])

    @epoch.setter
    def epoch(self, value: int) -> None:
        self.array[0] = value


class KeyedRandomResizedCropDecoder(RandomResizedCropRGBImageDecoder):
    """Decode + random-resized-crop to ``output_size`` (h, w), keyed by (seed, epoch, index).

    Output: uint8 ``[B, h, w, 3]`` (RGB, HWC). Same defaults as FFCV/torchvision.
    """

    def __init__(
        self,
        output_size: tuple[int, int],
        seed: int,
        cell: EpochCell,
        scale: tuple[float, float] = SCALE,
        ratio: tuple[float, float] = RATIO,
    ) -> None:
        super().__init__(output_size, scale=scale, ratio=ratio)
        self.seed, self.cell = int(seed), cell

    def generate_code(self) -> Callable:
        jpg = IMAGE_MODES["jpg"]
        read = self.memory_read
        loop = Compiler.get_iterator()
        decode_jpeg = Compiler.compile(imdecode)
        crop_resize = Compiler.compile(resize_crop)
        scale = np.array(self.scale, np.float64)
        ratio = np.array(self.ratio, np.float64)
        seed, address = self.seed, self.cell.address

        def decode(batch_indices, storage, metadata, storage_state):
            out, scratch = storage
            epoch = read_cell(address)
            for k in loop(len(batch_indices)):
                index = batch_indices[k]
                meta = metadata[index]
                data = read(meta["data_ptr"], storage_state)
                h, w = np.uint32(meta["height"]), np.uint32(meta["width"])
                if meta["mode"] == jpg:
                    pixels = scratch[k]
                    decode_jpeg(data, pixels, h, w, h, w, 0, 0, 1, 1, False, False)
                    image = pixels.reshape(-1)[: 3 * h * w].reshape(h, w, 3)
                else:
                    image = data.reshape(h, w, 3)
                top, left, ch, cw = keyed_crop(h, w, scale, ratio, seed, epoch, index)
                crop_resize(image, top, top + ch, left, left + cw, out[k])
            return out[: len(batch_indices)]

        decode.is_parallel = True
        return decode


def center_crop(height, width, _, ratio):
    """FFCV's centre crop ``(top, left, c, c)``, ``c = int(ratio * shorter side)``, but at
    least 1 px (compiled by FFCV's ``Compiler``)."""
    c = max(1, int(ratio * min(height, width)))
    return (height - c) // 2, (width - c) // 2, c, c


class CenterCropDecoder(CenterCropRGBImageDecoder):
    """Decode + centre crop of ``ratio`` of the shorter side (>= 1 px) resized to
    ``output_size``: uint8 ``[B, h, w, 3]``; FFCV's decoder otherwise (module docstring)."""

    @property
    def get_crop_generator(self) -> Callable:
        return center_crop


class KeyedRandomHorizontalFlip(Operation):
    """Flip RGB images ``[B, H, W, 3]`` left-right with probability ``prob``, keyed by
    (seed, epoch, index). Not in place: writes its own buffer.

    The copies are the byte loops of :mod:`ipmix_ops` (``mirror_k``, ``copy_box_k``): FFCV's
    own ``dst[k] = images[k, :, ::-1]`` / ``dst[k] = images[k]`` cost ~170 us per 224 px
    image in Numba, these ~45 us (same bytes)."""

    def __init__(self, seed: int, cell: EpochCell, prob: float = 0.5) -> None:
        super().__init__()
        self.seed, self.cell, self.prob = int(seed), cell, float(prob)

    def generate_code(self) -> Callable:
        loop = Compiler.get_iterator()
        seed, address, prob = self.seed, self.cell.address, self.prob

        def flip(images, dst, indices):
            epoch = read_cell(address)
            h, w = images.shape[1], images.shape[2]
            for k in loop(images.shape[0]):
                if keyed_flip(seed, epoch, indices[k], prob):
                    mirror_k(images[k], dst[k], 0.0, 0, 0, h, w)
                else:
                    copy_box_k(images[k], dst[k], 0, 0, h, w)
            return dst[: images.shape[0]]

        flip.is_parallel = True
        flip.with_indices = True
        return flip

    def declare_state_and_memory(self, previous_state: State) -> tuple[State, AllocationQuery]:
        if len(previous_state.shape) != 3 or previous_state.shape[2] != 3:
            raise ValueError(f"the flip needs RGB images [H, W, 3], got {previous_state.shape}")
        return (
            replace(previous_state, jit_mode=True),
            AllocationQuery(previous_state.shape, previous_state.dtype),
        )


class IPMixOp(Operation):
    """IPMix of the uint8 crop batch ``[B, S, S, 3]`` (not jitted; see the module docstring).

    Output: uint8 ``[B, S, S, 3]`` (one view) or, with ``cfg.jsd``, V = 3 views (view 0 the
    clean crop) declared to FFCV as ``[B, V, S, S, 3]`` but laid out **view-major** in that
    memory: ``[V, B, S, S, 3]``. Each view is then one contiguous NHWC batch, so the loader
    hands out channels-last views without copying them (the copies cost 0.16-0.20 ms per
    sample on the CPU); :class:`pipelines.contract.Finisher` reads the layout back with
    ``view_major=True``. Keys: ``(seed, epoch, index, view)`` as in ``ipmix_batch``.
    """

    def __init__(self, bank: np.ndarray, cfg: IPMixConfig, seed: int, cell: EpochCell) -> None:
        super().__init__()
        self.bank, self.cfg, self.seed, self.cell = bank, cfg, int(seed), cell
        self.lock = threading.Lock()  # an abandoned epoch's thread may still be running
        # An exception inside an FFCV op ends FFCV's loader thread silently and leaves the
        # consumer waiting forever; errors are kept here and re-raised by the loader.
        self.errors: list[Exception] = []

    def declare_state_and_memory(self, previous_state: State) -> tuple[State, AllocationQuery]:
        s, v = self.cfg.image_size, self.cfg.views
        if tuple(previous_state.shape) != (s, s, 3) or previous_state.dtype != np.uint8:
            raise ValueError(
                f"IPMixOp needs uint8 crops of {s}x{s}x3 (IPMixConfig.image_size), got "
                f"{previous_state.dtype} {previous_state.shape}"
            )
        shape = (s, s, 3) if v == 1 else (v, s, s, 3)
        state = replace(previous_state, jit_mode=False, shape=shape, dtype=np.dtype("u1"))
        return state, AllocationQuery(shape, np.dtype("u1"))

    def generate_code(self) -> Callable:
        cfg, bank, seed, cell, lock = self.cfg, self.bank, self.seed, self.cell, self.lock
        s, views, clean = cfg.image_size, cfg.views, int(cfg.jsd)
        icfg, _ = cfg.kernel_args()
        scratch = RenderScratch.new(s)  # private buffers: thread-safe

        def ipmix(images, dst, indices):
            b = images.shape[0]
            out = dst[:b].reshape(views, b, s, s, 3)  # view-major: see the class docstring
            with lock:
                try:
                    recs = sample_records(
                        cfg,
                        seed=seed,
                        epoch=cell.epoch,
                        indices=indices,
                        n_fractals=bank.shape[0],
                        fractal_size=bank.shape[1],
                        views=views - clean,
                        first_view=clean,
                    )
                    x = np.ascontiguousarray(images)
                    render_records_into(
                        x, bank, recs, icfg, out, scratch, clean_first=clean, view_major=True
                    )
                except Exception as e:  # raised in the consumer by FFCVLoader (see errors)
                    self.errors.append(e)
            return dst[:b]

        ipmix.with_indices = True
        return ipmix
