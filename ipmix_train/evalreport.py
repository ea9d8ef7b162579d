"""The reports of :mod:`ipmix_train.evaluate`: a plain-text table and a PNG plot of a results
dict (keys of :mod:`ipmix_train.evalscore`, all scores in %)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


def _missing_words(missing: dict[str, list[int]]) -> str:
    parts = [
        c if len(s) == 5 else f"{c} (severities {', '.join(map(str, s))})"
        for c, s in missing.items()
    ]
    return ", ".join(parts)


def mce_lines(res: dict[str, Any]) -> list[str]:
    """The mCE (or why there is none, or why it is partial) and its caveats."""
    lines = []
    caveats = res.get("mce_caveats") or []
    if "mce_pct" in res:
        lines.append(f"mCE (AlexNet-normalised, ImageNet-C convention) {res['mce_pct']:.2f}%")
    missing = res.get("imagenet_c_missing")
    if missing:
        lines.append(f"ImageNet-C variants missing: {_missing_words(missing)}")
        if "mce_partial_pct" in res:
            over = res["mce_partial_over"]
            lines.append(
                f"no mCE (it needs all 15 corruptions x 5 severities); partial mCE over the "
                f"{len(over)} complete corruption(s) ({', '.join(over)}): "
                f"{res['mce_partial_pct']:.2f}% (mce_partial_pct)"
            )
        else:
            lines.append("no mCE: it needs all 15 corruptions x 5 severities, none is complete")
    if caveats and ("mce_pct" in res or "mce_partial_pct" in res):
        lines.append(
            "this mCE is NOT comparable to published ImageNet-C mCEs: " + "; ".join(caveats)
        )
    return lines


def format_table(res: dict[str, Any]) -> str:
    """A plain-text table: clean scores, then error per corruption and severity, the mean
    corruption error, the mCE with its caveats, and the corrupted calibration error."""
    c = res["clean"]
    lines = [
        f"clean: top-1 error {c['top1_err_pct']:.2f}%, top-5 error {c['top5_err_pct']:.2f}%, "
        f"RMS calibration error {c['calib_rms_pct']:.2f}% ({c['n']} images)"
    ]
    per = res.get("corrupted") or {}
    if not per:
        return "\n".join(lines)
    ce = res.get("ce_alexnet_pct") or {}
    sev = sorted({int(s) for e in per.values() for s in e})
    head = f"{'corruption':<18}" + "".join(f"{'s' + str(s):>7}" for s in sev)
    lines += ["", head + f"{'mean':>7}" + (f"{'CE':>7}" if ce else "")]
    for name, e in per.items():
        e = {int(s): v for s, v in e.items()}
        row = f"{name:<18}" + "".join(
            f"{e[s]['top1_err_pct']:>7.1f}" if s in e else f"{'-':>7}" for s in sev
        )
        row += f"{res['corruption_err_pct'][name]:>7.1f}"
        if name in ce:
            row += f"{ce[name]:>7.1f}"
        lines.append(row)
    lines.append(
        f"mean corruption error {res['mean_corruption_err_pct']:.2f}% (top-1, % of images)"
    )
    lines += mce_lines(res)
    lines.append(f"mean RMS calibration error, corrupted: {res['corrupted_calib_rms_pct']:.2f}%")
    return "\n".join(lines)


def plot_severity(res: dict[str, Any], path: str | os.PathLike, title: str = "") -> Path:
    """PNG of top-1 error vs severity, one line per corruption (clean error at severity 0)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 5), dpi=110)
    clean = res["clean"]["top1_err_pct"]
    cmap = plt.get_cmap("tab20")
    for i, (name, e) in enumerate((res.get("corrupted") or {}).items()):
        e = {int(s): v for s, v in e.items()}
        sev = sorted(e)
        ax.plot(
            [0, *sev],
            [clean] + [e[s]["top1_err_pct"] for s in sev],
            "-" if i < 10 else "--",
            marker="o",
            ms=3,
            color=cmap(i % 20),
            label=name,
        )
    ax.axhline(clean, color="k", lw=0.8, ls=":", label="clean")
    ax.set(xlabel="severity (0 = clean)", ylabel="top-1 error (%)", ylim=(0, 100))
    ax.set_title(f"{title}: error vs severity" if title else "error vs corruption severity")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path
