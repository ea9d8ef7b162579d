"""Run ``train/imagenet.py`` (argv as given) with every Python-level collective of
``torch.distributed`` counted; rank r writes ``{name: calls}`` to ``OUT/collectives-r.json``.

DDP's gradient all-reduce runs in its C++ reducer (overlapped with the backward pass) and
is not counted: what is counted are the host synchronisations the trainer itself adds.
Used by tests/test_train.py under ``torchrun --nproc_per_node 2``.
"""

from __future__ import annotations

import functools
import json
import os
import sys
from collections import Counter
from pathlib import Path

import torch.distributed as dist

NAMES = ("all_reduce", "all_gather", "all_gather_object", "broadcast", "barrier", "reduce")


def main(argv: list[str]) -> int:
    calls: Counter[str] = Counter()
    for name in NAMES:
        real = getattr(dist, name)

        @functools.wraps(real)
        def counted(*args, _real=real, _name=name, **kwargs):
            calls[_name] += 1
            return _real(*args, **kwargs)

        setattr(dist, name, counted)
    from train.imagenet import main as train_main

    rc = train_main(argv)
    out = Path(argv[argv.index("--out") + 1])
    rank = os.environ.get("RANK", "0")
    (out / f"collectives-{rank}.json").write_text(json.dumps(dict(calls)) + "\n")
    return rc


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
