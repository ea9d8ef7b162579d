"""The FFCV side of ``ipmix_device="cuda"``: the batch's dataset indices next to its labels.

The train image pipeline is then the plain one (keyed crop, keyed flip, ``ToTensor``,
``ToDevice``: uint8 NHWC crops ``[B, S, S, 3]`` on the device, no IPMix on the loader
threads), and the label pipeline is ``IntDecoder``, :class:`LabelAndIndex`, ``ToTensor``:
int64 ``[B, 2]`` on the host, column 0 the label, column 1 the sample's dataset index (the
key of its IPMix records). :func:`split_labels` moves the labels to the device and keeps
the indices on the host, where :class:`pipelines.device_ipmix.DeviceIPMix` samples the
records. The compiled op only copies two integers per sample.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

# isort: off
from . import _import  # noqa: F401  (before any ffcv import: keeps torch's threads)

# isort: on
import numpy as np
import torch
from ffcv.fields.basics import IntDecoder
from ffcv.pipeline.allocation_query import AllocationQuery
from ffcv.pipeline.compiler import Compiler
from ffcv.pipeline.operation import Operation
from ffcv.pipeline.state import State
from ffcv.transforms import ToTensor


class LabelAndIndex(Operation):
    """int64 labels ``[B, 1]`` -> int64 ``[B, 2]``: ``(label, dataset index)`` per sample."""

    def generate_code(self) -> Callable:
        loop = Compiler.get_iterator()

        def label_and_index(labels, dst, indices):
            for k in loop(labels.shape[0]):
                dst[k, 0] = labels[k, 0]
                dst[k, 1] = indices[k]
            return dst[: labels.shape[0]]

        label_and_index.is_parallel = True
        label_and_index.with_indices = True
        return label_and_index

    def declare_state_and_memory(self, previous_state: State) -> tuple[State, AllocationQuery]:
        if tuple(previous_state.shape) != (1,):
            raise ValueError(f"LabelAndIndex needs scalar labels [1], got {previous_state.shape}")
        state = replace(previous_state, jit_mode=True, shape=(2,), dtype=np.dtype("<i8"))
        return state, AllocationQuery((2,), np.dtype("<i8"))


def indexed_label_pipeline() -> list[Operation]:
    """Labels and dataset indices: int64 ``[B, 2]`` on the host (FFCV's ring buffer)."""
    return [IntDecoder(), LabelAndIndex(), ToTensor()]


def split_labels(pairs: torch.Tensor, device: torch.device) -> tuple[torch.Tensor, np.ndarray]:
    """``(labels int64 [B] on device, indices int64 [B] host copy)`` from ``[B, 2]``."""
    labels = pairs[:, 0].to(device, non_blocking=False)
    if labels.data_ptr() == pairs.data_ptr():  # CPU device: copy out of the ring buffer
        labels = labels.clone()
    return labels, pairs[:, 1].numpy().copy()


__all__ = ["LabelAndIndex", "indexed_label_pipeline", "split_labels"]
