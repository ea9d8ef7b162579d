"""The README's GPU table, rendered from one ``benchmarks/gpu_proof.py`` JSON result.

The table sits between ``<!-- gpu-proof:begin -->`` and ``<!-- gpu-proof:end -->`` in the
README; :func:`write_readme_table` replaces what is between them (atomically) and nothing
else. ``gpu_proof.py`` writes it into README.md only after a run on a GPU; a ``--dry-run``
writes a temporary copy (CPU numbers of a tiny model must never reach the README).
"""

from __future__ import annotations

import os
from pathlib import Path

from benchmarks.report import ReportError, replace_block
from ipmix_train.checkpoint import write_text_atomic

BEGIN, END = "<!-- gpu-proof:begin -->", "<!-- gpu-proof:end -->"
CASES = (
    ("one-synthetic", "one view, synthetic", 1),
    ("one-ipmix", "one view, synthetic + GPU IPMix", 1),
    ("jsd-synthetic", "JSD, synthetic (clean batch x 3)", 3),
    ("jsd-ipmix", "JSD, synthetic + GPU IPMix (clean + 2 views)", 3),
)


def _table(header: list[str], rows: list[list]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]


def render_table(result: dict, json_name: str) -> str:
    """Markdown for one gpu_proof result: machine and command, the ResNet-50 step rates,
    the IPMix/synthetic ratios against the goal, the renderer benchmark, the loaders and
    the GPU tests' status."""
    meta, steps = result["meta"], result["steps"]
    sha = (meta.get("git_sha") or "unknown")[:12]
    dry = "DRY RUN (CPU, tiny model), not a measurement; " if result.get("dry_run") else ""
    lines = [
        f"Measured by `make gpu-proof` on {meta.get('gpu') or 'no GPU'}, "
        f"{meta.get('cores')} CPU cores, {meta.get('time_utc')}, git {sha}, in "
        f"{result.get('seconds')} s; {dry}JSON: `benchmarks/results/{json_name}`.",
        "",
    ]
    train = steps.get("train")
    if train:
        lines.append(
            f"Training step, {train['model']}, {train['precision']}, batch {train['batch']}, "
            f"{train['image_size']} px, mean over {train['steps']} timed steps after "
            f"{train['warmup']} warm-up (a sample is one picture; JSD sends 3 images of it "
            "through the network):"
        )
        lines.append("")
        rows = []
        for key, label, views in CASES:
            r = train["rows"][key]
            ips = round(r["samples/s"] * views, 1)
            rows.append([label, r["samples/s"], ips, r["ms/step"], r["peak_gpu_mib"]])
        lines += _table(["case", "samples/s", "images/s", "ms/step", "peak GPU MiB"], rows)
        ratio = train["ipmix_over_synthetic"]
        met = {True: "met", False: "NOT met", None: "not judged (dry run)"}[train["jsd_goal_met"]]
        lines += [
            "",
            f"IPMix / synthetic: one view {100 * ratio['one']:.1f}%, JSD "
            f"{100 * ratio['jsd']:.1f}% (goal >= {100 * train['jsd_goal']:.0f}%: {met}).",
        ]
    bench = (steps.get("ipmix_bench") or {}).get("result")
    if bench:
        cols = ["size", "batch", "mode", "img/s", "gpu ms/batch", "roofline img/s"]
        cols.append("cpu img/s/core")
        lines += ["", "GPU IPMix renderer alone (`benchmarks/bench_gpu_ipmix.py`):", ""]
        lines += _table(cols, [[r[c] for c in cols] for r in bench["rows"]])
    loaders = steps.get("loaders")
    if loaders:
        if "skipped" in loaders:
            lines += ["", f"Loaders on this GPU: skipped ({loaders['skipped']})."]
        else:
            rows = [[name, v.get("samples/s", v.get("skipped"))] for name, v in loaders.items()]
            lines += ["", "Loaders with GPU IPMix on this GPU:", ""]
            lines += _table(["pipeline", "samples/s (or why skipped)"], rows)
    tests = steps.get("gpu_tests")
    if tests:
        tail = tests["tail"][-1] if tests["tail"] else ""
        lines += ["", f"`gpu` tests: exit status {tests['rc']} ({tail})."]
    return "\n".join(lines)


def readme_with_table(readme: str | os.PathLike, table: str) -> str:
    """The text of ``readme`` with ``table`` between the GPU table's markers; ValueError
    naming the file when they are missing, repeated or out of order."""
    path = Path(readme)
    try:
        return replace_block(path.read_text(), table, str(path), begin=BEGIN, end=END)
    except ReportError as e:
        raise ValueError(str(e)) from None


def write_readme_table(readme: str | os.PathLike, table: str) -> Path:
    """Replace the text between the markers of ``readme`` with ``table`` (atomically)."""
    return write_text_atomic(readme, readme_with_table(readme, table))
