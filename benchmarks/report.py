#!/usr/bin/env python
"""Regenerate the README's performance block and the plots from the benchmark JSON files.

    python benchmarks/report.py                  # newest JSON per kind -> README + plots
    python benchmarks/report.py --results DIR --readme README.md --plots benchmarks/plots
    python benchmarks/report.py --print          # print the block, write nothing

Reads the newest ``<kind>-<YYYYMMDD-HHMMSS>.json`` per kind in ``--results`` (kinds:
``pipelines``, ``dali``, ``dali_gpu``, ``ipmix``, ``ops``, ``fractals``; ``suite`` files of
``run_all.py`` are not results), builds Markdown tables and PNG plots, and replaces the text
between ``<!-- bench:begin -->`` and ``<!-- bench:end -->`` in the README; nothing else in
the README changes. Every number comes from a JSON file, quoted with its file name and
command. A garbled or incomplete file is an error that names the file.

Cores per GPU: ``ceil(R / v / r)`` for a GPU that trains ResNet-50 at R img/s, a loader that
delivers r samples/s per core and v images per sample through the network (1 for one view,
3 for JSD: clean + 2 views), assuming linear scaling with cores at the measured per-core rate.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"
RESULT_NAME = re.compile(r"^(?P<kind>[a-z_]+)-(?P<stamp>\d{8}-\d{6})\.json$")
KINDS = ("pipelines", "dali", "dali_gpu", "ipmix", "ops", "fractals")
# ResNet-50 training rates, img/s through the network (mixed precision, channels_last).
GPUS = (("A100", 3000), ("H100", 5000), ("H100", 7000))
IMAGES_PER_SAMPLE = {"off": 1, "one view": 1, "JSD": 3}
MODES = ("off", "one view", "JSD")
PIPELINES = ("torch (Pillow IPMix)", "FFCV, JPEG .beton", "FFCV, proportion .beton")
PIPELINES += ("FFCV, JPEG .beton, 256 px", "DALI CPU", "DALI GPU")
# bench_pipelines' .beton kinds (the row's data: ".beton <kind>") -> pipeline name
BETON_PIPELINE = {"jpg": PIPELINES[1], "prop": PIPELINES[2], "jpg256": PIPELINES[3]}


class ReportError(Exception):
    """A results file is missing, garbled or incomplete (the message names it)."""


@dataclass(frozen=True)
class Result:
    """One benchmark JSON file."""

    kind: str
    path: Path
    data: dict

    def need(self, *keys: str):
        """``data[k0][k1]...``, or a :class:`ReportError` naming the file and the key."""
        node = self.data
        for k in keys:
            if not isinstance(node, dict) or k not in node:
                raise ReportError(f"{self.path}: missing key {'.'.join(keys)!r}")
            node = node[k]
        return node

    @property
    def meta(self) -> dict:
        """Command, git SHA, time, CPU, cores, GPU, versions (older layouts mapped too)."""
        if "meta" in self.data:
            m = self.data["meta"]
        else:  # early fractals files: fields at the top level
            m = {**self.data, **self.data.get("machine", {}), "time_utc": self.data.get("time")}
        if "command" not in m:
            raise ReportError(f"{self.path}: missing key 'meta.command'")
        return m


def load_result(path: Path) -> Result:
    """Read one results file; errors name the file."""
    match = RESULT_NAME.match(path.name)
    if not match:
        raise ReportError(f"{path}: not a results file name (<kind>-YYYYMMDD-HHMMSS.json)")
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError as err:
        raise ReportError(f"{path}: no such file") from err
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ReportError(f"{path}: not valid JSON ({err})") from err
    if not isinstance(data, dict):
        raise ReportError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return Result(match["kind"], path, data)


def newest_results(results_dir: Path, files: list[Path] | None = None) -> dict[str, Result]:
    """The newest file per kind (by the time stamp in its name), or the given ``files``."""
    if files is None:
        if not results_dir.is_dir():
            raise ReportError(f"{results_dir}: no such results directory")
        newest: dict[str, tuple[str, Path]] = {}
        for path in results_dir.glob("*.json"):
            m = RESULT_NAME.match(path.name)
            if m and m["kind"] in KINDS and m["stamp"] >= newest.get(m["kind"], ("",))[0]:
                newest[m["kind"]] = (m["stamp"], path)
        files = [p for _, p in newest.values()]
    results = {r.kind: r for r in map(load_result, files)}
    if not results:
        raise ReportError(f"{results_dir}: no benchmark results (run benchmarks/run_all.py)")
    return results


# ---------------------------------------------------------------- numbers from the JSONs


def _mode(label: str) -> str:
    head = label.split(" (")[0].strip()
    return {"1 view": "one view"}.get(head, head)


def _pipeline(kind: str, row: dict) -> str:
    if kind == "pipelines":
        if row["pipeline"] == "torch":
            return PIPELINES[0]
        kind = row.get("data", "").split()[-1]
        if kind not in BETON_PIPELINE:
            raise KeyError(f"unknown .beton kind {kind!r}")
        return BETON_PIPELINE[kind]
    return "DALI GPU" if kind == "dali_gpu" else "DALI CPU"


def loader_rows(results: dict[str, Result]) -> list[dict]:
    """Every loader measurement as {pipeline, mode, workers, rate (samples/s/core), ms, file}."""
    out = []
    for kind in ("pipelines", "dali", "dali_gpu"):
        if kind not in results:
            continue
        res = results[kind]
        default_workers = res.data.get("workers", res.data.get("threads", 1))
        for row in res.need("rows"):
            try:
                out.append(
                    {
                        "pipeline": _pipeline(kind, row),
                        "mode": _mode(row["IPMix"]),
                        "workers": int(row.get("workers", row.get("threads", default_workers))),
                        # CPU-time based where measured (counts every thread and worker)
                        "rate": float(row.get("img/cpu-s", row["img/s/core"])),
                        "ms": float(row.get("cpu ms/img", row["ms/img/core"])),
                        "file": res.path.name,
                    }
                )
            except (KeyError, TypeError, ValueError) as err:
                raise ReportError(f"{res.path}: bad row {row!r} ({err!r})") from err
    return out


def per_core(rows: list[dict]) -> list[dict]:
    """Per pipeline and mode at the fewest workers measured (ideally 1): the rate, ms/image,
    the IPMix-off cost (decode + crop + hand-off) and IPMix = the difference, same run."""
    out = []
    for name in PIPELINES:
        mine = [r for r in rows if r["pipeline"] == name]
        if not mine:
            continue
        w = min(r["workers"] for r in mine)
        by_mode = {r["mode"]: r for r in mine if r["workers"] == w}
        base = by_mode.get("off")
        for mode in MODES:
            if mode in by_mode:
                r = by_mode[mode]
                ipmix = None if base is None or mode == "off" else r["ms"] - base["ms"]
                out.append({**r, "base_ms": base["ms"] if base else None, "ipmix_ms": ipmix})
    return out


def cores_needed(rate_per_core: float, gpu_img_s: float, images_per_sample: int) -> int:
    """CPU cores to feed a GPU at ``gpu_img_s`` images/s, linear scaling per core."""
    return math.ceil(gpu_img_s / images_per_sample / rate_per_core)


# ---------------------------------------------------------------- Markdown


def table(header: list[str], rows: list[list]) -> str:
    """A Markdown table (numbers formatted with thousands separators)."""

    def cell(v) -> str:
        if v is None:
            return "–"
        if isinstance(v, float):
            return f"{v:,.0f}" if abs(v) >= 100 else f"{v:.2f}".rstrip("0").rstrip(".")
        return f"{v:,}" if isinstance(v, int) else str(v)

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in r) + " |" for r in rows]
    return "\n".join(lines)


def _src(res: Result) -> str:
    return f"`{res.path.name}`, `{res.meta['command']}`"


def _ipmix_cell(ms: float | None):
    """IPMix ms; a negative difference (IPMix-on run faster than off) is timing noise."""
    return f"{ms:.2f} (noise)" if ms is not None and ms < 0 else ms


def section_loaders(results: dict[str, Result], rows: list[dict]) -> list[str]:
    pc = per_core(rows)
    if not pc:
        return ["No loader results yet (`python benchmarks/run_all.py --only pipelines,dali`)."]
    gpu_cols = [f"{g} {n / 1000:g}k img/s" for g, n in GPUS]
    cores = [
        [r["pipeline"], r["mode"], r["rate"]]
        + [cores_needed(r["rate"], n, IMAGES_PER_SAMPLE[r["mode"]]) for _, n in GPUS]
        for r in pc
    ]
    split = [
        [r["pipeline"], r["mode"], r["workers"], r["rate"], r["ms"], r["base_ms"]]
        + [_ipmix_cell(r["ipmix_ms"])]
        for r in pc
    ]
    srcs = "; ".join(_src(results[k]) for k in ("pipelines", "dali", "dali_gpu") if k in results)
    return [
        "### CPU cores per GPU",
        "",
        "Cores needed to feed one GPU training ResNet-50 (A100 ≈ 3k img/s, H100 ≈ 5–7k "
        "img/s), from the per-core rates below: `ceil(R / v / r)` for a GPU at R img/s, "
        "r samples/s per core and v images per sample through the network (1; 3 for JSD: "
        "clean + 2 views, so the GPU asks for R/3 samples/s). Assumes linear scaling with "
        "cores at the rate measured on this CPU (see Scaling) and nothing else on those cores.",
        "",
        table(["pipeline", "IPMix", "samples/s/core", *gpu_cols], cores),
        "",
        "### Loaders per core and per image",
        "",
        "Per core = per CPU-second: the CPU time of every thread and worker process of the "
        "loader (FFCV/DALI threads, Numba's threads, DataLoader processes and the consuming "
        "main thread) divided into the samples delivered, at the fewest workers measured "
        "(files without CPU times: wall-clock rate per nominal worker). ms/img = CPU ms per "
        "sample (a JSD sample is clean + 2 views); decode + crop = the "
        "IPMix-off cost (it includes the hand-off to torch, which these backends do not time "
        f"apart); IPMix = the difference, from the same run. Sources: {srcs}.",
        "",
        "Data: ImageNet-like 500x375 JPEGs (q90). torch and DALI read the files; the FFCV "
        "files hold them as JPEG q90 (JPEG .beton), as ffcv-imagenet's 50% JPEG / 50% raw "
        "mix (proportion .beton), or as JPEG with the longer side shrunk to 256 px, "
        "`tools/write_beton.py`'s default (256 px).",
        "",
        table(
            ["pipeline", "IPMix", "workers", "img/s/core", "ms/img", "decode+crop ms", "IPMix ms"],
            split,
        ),
        "",
        "![ms per image](benchmarks/plots/loaders_ms_per_image.png)",
        "![cores per GPU](benchmarks/plots/cores_per_gpu.png)",
    ]


def section_ipmix(res: Result) -> list[str]:
    rows = res.need("rows")
    many = [k for k in rows[0] if re.fullmatch(r"fast \d+-thread img/s", k)]
    many = next((k for k in many if k != "fast 1-thread img/s"), None)
    body = [
        [r["mode"], r["reference img/s/core"], r["fast 1-thread img/s"], r.get(many)]
        + [r["speed-up per core (1 thread)"]]
        for r in rows
    ]
    head = ["mode", "Pillow reference img/s/core", "fast path, 1 thread img/s"]
    head += [
        f"fast path, {many.split()[1].replace('-', ' ')}s img/s"
        if many
        else "fast path, all threads"
    ]
    head += ["speed-up per core (1 thread)"]
    out = [
        "### IPMix alone",
        "",
        f"{res.data.get('size', '?')} px, batch {res.data.get('batch', '?')}, imagenet preset "
        f"(k=3, t=3), real photos ({_src(res)}):",
        "",
        table(head, body),
    ]
    if res.data.get("cold_compile_s"):
        out += ["", f"Cold JIT compile + first call: {res.data['cold_compile_s']:.0f} s."]
    return out


def section_scaling(results: dict[str, Result], rows: list[dict]) -> list[str]:
    """Size / batch / thread sweeps of the fast path, and loaders at several core counts."""
    out = []
    scale = results["ipmix"].data.get("scaling") or [] if "ipmix" in results else []
    for axis in ("size", "batch", "threads"):
        pts = sorted({r[axis] for r in scale if r["axis"] == axis})
        if not pts:
            continue
        val = {(r[axis], r["mode"]): r for r in scale if r["axis"] == axis}
        col = "img/s" if axis == "threads" else "ms/img/core"
        body = [[p] + [val.get((p, m), {}).get(col) for m in ("one view", "JSD")] for p in pts]
        what = "img/s" if axis == "threads" else "ms per image, 1 thread"
        out += [table([axis, f"one view {what}", f"JSD {what}"], body), ""]
    if scale:
        out.insert(0, f"IPMix fast path ({_src(results['ipmix'])}):\n")
    counts = sorted({r["workers"] for r in rows})
    multi = [
        (name, mode)
        for name in PIPELINES
        for mode in MODES
        if len({r["workers"] for r in rows if (r["pipeline"], r["mode"]) == (name, mode)}) > 1
    ]
    if multi:
        rate = {(r["pipeline"], r["mode"], r["workers"]): r["rate"] * r["workers"] for r in rows}
        body = [[n, m] + [rate.get((n, m, w)) for w in counts] for n, m in multi]
        out += ["Loaders, img/s by cores (workers):", ""]
        out += [
            table(["pipeline", "IPMix", *(f"{w} core{'s' * (w > 1)}" for w in counts)], body),
            "",
        ]
    if not out:
        return []
    return ["### Scaling", "", *out, "![scaling](benchmarks/plots/scaling.png)"]


def section_ops(res: Result) -> list[str]:
    body = [
        [f"{r['op']} {r['param']:g}", r["pillow_us"], r["numba_us"], r["speedup"]]
        for r in res.need("rows")
    ]
    return [
        "### Per image op",
        "",
        f"µs per {res.data.get('size', '?')}² image, one thread; Pillow includes the array "
        f"conversions ({_src(res)}):",
        "",
        table(["op", "Pillow µs", "Numba µs", "speed-up"], body),
    ]


def section_fractals(res: Result) -> list[str]:
    render, store = res.need("render"), res.need("store")
    body = [
        [fam, r["per_core_per_s"], r["all_cores_per_s"], r.get("numba_vs_numpy")]
        for fam, r in render.items()
    ]
    jpeg = store["jpeg_ratio"] if "jpeg_ratio" in store else store["jpeg90_ratio"]
    sizes = f"PNG {store['png_ratio']:.2f}, JPEG q90 {jpeg:.2f}"
    loads = f"{store.get('bank_png_per_s_1_threads', 0):,.0f} PNG"
    if "webp_ratio" in store:  # format 2: lossless WebP is the default codec
        sizes = f"lossless WebP (default) {store['webp_ratio']:.3f}, " + sizes
        loads = f"{store['bank_webp_per_s_1_threads']:,.0f} WebP, " + loads
    if "bank_npy_cache_per_s_1_threads" in store:
        loads += f", {store['bank_npy_cache_per_s_1_threads']:,.0f} from the .npy cache"
    cold = res.data.get("jit", {}).get("cold_compile_all_kernels_s")
    compile_note = (
        f" Cold JIT compile of all renderers: {cold:.0f} s (cached after)." if cold else ""
    )
    return [
        "### Fractals",
        "",
        f"{res.data.get('size', '?')} px ({_src(res)}); store bytes per image as a fraction "
        f"of raw: {sizes}; bank load per second on one thread: {loads}.{compile_note}",
        "",
        table(["family", "per core /s", "all cores /s", "× NumPy"], body),
    ]


def _sha(meta: dict) -> str:
    sha = str(meta.get("git_sha", "?"))
    return sha[:10] if re.fullmatch(r"[0-9a-f]{40}", sha) else sha


def section_sources(results: dict[str, Result]) -> list[str]:
    body = []
    for kind in KINDS:
        if kind in results:
            m = results[kind].meta
            vers = ", ".join(f"{k} {v}" for k, v in (m.get("versions") or {}).items())
            body.append(
                [f"`{results[kind].path.name}`", f"`{m['command']}`", _sha(m)]
                + [m.get("cpu", "?"), m.get("cores", "?"), m.get("gpu") or "none", vers]
            )
    head = ["file", "command", "git SHA", "CPU", "cores", "GPU", "versions"]
    return ["### Sources", "", table(head, body)]


@contextmanager
def _layout(*results: Result):
    """Turn a missing key or a wrong type inside a section into an error naming the file."""
    try:
        yield
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as err:
        names = ", ".join(str(r.path) for r in results)
        raise ReportError(f"{names}: unexpected layout ({err!r})") from err


def render_block(results: dict[str, Result]) -> str:
    """The generated Markdown between the markers (no markers)."""
    out = [
        "<!-- generated by benchmarks/report.py from benchmarks/results/*.json: do not edit -->",
        "",
    ]
    rows = loader_rows(results)
    loaders = [results[k] for k in ("pipelines", "dali", "dali_gpu") if k in results]
    with _layout(*loaders):
        out += section_loaders(results, rows) + [""]
    for kind, section in (("ipmix", section_ipmix), ("ops", section_ops)):
        if kind in results:
            with _layout(results[kind]):
                out += section(results[kind]) + [""]
        if kind == "ipmix":
            with _layout(*loaders, *([results["ipmix"]] if "ipmix" in results else [])):
                scaling = section_scaling(results, rows)
            out += scaling + [""] if scaling else []
    if "fractals" in results:
        with _layout(results["fractals"]):
            out += section_fractals(results["fractals"]) + [""]
    with _layout(*results.values()):
        return "\n".join(out + section_sources(results))


def replace_block(
    text: str, block: str, name: str = "README", *, begin: str = BEGIN, end: str = END
) -> str:
    """``text`` with the part between the markers (default: the bench markers) replaced
    by ``block``."""
    if text.count(begin) != 1 or text.count(end) != 1 or text.index(begin) > text.index(end):
        raise ReportError(f"{name}: needs exactly one {begin} ... {end} pair, in that order")
    head, rest = text.split(begin)
    return head + begin + "\n" + block.strip("\n") + "\n" + end + rest.split(end, 1)[1]


# ---------------------------------------------------------------- plots


def write_plots(results: dict[str, Result], rows: list[dict], out_dir: Path) -> list[Path]:
    """loaders_ms_per_image.png, cores_per_gpu.png and scaling.png (when data exist)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    written = []

    def save(fig, name: str) -> None:
        fig.tight_layout()
        fig.savefig(out_dir / name, dpi=110)
        plt.close(fig)
        written.append(out_dir / name)

    pc = per_core(rows)
    if pc:
        labels = [f"{r['pipeline']} / {r['mode']}" for r in pc][::-1]
        base = [r["base_ms"] if r["base_ms"] is not None else r["ms"] for r in pc][::-1]
        extra = [max(r["ipmix_ms"] or 0.0, 0.0) for r in pc][::-1]
        fig, ax = plt.subplots(figsize=(8, 0.35 * len(pc) + 1.5))
        ax.barh(labels, base, color="#8da0cb", label="decode + crop (+ hand-off)")
        ax.barh(labels, extra, left=base, color="#fc8d62", label="IPMix")
        ax.set_xlabel("ms of one core per sample")
        ax.set_title("Loader cost per image, 1 worker")
        ax.legend(loc="lower right")
        save(fig, "loaders_ms_per_image.png")

        need = [r for r in pc if r["mode"] != "off"]
        fig, ax = plt.subplots(figsize=(8, 0.45 * len(need) + 1.5))
        h = 0.8 / len(GPUS)
        for j, (g, n) in enumerate(GPUS):
            vals = [cores_needed(r["rate"], n, IMAGES_PER_SAMPLE[r["mode"]]) for r in need]
            ys = [i + (j - 1) * h for i in range(len(need))]
            bars = ax.barh(ys, vals, height=h, label=f"{g} {n / 1000:g}k img/s")
            ax.bar_label(bars, padding=2, fontsize=8)
        ax.set_yticks(range(len(need)), [f"{r['pipeline']} / {r['mode']}" for r in need])
        ax.invert_yaxis()
        ax.set_xlabel("CPU cores per GPU (linear scaling at the measured per-core rate)")
        ax.set_title("Cores to feed one GPU training ResNet-50")
        ax.legend(loc="lower right")
        save(fig, "cores_per_gpu.png")

    scale = results["ipmix"].data.get("scaling") or [] if "ipmix" in results else []
    multi = len({r["workers"] for r in rows}) > 1
    if scale or multi:
        fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
        for ax, axis in zip(axes[:2], ("size", "batch")):
            for mode in ("one view", "JSD"):
                pts = sorted(
                    (r[axis], r["ms/img/core"])
                    for r in scale
                    if r["axis"] == axis and r["mode"] == mode
                )
                if pts:
                    ax.plot(*zip(*pts), "o-", label=f"IPMix {mode}")
                    if axis == "size":  # what a cost proportional to the pixels would do
                        s0, m0 = pts[-1]
                        xs = [x for x, _ in pts]
                        ax.plot(xs, [m0 * (x / s0) ** 2 for x in xs], "k:", lw=1)
            ax.set_xlabel("image size (px)" if axis == "size" else "batch size (log scale)")
            if axis == "batch":
                ticks = sorted({r["batch"] for r in scale if r["axis"] == "batch"})
                ax.set_xscale("log", base=2)
                ax.set_xticks(ticks, [str(t) for t in ticks])
                ax.minorticks_off()
            ax.set_ylabel("ms per image, 1 thread")
            ax.set_title(
                f"IPMix cost vs {axis}" + (" (dotted: ∝ pixels)" if axis == "size" else "")
            )
            ax.set_ylim(bottom=0)
            if ax.get_legend_handles_labels()[0]:
                ax.legend()
        ax, cores = axes[2], set()
        ax.set_prop_cycle(color=plt.cm.tab20.colors)
        for mode in ("one view", "JSD"):
            pts = sorted(
                (r["threads"], r["img/s"])
                for r in scale
                if r["axis"] == "threads" and r["mode"] == mode
            )
            if pts:
                line = ax.plot(*zip(*pts), "o-", label=f"IPMix alone, {mode}")[0]
                linear = [pts[0][1] * x / pts[0][0] for x, _ in pts]
                ax.plot([x for x, _ in pts], linear, ":", color=line.get_color(), lw=1)
                cores |= {x for x, _ in pts}
        for name in PIPELINES:
            for mode in MODES:
                pts = sorted(
                    (r["workers"], r["rate"] * r["workers"])
                    for r in rows
                    if (r["pipeline"], r["mode"]) == (name, mode)
                )
                if len(pts) > 1:
                    ax.plot(*zip(*pts), "s--", label=f"{name}, {mode}")
                    cores |= {x for x, _ in pts}
        ax.set_xticks(sorted(cores))
        ax.set_xlabel("cores (threads / workers); dotted: linear from 1 core")
        ax.set_ylabel("images/s")
        ax.set_title("Throughput vs cores")
        ax.set_ylim(bottom=0)
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1))
        save(fig, "scaling.png")
    return written


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "results")
    p.add_argument("--files", type=Path, nargs="+", help="use these JSON files instead")
    p.add_argument("--readme", type=Path, default=ROOT / "README.md")
    p.add_argument("--plots", type=Path, default=ROOT / "benchmarks" / "plots")
    p.add_argument("--print", action="store_true", help="print the block; write nothing")
    args = p.parse_args(argv)
    try:
        results = newest_results(args.results, args.files)
        block = render_block(results)
        if args.print:
            print(block)
            return 0
        text = replace_block(args.readme.read_text(), block, str(args.readme))
        with _layout(*results.values()):
            written = write_plots(results, loader_rows(results), args.plots)
    except ReportError as err:
        print(f"report: {err}", file=sys.stderr)
        return 1
    args.readme.write_text(text)
    print(f"report: {args.readme} updated from {', '.join(r.path.name for r in results.values())}")
    print("report: plots " + ", ".join(str(w) for w in written))
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
