"""The training step's input side: device-side normalisation, synthetic batches, the CUDA
prefetcher and the data-wait clock.

:class:`DevicePrefetcher` fetches each batch on a side CUDA stream, so that the loader's
device work for batch ``i + 1`` (the host-to-device copy from pinned memory, GPU IPMix,
the views' layout) runs beside step ``i``; on the CPU it is the identity.

:class:`StepClock` measures the data-wait fraction of an asynchronous GPU (the definition
is in the README, "Training log"): per step, the time the compute stream waits for its
input, from CUDA events recorded on that stream, no host synchronisation. On the CPU the
step is synchronous and the clock is the host's.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from typing import Any

import torch

from pipelines.contract import EpochLoader, Normalise


class Normalizer:
    """uint8 NCHW batches (or ``(clean, a, b)`` views) -> one float32 batch on the device,
    ``(x / 255 - mean) / std``, views concatenated along the batch; channels-last on
    request. Float batches pass through (already normalised by the loader)."""

    def __init__(self, mean: tuple[float, ...], std: tuple[float, ...], channels_last: bool):
        self.normalise = Normalise(mean, std)
        self.channels_last = channels_last

    def __call__(self, images: torch.Tensor | tuple[torch.Tensor, ...]) -> torch.Tensor:
        x = torch.cat(images, dim=0) if isinstance(images, (tuple, list)) else images
        if x.dtype == torch.uint8:
            x = self.normalise(x)
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x


class SyntheticLoader(EpochLoader):
    """``steps`` identical random uint8 batches made once on the device: the loader-free
    ceiling of the training step. Same contract as :func:`pipelines.build_loader`."""

    starts_mid_epoch = True

    def __init__(
        self,
        steps: int,
        batch_size: int,
        image_size: int,
        views: int,
        classes: int,
        device: torch.device,
        seed: int = 0,
    ) -> None:
        g = torch.Generator().manual_seed(seed)
        shape = (batch_size, 3, image_size, image_size)
        imgs = [torch.randint(0, 256, shape, dtype=torch.uint8, generator=g) for _ in range(views)]
        imgs = [x.to(device).contiguous(memory_format=torch.channels_last) for x in imgs]
        self.images = tuple(imgs) if views > 1 else imgs[0]
        self.labels = torch.randint(0, classes, (batch_size,), generator=g).to(device)
        self.steps = steps

    def __len__(self) -> int:
        return self.steps

    def __iter__(self) -> Iterator[tuple[Any, torch.Tensor]]:
        _, start = self._start_epoch()
        for _ in range(start, self.steps):
            yield self.images, self.labels


def to_device(batch: Any, device: torch.device) -> Any:
    """``batch`` (tensors, or tuples/lists of them) with every host tensor copied to
    ``device`` (CUDA: from pinned memory, ``non_blocking``, on the current stream);
    tensors already there and non-tensors unchanged (the same objects)."""
    if isinstance(batch, (tuple, list)):
        return type(batch)(to_device(x, device) for x in batch)
    if not isinstance(batch, torch.Tensor) or batch.device == device or device.type != "cuda":
        return batch
    host = batch if batch.is_pinned() else batch.pin_memory()
    return host.to(device, non_blocking=True)


def _record(batch: Any, stream: Any) -> None:
    """Mark every CUDA tensor of ``batch`` as used on ``stream``: the caching allocator then
    keeps its memory from the side stream until the work queued there so far is done."""
    if isinstance(batch, (tuple, list)):
        for x in batch:
            _record(x, stream)
    elif isinstance(batch, torch.Tensor) and batch.is_cuda:
        batch.record_stream(stream)


class DevicePrefetcher:
    """Iterable over ``loader``'s batches, fetched on a side stream when ``device`` is CUDA.

    Each ``next`` runs the loader's code for the next batch under the side stream (its
    host tensors are copied there, pinned and ``non_blocking``; see :func:`to_device`),
    then makes the consumer's current stream wait for the side stream (``wait_stream``)
    and marks the batch's tensors used on the consumer's stream (``record_stream``). The
    trainer has no per-step host synchronisation, so the host runs ahead of the GPU and
    the copy it queues for batch ``i + 1`` overlaps step ``i`` still running on the GPU;
    no batch is held back (a loader's ring buffer sees one batch in use, as without it).

    The identity (the loader's own batches, in order) on the CPU and for loaders with
    ``prefetches_to_device = True`` (FFCV: it copies on its own streams and guards its
    ring buffer with events on the consumer's stream, which a side stream would defeat).
    Closing the iterator closes the loader's (FFCV stops its thread).
    """

    def __init__(self, loader: Iterable, device: torch.device) -> None:
        self.loader, self.device = loader, device
        self.side_stream = device.type == "cuda" and not getattr(
            loader, "prefetches_to_device", False
        )

    def __len__(self) -> int:
        return len(self.loader)  # type: ignore[arg-type]

    def __iter__(self) -> Iterator[Any]:
        it = iter(self.loader)
        if not self.side_stream:
            yield from it
            return
        main = torch.cuda.current_stream(self.device)
        side = torch.cuda.Stream(self.device)
        side.wait_stream(main)  # after the work queued before the pass (model, fractal bank)
        try:
            while True:
                with torch.cuda.stream(side):
                    try:
                        batch = to_device(next(it), self.device)
                    except StopIteration:
                        return
                main.wait_stream(side)
                _record(batch, main)
                yield batch
        finally:
            close = getattr(it, "close", None)
            if close is not None:
                close()


class StepClock:
    """Data wait and step time of one epoch's steps, without host synchronisation.

    Call :meth:`ready` when a batch has been handed over (before the step's first kernel)
    and :meth:`done` after the step's last (the optimiser step). CUDA: both record events on
    the current stream; the wait of step ``i > 0`` is the event time from ``done`` of step
    ``i - 1`` to ``ready`` of step ``i``: how long the stream sat idle because its input was
    not there yet (not handed over by the host, or its copy on the side stream not done).
    The span runs from the first ``ready`` to the last ``done``. Finished events are read at
    :meth:`drain` (call it where the host synchronises anyway) and at :meth:`totals`.
    CPU: the host's time between ``done`` and ``ready``, and the host's span.
    """

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"
        self.wait_s = 0.0
        self._events: list[tuple[Any, Any]] = []  # (done of step i-1, ready of step i)
        self._first: Any = None
        self._last_done: Any = None

    def _mark(self) -> Any:
        if self.cuda:
            event = torch.cuda.Event(enable_timing=True)
            event.record()
            return event
        return time.perf_counter()

    def ready(self) -> None:
        mark = self._mark()
        if self._first is None:
            self._first = mark
        elif self.cuda:
            self._events.append((self._last_done, mark))
        else:
            self.wait_s += mark - self._last_done

    def done(self) -> None:
        self._last_done = self._mark()

    def drain(self) -> None:
        """Add up the waits whose events have completed (no synchronisation)."""
        while self._events and self._events[0][1].query():
            start, end = self._events.pop(0)
            self.wait_s += start.elapsed_time(end) / 1e3

    def totals(self) -> tuple[float, float]:
        """``(wait seconds, span seconds)``; on CUDA the last event is waited for."""
        if self._first is None or self._last_done is None:
            return 0.0, 0.0
        if not self.cuda:
            return self.wait_s, self._last_done - self._first
        self._last_done.synchronize()
        self.drain()
        return self.wait_s, self._first.elapsed_time(self._last_done) / 1e3
