"""Hash of everything IPMix produces on the CPU: the proof that a refactor keeps behaviour.

Prints one SHA-256 per component and a total, for sampled records and rendered views (one
view and JSD, both presets) from the fast path, the Pillow reference, and every backend's
loader (``torch``, ``ffcv``, ``dali`` where they import) on a small ImageFolder of real
photos. Run it on two checkouts and compare::

    python benchmarks/output_hash.py            # ~1-2 min on 2 cores (Numba compiles)
    python benchmarks/output_hash.py --json out.json

Any difference in a line names the component that changed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

SEED, EPOCH = 11, 3
CASES = (("imagenet", 64, 72), ("cifar", 32, 36))  # (preset, image size, fractal size)


def _photos(size: int, n: int) -> np.ndarray:
    from PIL import Image
    from skimage import data

    names = ("astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field", "camera")
    out = []
    for i in range(n):
        img = getattr(data, names[i % len(names)])()
        if img.ndim == 2:
            img = np.stack([img] * 3, -1)
        img = img[..., :3]
        h, w = img.shape[:2]
        s = min(h, w)
        y0, x0 = (h - s) // 2 + (i * 7) % 13, (w - s) // 2
        img = np.ascontiguousarray(img[y0 : y0 + s - 13, x0 : x0 + s - 13])
        out.append(np.asarray(Image.fromarray(img).resize((size, size), Image.BILINEAR)))
    return np.stack(out)


def _digest(*arrays) -> str:
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(np.asarray(a))
        h.update(str((a.dtype.str, a.shape)).encode())
        h.update(a.tobytes())
    return h.hexdigest()[:16]


def ipmix_hashes() -> dict[str, str]:
    from ipmix_ops import IPMixConfig, ipmix_apply, ipmix_batch, reference, sample_records

    out = {}
    for preset, s, f in CASES:
        images = _photos(s, 12)
        bank = _photos(f, 5)
        idx = np.arange(12, dtype=np.int64) * 37 + 5
        for jsd in (False, True):
            cfg = IPMixConfig.preset(preset, image_size=s, jsd=jsd)
            name = f"{preset}-{'jsd' if jsd else 'one'}"
            views = cfg.views - int(jsd)
            recs = sample_records(
                cfg,
                seed=SEED,
                epoch=EPOCH,
                indices=idx,
                n_fractals=len(bank),
                fractal_size=f,
                views=views,
                first_view=int(jsd),
            )
            out[f"records/{name}"] = _digest(recs)
            out[f"fast_u8/{name}"] = _digest(ipmix_apply(images, bank, recs, cfg))
            out[f"fast_f32/{name}"] = _digest(
                ipmix_apply(images, bank, recs, cfg, dtype=np.float32)
            )
            out[f"batch/{name}"] = _digest(
                ipmix_batch(images, bank, cfg, seed=SEED, epoch=EPOCH, indices=idx)
            )
            ref = [
                reference.ipmix_record(images[b], bank[int(recs[b, v, 1])], cfg, recs[b, v])
                for b in range(6)
                for v in range(views)
            ]
            out[f"reference/{name}"] = _digest(*ref)
    return out


def _loader_digest(pipeline: str, data, bank, jsd: bool, output: str) -> str:
    from pipelines import build_loader

    loader = build_loader(
        pipeline,
        data,
        train=True,
        batch_size=8,
        image_size=32,
        fractals=bank,
        ipmix="imagenet",
        jsd=jsd,
        seed=SEED,
        num_workers=2 if pipeline != "torch" else 0,
        device="cpu",
        output=output,
        drop_last=False,
        order="sequential",
    )
    loader.set_epoch(EPOCH)
    parts = []
    for x, y in loader:
        for v in x if isinstance(x, tuple) else (x,):
            parts.append(v.contiguous().numpy())
        parts.append(y.numpy())
    return _digest(*parts)


def backend_hashes(tmp: Path) -> dict[str, str]:
    from PIL import Image

    root = tmp / "folder"
    photos = _photos(48, 24)
    for i, img in enumerate(photos):
        d = root / f"class{i % 3}"
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(d / f"img{i:03d}.png")
    bank = _photos(40, 4)
    out = {}
    backends = ["torch"]
    try:
        import ffcv  # noqa: F401

        backends.append("ffcv")
    except ImportError:
        print("output_hash: ffcv does not import, skipped", file=sys.stderr)
    try:
        import nvidia.dali  # noqa: F401

        backends.append("dali")
    except ImportError:
        print("output_hash: dali does not import, skipped", file=sys.stderr)
    for pipeline in backends:
        data = root
        if pipeline == "ffcv":
            try:
                from pipelines.datasets import write_beton
            except ImportError:
                from pipelines.datasets.beton import write_beton
            data = tmp / "set.beton"
            if not data.exists():
                write_beton(root, data, write_mode="raw", progress=False)
        for jsd in (False, True):
            for output in ("uint8", "float"):
                key = f"loader/{pipeline}-{'jsd' if jsd else 'one'}-{output}"
                out[key] = _loader_digest(pipeline, data, bank, jsd, output)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--json", type=Path, help="also write the hashes to this file")
    ap.add_argument("--no-backends", action="store_true", help="ipmix_ops only")
    args = ap.parse_args(argv)
    hashes = ipmix_hashes()
    if not args.no_backends:
        with tempfile.TemporaryDirectory() as tmp:
            hashes.update(backend_hashes(Path(tmp)))
    for k, v in hashes.items():
        print(f"{k:32s} {v}")
    total = hashlib.sha256(json.dumps(hashes, sort_keys=True).encode()).hexdigest()[:16]
    print(f"{'TOTAL':32s} {total}")
    if args.json:
        args.json.write_text(json.dumps({"hashes": hashes, "total": total}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
