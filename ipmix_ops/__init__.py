"""IPMix defined once: config and presets, the op table, per-sample parameter sampling,
Numba kernels (the fast path) and a Pillow reference that mirrors the authors' code.

Quick start::

    from ipmix_ops import IPMixConfig, ipmix_batch
    cfg = IPMixConfig.preset("imagenet", jsd=False)
    out = ipmix_batch(images, bank, cfg, seed=0, epoch=0, indices=idx)   # uint8 [B,1,S,S,3]
"""

from .batch import ipmix_apply, ipmix_batch
from .config import IPMixConfig
from .mixing import mix_add, mix_multiply, mix_random_elems, mix_random_pixels, to_uint8
from .optable import MIX_NAMES, OP_NAMES
from .sampling import Record, sample_record, sample_records
from .transform import IPMix, IPMixDataset

__all__ = [
    "IPMix",
    "IPMixDataset",
    "IPMixConfig",
    "MIX_NAMES",
    "OP_NAMES",
    "Record",
    "ipmix_apply",
    "ipmix_batch",
    "mix_add",
    "mix_multiply",
    "mix_random_elems",
    "mix_random_pixels",
    "sample_record",
    "sample_records",
    "to_uint8",
]
