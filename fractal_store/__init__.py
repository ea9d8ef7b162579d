"""Fractal pictures for IPMix: Numba renderers, seeded samplers, and a verified store.

IPMix mixes each training image with one synthetic fractal (docs/algorithm.md §8). This package
renders a diverse set once and stores it so that loaders can load the whole bank into
memory in seconds:

* :mod:`~fractal_store.escape_time` -- orbit-trap Mandelbrot, Julia, burning-ship and
  multibrot (z^p + c) fractals, six trap shapes, random palettes and views;
  :mod:`~fractal_store.ifs` -- chaos-game IFS fractals on textured backgrounds. Both are
  pure Numba functions of a JSON-serialisable parameter record (parallel ``prange`` and
  serial GIL-free variants with identical pixels); :mod:`~fractal_store.reference` is a
  vectorised NumPy version of the escape-time renderer, used as oracle and baseline.
* :mod:`~fractal_store.sampling` -- records drawn from ``default_rng([seed, index])``,
  degenerate candidates (near-uniform, near-empty, noise, grey) rejected by image
  statistics on a 64 px probe render.
* :mod:`~fractal_store.store` / :mod:`~fractal_store.reader` -- the store file.
* :mod:`~fractal_store.build`, :mod:`~fractal_store.folder_import` -- writing stores from
  rendered fractals or from a folder of existing pictures.

Why an uncompressed ZIP of lossless WebPs: ZIP is the most widely readable container
there is (``unzip -l store.zip`` lists it, ``unzip -p store.zip header.json`` shows the
header, ``sha256sum -c`` checks it after extraction, and every language has a reader);
lossless WebP is a standard, exact, per-image compressed encoding (about 0.31 of raw
bytes for these fractals, against 0.41 for PNG) that Pillow decodes with the GIL
released at the same speed as PNG. PNG (``encoding="png"``) and JPEG (lossy) remain
available, and stores of format version 1 (PNG or JPEG) still load. Storing members
uncompressed means every image is a contiguous byte range of the file that can be
memory-mapped and handed as-is to any decoder, e.g. NVIDIA DALI's ``fn.decoders.image``
through ``fn.external_source`` (or the extracted ``images/`` folder through
``fn.readers.file``); DALI decodes WebP, PNG and JPEG. ZIP's own CRC-32 is complemented
by a SHA-256 per image, checked on every decode. Decoding costs ~2.5 ms per 256 px image
on a slow core whatever the lossless codec; ``load_bank(cache_dir=...)`` keeps a
verified raw copy that loads ~10x faster.

Typical use::

    import fractal_store
    fractal_store.build_store("fractals.zip", count=1000, size=256, seed=0)
    with fractal_store.open("fractals.zip") as store:
        bank = store.load_bank()          # uint8 [N, 256, 256, 3]
        img, rec = store[0], store.params(0)
        assert (fractal_store.render(rec, store.size) == img).all()
"""

from .build import build_store, contact_sheet, format_summary, write_preview
from .folder_import import import_folder
from .reader import FractalStore, open_store
from .sampling import FAMILIES, draw, image_stats, rejection_reason, render, sample_params
from .store import FORMAT_NAME, FORMAT_VERSION, FractalStoreError

open = open_store  # noqa: A001 - ``fractal_store.open(path)`` is the documented entry point

__all__ = [
    "FAMILIES",
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "FractalStore",
    "FractalStoreError",
    "build_store",
    "contact_sheet",
    "draw",
    "format_summary",
    "image_stats",
    "import_folder",
    "open",
    "open_store",
    "rejection_reason",
    "render",
    "sample_params",
    "write_preview",
]
