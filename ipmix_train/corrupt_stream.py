"""Corrupting a validation set on the fly: streamed batch by batch over worker processes,
with an estimate of the cost measured before the work starts.

Nothing is cached: each clean batch of a :class:`~ipmix_train.evalsets.ValSet` is cut into
chunks of :data:`CHUNK` images, one job corrupts a chunk with one corruption at every
severity (:func:`ipmix_train.corruptions.corrupt_images`, keyed by each image's index in the
whole set, so the pixels do not depend on the batch size or the number of workers), and the
consumer scores the corrupted chunks and drops them. At most ``window`` jobs are in flight,
so memory stays at a few chunks per worker whatever the size of the set.

Workers are processes forked from a forkserver (the corruptions are single-threaded Python,
NumPy, SciPy and scikit-image); ``workers <= 1`` runs the jobs in the calling process.
:func:`measure` times every (corruption, severity) on a few sample images of the set, and
:class:`Estimate` extrapolates that to the whole set (hours, and the bytes a cache would take).
"""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Executor, Future, ProcessPoolExecutor, wait
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import numpy as np

from .corruptions import CORRUPTIONS, SEVERITIES, corrupt_images

if TYPE_CHECKING:  # workers import this module: keep it free of torch and pipelines
    from .evalsets import ValSet

CHUNK = 16  # images per job: one job = one chunk x one corruption x every severity
WARMUP_SIDE = 32  # each variant runs once on a 32 px crop before it is timed


class InlineExecutor(Executor):
    """An executor that runs each job at once in the calling process (``workers <= 1``)."""

    def submit(self, fn, /, *args, **kwargs) -> Future:
        f: Future = Future()
        try:
            f.set_result(fn(*args, **kwargs))
        except BaseException as e:  # handed to the caller by Future.result()
            f.set_exception(e)
        return f


def open_pool(workers: int) -> Executor:
    """``workers`` processes, or an :class:`InlineExecutor` for ``workers <= 1``.

    The processes are forked from a fresh forkserver (never from this process, whose
    loader threads may hold locks), which imports the corruption code once for all."""
    if workers <= 1:
        return InlineExecutor()
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["__main__", __name__, "imagecorruptions"])
    return ProcessPoolExecutor(workers, mp_context=ctx)


def check_names(corruptions: Sequence[str], severities: Sequence[int]) -> None:
    """ValueError naming an unknown corruption or severity, or an empty list."""
    bad = [c for c in corruptions if c not in CORRUPTIONS]
    if bad or not corruptions:
        raise ValueError(
            f"--corruptions: unknown {bad or 'none given'}; known: {', '.join(CORRUPTIONS)}"
        )
    badsev = [s for s in severities if s not in SEVERITIES]
    if badsev or not severities:
        raise ValueError(f"--severities must be from {SEVERITIES}, got {list(severities)}")


# ---------------------------------------------------------------------- jobs (in workers)
def _corrupt_chunk(
    images: np.ndarray, start: int, corruption: str, severities: tuple[int, ...], seed: int
) -> list[np.ndarray]:
    return [corrupt_images(images, corruption, s, seed, start=start) for s in severities]


def _time_corruption(
    images: np.ndarray, corruption: str, severities: tuple[int, ...], seed: int
) -> dict[int, float]:
    side = min(WARMUP_SIDE, images.shape[1])
    for s in severities:  # imports, and glass_blur's Numba compilation (per argument types)
        corrupt_images(images[:1, :side, :side], corruption, s, seed)
    out = {}
    for s in severities:
        t = time.perf_counter()
        corrupt_images(images, corruption, s, seed)
        out[s] = (time.perf_counter() - t) / len(images)
    return out


# ---------------------------------------------------------------------- the estimate
@dataclass(frozen=True)
class Estimate:
    """The cost of corrupting ``images`` images of ``image_size`` px: measured seconds per
    image for each corruption and severity (on ``sample`` images) times the set size."""

    images: int
    image_size: int
    workers: int
    sample: int
    seconds_per_image: dict[str, dict[int, float]]
    cache_bytes: int = 0  # 0: streamed, nothing written

    @property
    def variants(self) -> int:
        return sum(len(v) for v in self.seconds_per_image.values())

    @property
    def cpu_hours(self) -> float:
        per_image = sum(sum(v.values()) for v in self.seconds_per_image.values())
        return self.images * per_image / 3600

    @property
    def hours(self) -> float:
        """Wall-clock hours at best (perfect scaling over the workers)."""
        return self.cpu_hours / max(1, self.workers)

    def lines(self) -> list[str]:
        """What to print before the work starts."""
        per = {c: sum(v.values()) / len(v) for c, v in self.seconds_per_image.items()}
        slow = max(per, key=per.get)
        n_c = len(self.seconds_per_image)
        n_s = self.variants // max(1, n_c)
        store = (
            f"cache: {self.cache_bytes / 1e9:,.1f} GB of raw uint8 arrays on disk"
            if self.cache_bytes
            else "streamed: each corrupted batch is scored and dropped, nothing is written"
        )
        cpu = "" if self.cpu_hours >= 1 else f" ({_duration(self.cpu_hours)} of CPU time)"
        return [
            f"corrupting on the fly: {self.images:,} images x {n_c} corruptions x {n_s} "
            f"severities = {self.images * self.variants:,} corrupted {self.image_size} px images",
            f"measured on {self.sample} sample image(s): "
            f"{sum(per.values()) * n_s:.3f} s per image for all variants; slowest {slow} "
            f"{per[slow]:.3f} s per image per severity",
            f"estimate: {self.cpu_hours:,.2f} CPU-hours{cpu}, {_duration(self.hours)} on "
            f"{self.workers} worker process{'es' if self.workers > 1 else ''} (at best),"
            " corrupting only: decoding and the model's forward passes come on top",
            store,
        ]

    def to_dict(self) -> dict:
        d = asdict(self)
        d["seconds_per_image"] = {
            c: {str(s): t for s, t in v.items()} for c, v in self.seconds_per_image.items()
        }
        return {**d, "variants": self.variants, "cpu_hours": self.cpu_hours, "hours": self.hours}


def _duration(hours: float) -> str:
    """``2.50 h``, ``12.0 min`` or ``3.4 s``."""
    if hours >= 1:
        return f"{hours:,.2f} h"
    return f"{hours * 60:.1f} min" if hours * 60 >= 1 else f"{hours * 3600:.1f} s"


def measure(
    sample: np.ndarray,
    images: int,
    corruptions: Sequence[str],
    severities: Sequence[int],
    *,
    pool: Executor,
    workers: int,
    seed: int = 0,
    cache_bytes: int = 0,
) -> Estimate:
    """Time each corruption at each severity on ``sample`` (uint8 ``[k, S, S, 3]``, one job
    per corruption on ``pool``) and extrapolate to ``images`` images."""
    if not len(sample):
        raise ValueError("need at least one sample image to measure")
    sev = tuple(severities)
    jobs = {c: pool.submit(_time_corruption, sample, c, sev, seed) for c in corruptions}
    return Estimate(
        images=int(images),
        image_size=int(sample.shape[1]),
        workers=int(workers),
        sample=len(sample),
        seconds_per_image={c: f.result() for c, f in jobs.items()},
        cache_bytes=int(cache_bytes),
    )


# ---------------------------------------------------------------------- the stream
@dataclass
class OnTheFly:
    """Corrupt a val set while it is read: ``corruptions`` x ``severities`` on ``pool``."""

    corruptions: tuple[str, ...]
    severities: tuple[int, ...]
    pool: Executor
    seed: int = 0
    window: int = 2  # jobs in flight at most
    chunk: int = CHUNK  # images per job

    def stream(
        self, valset: ValSet, batch_size: int, read_workers: int = 1
    ) -> Iterator[tuple[tuple[str, int] | None, int, np.ndarray, np.ndarray]]:
        """``(variant, start, images, labels)``: every clean batch (variant ``None``), and
        every chunk of it under every ``(corruption, severity)``, in completion order."""
        pending: dict[Future, tuple[str, int, np.ndarray]] = {}
        for start, images, labels in valset.batches(batch_size, read_workers):
            yield None, start, images, labels
            for lo in range(0, len(images), self.chunk):
                chunk = np.ascontiguousarray(images[lo : lo + self.chunk])
                for c in self.corruptions:
                    while len(pending) >= max(1, self.window):
                        yield from self._finished(pending)
                    job = self.pool.submit(
                        _corrupt_chunk, chunk, start + lo, c, self.severities, self.seed
                    )
                    pending[job] = (c, start + lo, labels[lo : lo + self.chunk])
        while pending:
            yield from self._finished(pending)

    def _finished(
        self, pending: dict
    ) -> Iterator[tuple[tuple[str, int], int, np.ndarray, np.ndarray]]:
        done, _ = wait(list(pending), return_when=FIRST_COMPLETED)
        for f in done:
            c, start, labels = pending.pop(f)
            for s, images in zip(self.severities, f.result()):
                yield (c, s), start, images, labels
