"""ImageFolder -> FFCV .beton, the ffcv-imagenet way, with bad inputs handled.

Fields (ffcv-imagenet's ``write_imagenet.py`` conventions): ``image``
(``RGBImageField(write_mode, max_resolution, jpeg_quality, compress_probability)``: the
longer side is shrunk to ``max_resolution`` with OpenCV's area filter) and ``label``
(``IntField``, the class index of torchvision's ``ImageFolder``: sorted folder names).
Samples keep ImageFolder's order, so index ``i`` of the .beton is ImageFolder's index ``i``
when no file is skipped.

Two passes. *Check*: every candidate file is decoded in full on a thread pool (Pillow
releases the GIL) and converted to RGB; files that cannot be (empty, not an image,
truncated, corrupt, too large) are skipped and listed with the reason, or, with
``strict=True``, the run stops with :class:`BadImageError` naming the first one in order.
The same goes for pictures outside the size rule below (reason ``too small`` or
``too elongated``).
*Write*: FFCV's ``DatasetWriter`` (worker processes) encodes the good files into a
temporary file next to ``out``, renamed to ``out`` only on success.

RGB conversion (the same as torchvision's ``pil_loader``, so a .beton and an ImageFolder
loader see the same pixels): grey, CMYK, palette and YCbCr images are converted by Pillow;
alpha is dropped; 16/32-bit grey is scaled to 8 bits first.
"""

from __future__ import annotations

import functools
import io
import os
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from fractal_store.store import default_workers

from .folder import (
    BadImageError,
    BetonError,
    DataDirError,
    load_rgb,
    probe,
    scan_image_folder,
    size_reason,
)

WRITE_MODES = ("smart", "raw", "jpg", "proportion")
SMART_THRESHOLD = 96 * 96 * 3  # smart mode: JPEG when the raw pixels take more bytes
MIN_PAGE = 8 << 20  # FFCV's default page size (8 MiB)
MIN_SIDE = 16  # default: shortest stored side kept (px), see write_beton

__all__ = [
    "BadImageError",
    "BetonError",
    "BetonSummary",
    "DataDirError",
    "WRITE_MODES",
    "format_summary",
    "load_rgb",
    "read_beton",
    "write_beton",
]


@dataclass
class BetonSummary:
    """What :func:`write_beton` wrote: counts per class, bytes, skipped and ignored files
    (``(path, reason)``), the source Pillow modes converted to RGB, time and settings."""

    out: str
    images: int
    classes: list[str]
    per_class: dict[str, int]
    bytes: int
    skipped: list[tuple[str, str]]
    ignored: list[tuple[str, str]]
    source_modes: dict[str, int]
    seconds: float
    settings: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def skipped_counts(self) -> dict[str, int]:
        """Skipped files per kind of reason (``"too small"``, ``"not an image"``, ...)."""
        return dict(Counter(why.split(" (")[0] for _, why in self.skipped))


def format_summary(s: BetonSummary, max_listed: int = 20) -> str:
    """A human-readable report of a :class:`BetonSummary`."""
    lines = [
        f"wrote {s.images} images of {len(s.classes)} classes to {s.out} "
        f"({s.bytes / 1e6:.1f} MB, {s.seconds:.1f}s)",
        "settings: " + ", ".join(f"{k}={v}" for k, v in s.settings.items()),
        "source modes: " + ", ".join(f"{m} {n}" for m, n in s.source_modes.items()),
        "images per class:",
    ]
    lines += [f"  {c:<24} {n}" for c, n in s.per_class.items()]
    for title, items in (("skipped", s.skipped), ("ignored", s.ignored)):
        kinds = s.skipped_counts.items() if title == "skipped" else ()
        kinds = ", ".join(f"{k} {n}" for k, n in kinds)
        lines.append(f"{title}: {len(items)} file(s)" + (f" ({kinds})" if kinds else ""))
        lines += [f"  {p}: {why}" for p, why in items[:max_listed]]
        if len(items) > max_listed:
            lines.append(f"  ... and {len(items) - max_listed} more")
    empty = [c for c, n in s.per_class.items() if n == 0]
    if empty:
        lines.append(f"warning: {len(empty)} class(es) without images: {', '.join(empty)}")
    return "\n".join(lines)


class _CheckedImages:
    """The dataset FFCV's writer processes read: ``(uint8 [H, W, 3], label)`` per index.

    A file that fails now although it passed the check (changed meanwhile) must not raise:
    an exception in a writer process makes FFCV wait forever. It is logged to ``log`` and
    a 1x1 placeholder is written; :func:`write_beton` then fails the run.
    """

    def __init__(self, samples: list[tuple[str, int]], log: str, seed: int) -> None:
        self.samples, self.log, self.seed = samples, log, seed

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> tuple[np.ndarray, int]:
        path, label = self.samples[i]
        # FFCV's "proportion" mode draws JPEG-or-raw from the legacy global RNG: key it
        np.random.seed((self.seed * 1_000_003 + i) % 2**32)  # noqa: NPY002
        try:
            image, _ = load_rgb(path)
        except Exception as e:  # noqa: BLE001 - see the class docstring
            with open(self.log, "a") as f:
                f.write(f"{path}\t{type(e).__name__}: {e}\n")
            image = np.zeros((1, 1, 3), np.uint8)
        return image, label


def _check(
    samples: list[tuple[str, int]],
    workers: int,
    chunk: int,
    strict: bool,
    progress: bool,
    rule: tuple[int | None, int, float | None],
) -> tuple[list[tuple[str, int]], list[tuple[str, str]], Counter, int]:
    """Decode every file: (good samples, skipped (path, reason), source modes, max raw bytes).
    ``rule``: ``(max_resolution, min_side, max_aspect)`` of :func:`size_reason`."""
    from tqdm import tqdm

    good, skipped, modes, biggest = [], [], Counter(), 0
    chunks = [samples[i : i + chunk] for i in range(0, len(samples), chunk)]
    bar = tqdm(total=len(samples), desc="checking", unit="img", disable=not progress)
    with ThreadPoolExecutor(max(1, workers)) as pool:
        try:
            for part, results in zip(chunks, pool.map(lambda c: [probe(p) for p, _ in c], chunks)):
                for (path, label), (reason, mode, (h, w)) in zip(part, results):
                    if reason is None:
                        reason = size_reason(h, w, *rule)
                    if reason is not None:
                        if strict:
                            raise BadImageError(path, reason)
                        skipped.append((path, reason))
                    else:
                        good.append((path, label))
                        modes[mode] += 1
                        biggest = max(biggest, h * w * 3)
                bar.update(len(part))
        finally:
            pool.shutdown(cancel_futures=True)
            bar.close()
    return good, skipped, modes, biggest


def write_beton(
    data_dir: str | os.PathLike,
    out: str | os.PathLike,
    *,
    max_resolution: int | None = 256,
    jpeg_quality: int = 90,
    compress_probability: float = 0.5,
    write_mode: str = "smart",
    num_workers: int | None = None,
    chunk_size: int = 100,
    subset: int | None = None,
    min_side: int = MIN_SIDE,
    max_aspect: float | None = None,
    strict: bool = False,
    seed: int = 0,
    progress: bool = True,
) -> BetonSummary:
    """Write the ImageFolder tree ``data_dir`` (``<class>/<image>``) to the .beton ``out``.

    ``max_resolution``: longest side kept (None: unchanged). ``write_mode``: ``"smart"``
    (raw pixels for images up to 96x96, JPEG above), ``"raw"``, ``"jpg"``, or
    ``"proportion"`` (JPEG with ``compress_probability``, chosen per index from ``seed``).
    ``subset``: keep N files evenly spread over the whole tree (every class represented;
    ffcv-imagenet's ``subset`` takes the first N, i.e. the first classes only).

    Size rule: a picture is skipped (reason ``too small``) when its shorter side *as
    stored*, i.e. after the shrink to ``max_resolution`` (FFCV's arithmetic), is below
    ``min_side`` px, and (reason ``too elongated``) when its aspect ratio exceeds
    ``max_aspect`` (None: no limit of its own; with ``max_resolution`` the ``min_side`` rule
    already leaves out aspects above ``max_resolution / min_side``, 16:1 by default). Why
    skip rather than pad or upscale: FFCV's centre crop is ``int(224/256 * shorter side)``
    px, empty for a 1 px side (an OpenCV assertion that aborts the process), and below
    ~16 px both crops are a blur of a few pixels scaled up to the training size: the
    picture no longer shows its class. Upscaling would fabricate such a blur, padding
    would add borders for the crops to learn; either keeps a label on pixels that do not
    show it. ``min_side >= 2`` is the floor at which every crop of both loaders is valid.
    Skipped files are listed with the reason (in ImageFolder order ``.beton`` index ``i``
    is then no longer ImageFolder's ``i``).

    Raises :class:`DataDirError` (missing/empty folder), :class:`BadImageError` (``strict``)
    or :class:`BetonError`; nothing is left at ``out`` (or its temporary name) on failure.
    """
    t0 = time.perf_counter()
    if write_mode not in WRITE_MODES:
        raise ValueError(f"write_mode must be one of {WRITE_MODES}, got {write_mode!r}")
    if max_resolution is not None and not 8 <= max_resolution <= 65535:
        raise ValueError(f"max_resolution must be in [8, 65535] or None, got {max_resolution}")
    if not 1 <= jpeg_quality <= 100:
        raise ValueError(f"jpeg_quality must be in [1, 100], got {jpeg_quality}")
    if not 0.0 <= compress_probability <= 1.0:
        raise ValueError(f"compress_probability must be in [0, 1], got {compress_probability}")
    if isinstance(min_side, bool) or not isinstance(min_side, int) or min_side < 2:
        raise ValueError(
            f"min_side must be an integer >= 2 (a 1 px side leaves FFCV's centre crop "
            f"empty), got {min_side!r}"
        )
    if max_resolution is not None and min_side > max_resolution:
        raise ValueError(f"min_side {min_side} > max_resolution {max_resolution}")
    if max_aspect is not None and not max_aspect >= 1.0:
        raise ValueError(f"max_aspect must be >= 1 or None, got {max_aspect}")
    if chunk_size < 1 or (subset is not None and subset < 1):
        raise ValueError(f"chunk_size and subset must be >= 1, got {chunk_size}, {subset}")
    workers = num_workers or default_workers()
    out = Path(out)
    classes, samples, ignored = scan_image_folder(data_dir)
    if subset is not None and subset < len(samples):
        keep = np.linspace(0, len(samples) - 1, subset).round().astype(int)
        samples = [samples[i] for i in keep]
    rule = (max_resolution, min_side, max_aspect)
    good, skipped, modes, biggest = _check(samples, workers, chunk_size, strict, progress, rule)
    if not good:
        listed = "".join(f"\n  {p}: {why}" for p, why in skipped[:20])
        raise BetonError(f"{data_dir}: none of the {len(samples)} image files is usable:{listed}")
    # isort: off
    from ..ffcv import _import  # noqa: F401  (keeps torch's thread count)
    from ffcv import writer as ffcv_writer

    # isort: on
    from ffcv.fields import IntField, RGBImageField  # imported late: checks fail fast

    if max_resolution is not None:
        biggest = min(biggest, max_resolution * max_resolution * 3)
    page = max(MIN_PAGE, 1 << int(biggest + (1 << 20)).bit_length())
    image_field = RGBImageField(
        write_mode=write_mode,
        max_resolution=max_resolution,
        smart_threshold=SMART_THRESHOLD,
        jpeg_quality=jpeg_quality,
        compress_probability=compress_probability,
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.partial")
    try:
        with tempfile.TemporaryDirectory() as logdir:
            log = os.path.join(logdir, "failures.tsv")
            writer = ffcv_writer.DatasetWriter(
                str(tmp), {"image": image_field, "label": IntField()}, page, workers
            )
            bar = ffcv_writer.tqdm  # FFCV's writer has its own bar and no switch for it
            ffcv_writer.tqdm = bar if progress else functools.partial(bar, disable=True)
            try:
                writer.from_indexed_dataset(_CheckedImages(good, log, seed), chunksize=chunk_size)
            finally:
                ffcv_writer.tqdm = bar
            if os.path.exists(log):
                path, reason = open(log).readline().rstrip("\n").split("\t", 1)
                raise BetonError(f"{path}: became unreadable while writing ({reason})")
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    per_class = Counter(classes[label] for _, label in good)
    return BetonSummary(
        out=str(out),
        images=len(good),
        classes=list(classes),
        per_class={c: per_class.get(c, 0) for c in classes},
        bytes=out.stat().st_size,
        skipped=skipped,
        ignored=ignored,
        source_modes=dict(sorted(modes.items())),
        seconds=time.perf_counter() - t0,
        settings=dict(
            max_resolution=max_resolution,
            jpeg_quality=jpeg_quality,
            write_mode=write_mode,
            compress_probability=compress_probability,
            subset=subset,
            min_side=min_side,
            max_aspect=max_aspect,
            num_workers=workers,
        ),
    )


def beton_labels(path: str | os.PathLike) -> np.ndarray:
    """int64 labels ``[N]`` of a .beton written by ``tools/write_beton.py``, read from its
    metadata (no image decoded). ValueError naming the file when it is not such a file."""
    # isort: off
    from ..ffcv import _import  # noqa: F401  (before ffcv: keeps torch's threads)
    from ffcv.reader import Reader as BetonReader

    # isort: on
    try:
        reader = BetonReader(os.fspath(path))
    except Exception as e:  # FFCV raises assorted errors for a file that is not a .beton
        raise ValueError(f"{path}: not a readable .beton ({type(e).__name__}: {e})") from e
    if reader.field_names[:2] != ["image", "label"]:
        raise ValueError(f"{path}: fields {reader.field_names}, expected ['image', 'label']")
    return np.array(reader.metadata["f1"], np.int64).reshape(-1)  # a copy: writable


def read_beton(path: str | os.PathLike) -> Iterator[tuple[np.ndarray, int]]:
    """Every sample of a .beton written by :func:`write_beton`, in order:
    ``(uint8 [H, W, 3] RGB, label)``. JPEG samples are decoded with Pillow. For checks and
    tools; training reads through :mod:`pipelines.ffcv.loader`."""
    # isort: off
    from ..ffcv import _import  # noqa: F401  (keeps torch's thread count)
    from ffcv.reader import Reader
    # isort: on

    reader = Reader(os.fspath(path))
    if reader.field_names[:2] != ["image", "label"]:
        raise BetonError(f"{path}: fields {reader.field_names}, expected ['image', 'label']")
    sizes = dict(zip(reader.alloc_table["ptr"].tolist(), reader.alloc_table["size"].tolist()))
    data = np.memmap(os.fspath(path), np.uint8, mode="r")
    meta = reader.metadata
    for i in range(reader.num_samples):
        img, label = meta["f0"][i], int(meta["f1"][i])
        ptr = int(img["data_ptr"])
        buf = data[ptr : ptr + sizes[ptr]]
        h, w = int(img["height"]), int(img["width"])
        if img["mode"] == 0:  # jpg
            with Image.open(io.BytesIO(buf.tobytes())) as im:
                yield np.asarray(im.convert("RGB")), label
        else:
            yield np.array(buf).reshape(h, w, 3), label
