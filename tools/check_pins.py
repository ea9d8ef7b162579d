#!/usr/bin/env python
"""Check that this checkout's environment has exactly the pinned versions
(``requirements.txt``); ``make setup`` runs it after installing. It checks the project's own
.venv, not anyone who installs the library (pyproject.toml pins only lower bounds).

    python tools/check_pins.py [--requirements requirements.txt]

Exit status 0 when every pin matches, 1 with one line per mismatch otherwise.
"""

from __future__ import annotations

import argparse
import re
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PIN = re.compile(r"^([A-Za-z0-9_.\-]+)==([^\s;#]+)$")


def read_pins(path: Path) -> dict[str, str]:
    """``name == version`` lines of a requirements file (names lower case, ``-`` for ``_``);
    a requirement without an exact pin is a ValueError naming the file and line."""
    return parse_pins(Path(path).read_text().splitlines(), str(path))


def parse_pins(lines: list[str], where: str = "requirements") -> dict[str, str]:
    """As :func:`read_pins`, for the lines of a file (``where`` names it in errors)."""
    pins = {}
    for line in lines:
        line = line.strip()
        if not line or line.startswith(("#", "-")):
            continue
        m = PIN.match(line)
        if not m:
            raise ValueError(f"{where}: unpinned requirement {line!r}: needs an exact == pin")
        pins[m.group(1).lower().replace("_", "-")] = m.group(2)
    return pins


def mismatches(pins: dict[str, str]) -> list[str]:
    """One line per pinned package whose installed version differs (local ``+cu...`` tags
    ignored) or that is not installed."""
    out = []
    for name, want in sorted(pins.items()):
        try:
            have = version(name).split("+")[0]
        except PackageNotFoundError:
            out.append(f"{name}: pinned {want}, not installed")
            continue
        if have != want:
            out.append(f"{name}: pinned {want}, installed {have}")
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--requirements", default=str(ROOT / "requirements.txt"))
    args = p.parse_args(argv)
    bad = mismatches(read_pins(Path(args.requirements)))
    for line in bad:
        print(f"check_pins: {line}", file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
