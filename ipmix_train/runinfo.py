"""Run metadata, one helper for the trainer, the robustness experiment and the benchmarks:
git SHA, library versions, CPU, cores and GPU of the machine a run happened on."""

from __future__ import annotations

import platform
import subprocess
import sys
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from fractal_store.store import default_workers

ROOT = Path(__file__).resolve().parents[1]


def git_sha() -> str | None:
    """The checkout's commit (40 hex digits), ``-dirty`` when tracked files differ from it;
    None outside a git checkout."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=10
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    sha = out.stdout.strip() or None
    return f"{sha}-dirty" if sha and dirty.stdout.strip() else sha


def versions(*packages: str) -> dict[str, str | None]:
    """Python's version and each installed distribution's (None when not installed)."""
    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in packages:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``, else ``platform.processor()``)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def run_metadata(*packages: str) -> dict[str, Any]:
    """Command, git SHA, UTC time, CPU model, usable cores, GPU and the versions of numpy,
    numba, pillow and ``packages`` for a run's JSON record."""
    gpu = None
    try:
        import torch

        if torch.cuda.is_available():
            gpu = torch.cuda.get_device_name(0)
    except ImportError:
        pass
    return {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "git_sha": git_sha(),
        "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "cpu": cpu_model(),
        "cores": default_workers(),
        "gpu": gpu,
        "versions": versions("numpy", "numba", "pillow", *packages),
    }
