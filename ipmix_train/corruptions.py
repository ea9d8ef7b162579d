"""ImageNet-C corruptions: the benchmark's constants, its folder layout, and corrupted copies
of a validation set generated once and cached on disk.

* :data:`CORRUPTIONS`: the 15 corruptions of the benchmark (Hendrycks & Dietterich, ICLR
  2019), in the benchmark's order; :data:`ALEXNET_ERR`: AlexNet's error on each (mean over
  the 5 severities), the mCE normaliser.
* :func:`find_imagenet_c`: the standard layout ``DIR/<corruption>/<severity 1-5>/<class>/*``.
* :func:`corrupted_set`: uint8 ``[N, S, S, 3]`` images -> every (corruption, severity)
  variant, made with the ``imagecorruptions`` package (PyPI ``imagecorruptions-imaug``) and
  cached as ``.npy`` files. A cache is written to a temporary folder, finished with a
  ``manifest.json`` and then renamed into place, so a reader sees a complete cache or none;
  a folder without a valid manifest, or with a file that disagrees with it, is reported
  (:class:`CacheError`) or regenerated, never used.

Each corrupted image is a function of ``(seed, corruption, severity, image index)``: the
package draws from NumPy's global RNG, which is re-seeded from that key before every image
(``glass_blur`` takes the key as its ``seed`` argument instead).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import warnings
from collections.abc import Sequence
from concurrent.futures import Executor
from pathlib import Path

import numpy as np
from tqdm import tqdm

CORRUPTIONS = (
    "gaussian_noise",
    "shot_noise",
    "impulse_noise",
    "defocus_blur",
    "glass_blur",
    "motion_blur",
    "zoom_blur",
    "snow",
    "frost",
    "fog",
    "brightness",
    "contrast",
    "elastic_transform",
    "pixelate",
    "jpeg_compression",
)
SEVERITIES = (1, 2, 3, 4, 5)

# AlexNet's top-1 error on each ImageNet-C corruption, averaged over the 5 severities: the
# published normaliser of the mean Corruption Error (D. Hendrycks and T. Dietterich,
# "Benchmarking Neural Network Robustness to Common Corruptions and Perturbations", ICLR
# 2019; the values distributed with github.com/hendrycks/robustness and used by AugMix's and
# IPMix's ImageNet evaluation).
ALEXNET_ERR = dict(
    zip(
        CORRUPTIONS,
        (
            0.886428,
            0.894468,
            0.922640,
            0.819880,
            0.826268,
            0.785948,
            0.798360,
            0.866816,
            0.826572,
            0.819324,
            0.564592,
            0.853204,
            0.646056,
            0.717840,
            0.606500,
        ),
    )
)

MANIFEST = "manifest.json"
CACHE_FORMAT = "ipmix-corruption-cache-v1"


class CacheError(RuntimeError):
    """A corruption cache that is incomplete or damaged."""


# ---------------------------------------------------------------------- ImageNet-C layout
def find_imagenet_c(root: str | os.PathLike) -> dict[str, dict[int, Path]]:
    """``{corruption: {severity: ImageFolder dir}}`` of an ImageNet-C tree.

    Layout: ``root/<corruption>/<severity>/<class>/<image>``. Corruption folders with other
    names (e.g. the 4 extra ones) are kept; a severity folder that is not 1-5 or holds no
    class folder with images raises ``ValueError`` naming it, and so does a root with no
    corruption folder at all.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"--imagenet-c {root}: no such directory")
    found: dict[str, dict[int, Path]] = {}
    for cdir in sorted(p for p in root.iterdir() if p.is_dir()):
        sev: dict[int, Path] = {}
        for sdir in sorted(p for p in cdir.iterdir() if p.is_dir()):
            if sdir.name not in {str(s) for s in SEVERITIES}:
                raise ValueError(f"{sdir}: expected severity folders 1-5, found {sdir.name!r}")
            if not any(_has_images(c) for c in sdir.iterdir() if c.is_dir()):
                raise ValueError(f"{sdir}: no <class>/<image> files inside")
            sev[int(sdir.name)] = sdir
        if sev:
            found[cdir.name] = sev
    if not found:
        raise ValueError(
            f"--imagenet-c {root}: no <corruption>/<severity 1-5>/<class>/<image> folders"
        )
    return found


def _has_images(folder: Path) -> bool:
    # the image files torchvision's ImageFolder (and so every loader here) reads; imported
    # here so that corruption workers (ipmix_train.corrupt_stream) start without pipelines
    from pipelines.datasets.folder import IMG_EXTENSIONS

    return any(p.suffix.lower() in IMG_EXTENSIONS for p in folder.iterdir())


# ---------------------------------------------------------------------- generation
def corrupt_images(
    images: np.ndarray, corruption: str, severity: int, seed: int = 0, start: int = 0
) -> np.ndarray:
    """``images`` uint8 ``[N, S, S, 3]`` with ``corruption`` at ``severity`` (new array).

    ``images[i]`` is image ``start + i`` of its set: it is corrupted after seeding NumPy's
    global RNG from ``(seed, corruption, severity, start + i)``, so a chunk of a set gets
    the same pixels as the whole set; the caller's global RNG state is restored after.
    """
    from imagecorruptions import corrupt

    if corruption not in CORRUPTIONS:
        raise ValueError(f"unknown corruption {corruption!r}; known: {', '.join(CORRUPTIONS)}")
    if severity not in SEVERITIES:
        raise ValueError(f"severity must be one of {SEVERITIES}, got {severity!r}")
    out = np.empty_like(images)
    state = np.random.get_state()  # noqa: NPY002 - the package uses the legacy global RNG
    try:
        for i, img in enumerate(images):
            key = _key(seed, corruption, severity, start + i)
            np.random.seed(key)  # noqa: NPY002
            # glass_blur alone draws from a seed argument (else a fresh default_rng)
            kw = {"seed": key} if corruption == "glass_blur" else {}
            res = np.asarray(corrupt(img, corruption_name=corruption, severity=severity, **kw))
            out[i] = np.clip(np.rint(res), 0, 255).astype(np.uint8)[..., :3]
    finally:
        np.random.set_state(state)  # noqa: NPY002
    return out


def _key(seed: int, corruption: str, severity: int, index: int) -> int:
    h = hashlib.sha256(f"{seed}/{corruption}/{severity}/{index}".encode()).digest()
    return int.from_bytes(h[:4], "little")


def _job(args: tuple[str, int, int, str]) -> tuple[str, int]:
    corruption, severity, seed, folder = args
    folder_p = Path(folder)
    images = np.load(folder_p / "clean.npy", mmap_mode="r")
    out = corrupt_images(np.asarray(images), corruption, severity, seed)
    np.save(folder_p / corruption / f"{severity}.npy", out)
    return corruption, severity


def _file_entry(path: Path) -> dict[str, object]:
    arr = np.load(path, mmap_mode="r")
    return {"shape": list(arr.shape), "bytes": path.stat().st_size}


def check_cache(folder: str | os.PathLike) -> dict:
    """The manifest of the cache ``folder``; :class:`CacheError` (naming the folder or file
    and the problem) when the manifest is missing or a file disagrees with it."""
    folder = Path(folder)
    mpath = folder / MANIFEST
    if not mpath.is_file():
        raise CacheError(f"{folder}: incomplete corruption cache (no {MANIFEST})")
    try:
        manifest = json.loads(mpath.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise CacheError(f"{mpath}: unreadable manifest ({e})") from e
    if not isinstance(manifest, dict) or manifest.get("format") != CACHE_FORMAT:
        raise CacheError(f"{mpath}: not a corruption cache manifest of {CACHE_FORMAT!r}")
    for rel, entry in manifest["files"].items():
        path = folder / rel
        if not path.is_file():
            raise CacheError(f"{path}: listed in {mpath} but missing")
        if path.stat().st_size != entry["bytes"]:
            raise CacheError(
                f"{path}: {path.stat().st_size} bytes, the manifest says {entry['bytes']} "
                "(truncated or overwritten)"
            )
    return manifest


def corrupted_set(
    cache_dir: str | os.PathLike,
    images: np.ndarray,
    labels: np.ndarray,
    *,
    corruptions: Sequence[str] = CORRUPTIONS,
    severities: Sequence[int] = SEVERITIES,
    seed: int = 0,
    workers: int = 1,
    regenerate: bool = True,
    progress: bool = True,
    source: str = "",
    pool: Executor | None = None,
    folder: Path | None = None,
) -> tuple[Path, dict]:
    """Every ``(corruption, severity)`` variant of ``images`` (uint8 ``[N, S, S, 3]``), cached.

    The cache folder is ``cache_dir/<key>``, the key a hash of the images, labels,
    corruptions, severities, seed and package version, so a changed input gets its own
    cache. Returns ``(folder, manifest)``; the arrays are ``folder/clean.npy``,
    ``folder/labels.npy`` and ``folder/<corruption>/<severity>.npy`` (load with
    :func:`load_variant`). A damaged or half-written cache is regenerated with a warning
    (``regenerate=True``) or raises :class:`CacheError`. ``pool``: run the variants on this
    executor (else a process pool of ``workers`` when ``workers > 1``); ``folder``: the
    :func:`cache_folder` of these arguments when the caller has it already (it hashes the
    whole set).
    """
    from importlib.metadata import version

    images = np.ascontiguousarray(images, dtype=np.uint8)
    labels = np.ascontiguousarray(labels, dtype=np.int64)
    if images.ndim != 4 or images.shape[-1] != 3 or len(images) != len(labels) or not len(images):
        raise ValueError(
            f"need uint8 images [N, S, S, 3] and N labels, N > 0; got {images.shape} and "
            f"{labels.shape}"
        )
    pkg = version("imagecorruptions-imaug")
    folder = folder or cache_folder(cache_dir, images, labels, corruptions, severities, seed)
    root = folder.parent
    if folder.exists():
        try:
            return folder, check_cache(folder)
        except CacheError as e:
            if not regenerate:
                raise
            warnings.warn(f"{e}; regenerating it", stacklevel=2)
            shutil.rmtree(folder)
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / f".{folder.name}.{os.getpid()}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir()
        np.save(tmp / "clean.npy", images)
        np.save(tmp / "labels.npy", labels)
        for c in corruptions:
            (tmp / c).mkdir()
        jobs = [(c, s, seed, str(tmp)) for c in corruptions for s in severities]
        bar = tqdm(total=len(jobs), desc="corrupting", unit="set", disable=not progress)
        if pool is not None:
            for _ in pool.map(_job, jobs):
                bar.update(1)
        elif workers > 1:
            from concurrent.futures import ProcessPoolExecutor

            with ProcessPoolExecutor(workers) as own:
                for _ in own.map(_job, jobs):
                    bar.update(1)
        else:
            for job in jobs:
                _job(job)
                bar.update(1)
        bar.close()
        files = ["clean.npy", "labels.npy"]
        files += [f"{c}/{s}.npy" for c in corruptions for s in severities]
        manifest = {
            "format": CACHE_FORMAT,
            "source": source,
            "images": len(images),
            "image_size": int(images.shape[1]),
            "corruptions": list(corruptions),
            "severities": list(severities),
            "seed": seed,
            "package": f"imagecorruptions-imaug=={pkg}",
            "files": {f: _file_entry(tmp / f) for f in files},
        }
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
        try:
            tmp.rename(folder)
        except OSError:  # another process finished the same cache first
            if not folder.exists():
                raise
            shutil.rmtree(tmp, ignore_errors=True)
            return folder, check_cache(folder)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return folder, manifest


def cache_folder(
    cache_dir: str | os.PathLike, images: np.ndarray, labels: np.ndarray, *key: object
) -> Path:
    """Where :func:`corrupted_set` keeps the cache of ``images`` (uint8 ``[N, S, S, 3]``) and
    ``labels`` for ``key = (corruptions, severities, seed)``: ``cache_dir/<hash>``, a hash of
    the arrays, the key and the package version."""
    from importlib.metadata import version

    corruptions, severities, seed = key
    images = np.ascontiguousarray(images, dtype=np.uint8)
    pkg = version("imagecorruptions-imaug")
    h = hashlib.sha256()
    for part in (
        images.tobytes(),
        np.asarray(labels, np.int64).tobytes(),
        repr(images.shape).encode(),
    ):
        h.update(part)
    h.update(json.dumps([list(corruptions), list(severities), seed, pkg]).encode())
    return Path(cache_dir) / f"c{images.shape[1]}px-n{len(images)}-{h.hexdigest()[:16]}"


def cache_bytes(images: int, image_size: int, variants: int) -> int:
    """Bytes of a :func:`corrupted_set` cache: raw uint8 clean images plus ``variants``
    corrupted copies (``.npy`` headers left out)."""
    return images * image_size * image_size * 3 * (1 + variants)


def load_variant(
    folder: str | os.PathLike, corruption: str, severity: int, mmap: bool = False
) -> np.ndarray:
    """The cached uint8 ``[N, S, S, 3]`` images of one ``(corruption, severity)`` (``mmap``:
    memory-mapped, read when used)."""
    return np.load(Path(folder) / corruption / f"{severity}.npy", mmap_mode="r" if mmap else None)
