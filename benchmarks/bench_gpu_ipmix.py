#!/usr/bin/env python
"""IPMix on the GPU (``ipmix_ops.gpu``, Triton): images/s and GPU ms per batch.

    python benchmarks/bench_gpu_ipmix.py [--sizes 160,192,224,256] [--batches 64,128,256,512]
    python benchmarks/bench_gpu_ipmix.py --quick      # 224 px, batch 256 only
    python benchmarks/bench_gpu_ipmix.py --dry-run    # tiny config in Triton's interpreter (CPU)
    python benchmarks/bench_gpu_ipmix.py --compile-check   # kernels -> sm_90 cubin, no GPU

For one view and JSD (clean + 2 views) at each size and batch: ``ipmix_batch`` end to end
(host sampling + tables + copies + kernels; wall time with a final synchronise) and the GPU
time of the same calls (CUDA events), beside the roofline: the bytes the kernels move per batch
(counted from the batch's own records, see :func:`bytes_per_batch`) / the device's memory
bandwidth measured by a device-to-device copy in the same run. The CPU fast path
(``ipmix_ops.ipmix_batch`` on one thread, batch 64) is measured in the same run, per core.
Without CUDA it says so and exits 0 (``--dry-run`` still runs: it checks the kernels against
the fast path in the interpreter so the script cannot rot).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import int_list, print_table, write_result  # noqa: E402
from ipmix_train.runinfo import run_metadata  # noqa: E402


def bytes_per_batch(recs: np.ndarray, k: int, t: int, size: int, clean: int) -> int:
    """Bytes moved by the kernels for records [B, V, L], in images of S*S*3 bytes: each
    executed chain step reads and writes one uint8 image (patch steps counted as whole
    images: an upper bound; warp taps and stats reads not counted), a chain's last step
    instead of writing reads x and read-writes the int16 accumulator (+4), the write pass
    reads x (+ the accumulator, 2 per IPMix view) and writes every output view, and the
    accumulator is zeroed once (2 per IPMix view)."""
    from ipmix_ops.gpu import layout

    img = size * size * 3
    itab = layout.prepare(recs, k, t, size, True, _table())[0]
    depth = itab[:, :, 0, layout.I_DEPTH]
    steps = int(depth.sum())
    chains = int((depth > 0).sum())
    bv = recs.shape[0] * recs.shape[1]
    nout = recs.shape[0] * (recs.shape[1] + clean)
    return img * (2 * steps + 4 * chains + 2 * nout + 2 * bv + 2 * bv)


def _table():
    from ipmix_ops.sampling import mask_table

    return mask_table()


def copy_bandwidth(torch, nbytes: int = 1 << 30) -> float:
    """Device memory bandwidth (bytes/s) of a device-to-device copy (read + write)."""
    a = torch.empty(nbytes, dtype=torch.uint8, device="cuda")
    b = torch.empty_like(a)
    b.copy_(a)
    torch.cuda.synchronize()
    e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    e0.record()
    for _ in range(10):
        b.copy_(a)
    e1.record()
    torch.cuda.synchronize()
    return 2 * nbytes * 10 / (e0.elapsed_time(e1) / 1e3)


def bench_gpu(torch, gpu, cfg, images, bank, repeats: int) -> dict:
    """Wall and GPU (event) ms per batch of ``gpu.ipmix_batch`` (fresh records each call)."""
    from ipmix_ops.sampling import sample_records

    b = images.shape[0]
    idx = np.arange(b)
    out = torch.empty(
        (b, cfg.views, cfg.image_size, cfg.image_size, 3), dtype=torch.uint8, device="cuda"
    )
    for e in range(2):  # warm-up: compiles the kernels
        gpu.ipmix_batch(images, bank, cfg, seed=0, epoch=e, indices=idx, out=out)
    torch.cuda.synchronize()
    e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    t0 = time.perf_counter()
    e0.record()
    for e in range(repeats):
        gpu.ipmix_batch(images, bank, cfg, seed=0, epoch=10 + e, indices=idx, out=out)
    e1.record()
    torch.cuda.synchronize()
    wall = (time.perf_counter() - t0) / repeats
    gpu_ms = e0.elapsed_time(e1) / repeats
    views = cfg.views - int(cfg.jsd and cfg.views > 1)
    keys = dict(seed=0, epoch=10, indices=idx, views=views, first_view=int(cfg.jsd))
    recs = sample_records(cfg, n_fractals=bank.shape[0], fractal_size=bank.shape[1], **keys)
    t0 = time.perf_counter()
    for _ in range(3):
        sample_records(cfg, n_fractals=bank.shape[0], fractal_size=bank.shape[1], **keys)
        gpu.layout.prepare(recs, cfg.k, cfg.t, cfg.image_size, True, _table())
    host_ms = (time.perf_counter() - t0) / 3 * 1e3
    nbytes = bytes_per_batch(recs, cfg.k, cfg.t, cfg.image_size, int(cfg.jsd))
    return {"wall_ms": wall * 1e3, "gpu_ms": gpu_ms, "host_ms": host_ms, "bytes": nbytes}


def cpu_per_core(cfg, size: int) -> float:
    """The Numba fast path on one thread: images/s (batch 64)."""
    from benchmarks.bench_ipmix import bench_fast, real_images

    images = real_images(64, size)
    bank = real_images(8, cfg.fractal_size, seed=1)
    return 1.0 / bench_fast(images, bank, cfg, 1, 3)


def dry_run() -> int:
    """Run a 32 px JSD batch through the kernels in Triton's interpreter, check it."""
    os.environ["TRITON_INTERPRET"] = "1"
    import torch

    from benchmarks.bench_ipmix import real_images
    from ipmix_ops import IPMixConfig, gpu, ipmix_batch

    cfg = IPMixConfig.preset("cifar", image_size=32)
    images, bank = real_images(2, 32), real_images(2, cfg.fractal_size, seed=1)
    t0 = time.perf_counter()
    got = gpu.ipmix_batch(
        torch.from_numpy(images), torch.from_numpy(bank), cfg, seed=0, epoch=0, indices=np.arange(2)
    ).numpy()
    ref = ipmix_batch(images, bank, cfg, seed=0, epoch=0, indices=np.arange(2))
    d = np.abs(got.astype(int) - ref.astype(int))
    frac = float((d > 1).mean())
    print(
        f"dry run (interpreter, cifar 32 px JSD, batch 2): {time.perf_counter() - t0:.1f} s, "
        f"max |gpu - fast path| = {d.max()}, {frac:.4%} of bytes off by > 1"
    )
    return 0 if frac <= 0.01 else 1


_PTR_TYPES = {"acc": "*i16", "itab": "*i32", "statlut": "*i32", "table": "*i32", "ftab": "*fp32",
              "luts": "*fp32", "dtab": "*fp64"}  # fmt: skip
_CONSTS = {"FIRST": False, "WRAP": True, "TH": 8, "TW": 64, "BLOCK": 1024, "CLEAN": 1,
           "AS_FLOAT": False}  # fmt: skip


def compile_check(arch: int = 90) -> int:
    """Compile every kernel to a cubin for ``sm_<arch>`` with Triton's compiler (no GPU
    needed); fails if the PTX has a fused multiply-add (the exact float32 order needs none)."""
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource, compile

    from ipmix_ops.gpu import kernels

    for fn in (kernels.step_kernel, kernels.stats_kernel, kernels.write_kernel):
        sig, consts = {}, {}
        for prm in fn.params:
            if prm.is_constexpr:
                sig[prm.name], consts[prm.name] = "constexpr", _CONSTS[prm.name]
            elif prm.name in ("images", "bank", "bufs", "out8", "out"):
                sig[prm.name] = "*u8"
            else:
                sig[prm.name] = _PTR_TYPES.get(prm.name, "i32")
        t0 = time.perf_counter()
        k = compile(ASTSource(fn=fn, signature=sig, constexprs=consts),
                    target=GPUTarget("cuda", arch, 32),
                    options=dict(num_warps=4, enable_fp_fusion=False))  # fmt: skip
        fma = k.asm["ptx"].count("fma.rn.f32")
        print(f"{fn.__name__}: sm_{arch} cubin {len(k.asm['cubin'])} bytes, "
              f"{time.perf_counter() - t0:.1f} s, float32 fma in PTX: {fma}")  # fmt: skip
        if fma:
            return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--sizes", type=int_list, default=[160, 192, 224, 256])
    p.add_argument("--batches", type=int_list, default=[64, 128, 256, 512])
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--bank", type=int, default=1000, help="fractals in the bank (device)")
    p.add_argument("--quick", action="store_true", help="224 px, batch 256 only")
    p.add_argument("--dry-run", action="store_true", help="tiny run in the interpreter (CPU)")
    p.add_argument("--compile-check", action="store_true", help="compile for sm_90, no GPU")
    p.add_argument("--out", help="JSON path (default benchmarks/results/gpu_ipmix-<time>.json)")
    args = p.parse_args(argv)
    if args.dry_run:
        return dry_run()
    if args.compile_check:
        return compile_check()
    import torch

    if not torch.cuda.is_available():
        print("bench_gpu_ipmix: no CUDA GPU on this machine; the GPU figures are unmeasured")
        return 0
    from benchmarks.bench_ipmix import real_images
    from ipmix_ops import IPMixConfig, gpu

    sizes, batches = ([224], [256]) if args.quick else (args.sizes, args.batches)
    bw = copy_bandwidth(torch)
    rows = []
    for size in sizes:
        base = IPMixConfig.preset("imagenet", image_size=size)
        photos = torch.from_numpy(real_images(64, size)).cuda()
        fr = real_images(16, base.fractal_size, seed=1)
        bank = torch.from_numpy(fr[np.arange(args.bank) % len(fr)]).cuda()
        for jsd in (False, True):
            cfg = base.replace(jsd=jsd)
            cpu = cpu_per_core(cfg, size)
            for b in batches:
                images = photos[torch.arange(b, device="cuda") % photos.shape[0]].contiguous()
                r = bench_gpu(torch, gpu, cfg, images, bank, args.repeats)
                rows.append(
                    {
                        "size": size,
                        "batch": b,
                        "mode": "jsd" if jsd else "one view",
                        "img/s": round(b / (r["wall_ms"] / 1e3)),
                        "gpu ms/batch": round(r["gpu_ms"], 3),
                        "host ms/batch": round(r["host_ms"], 3),
                        "roofline img/s": round(b / (r["bytes"] / bw)),
                        "MB/batch": round(r["bytes"] / 1e6, 1),
                        "cpu img/s/core": round(cpu),
                    }
                )
                print_table(rows[-1:], list(rows[-1]))
    print_table(rows, list(rows[0]))
    payload = {"meta": run_metadata("torch", "triton"), "bandwidth_GBs": bw / 1e9, "rows": rows}
    print("wrote", write_result("gpu_ipmix", payload, args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
