"""The project's packaging: pins agree across files, packages import, layout is as documented."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
PIN = re.compile(r"^([A-Za-z0-9_.\-]+)==([^\s;#]+)$")


def _pins(lines: list[str]) -> dict[str, str]:
    pins = {}
    for line in lines:
        line = line.strip()
        if not line or line.startswith(("#", "-")):
            continue
        m = PIN.match(line)
        assert m, f"unpinned requirement {line!r}: every dependency needs an exact == pin"
        pins[m.group(1).lower().replace("_", "-")] = m.group(2)
    return pins


def test_environment_yml_pins_match_requirements():
    req = _pins((ROOT / "requirements.txt").read_text().splitlines())
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_sections = [d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d]
    assert len(pip_sections) == 1, "environment.yml needs exactly one pip section"
    env_pins = _pins(pip_sections[0])
    assert env_pins == req, (
        f"environment.yml and requirements.txt disagree: "
        f"only in yml {sorted(set(env_pins.items()) - set(req.items()))}, "
        f"only in requirements {sorted(set(req.items()) - set(env_pins.items()))}"
    )
    assert "python=3.11" in env["dependencies"]


def test_constraints_agree_with_requirements():
    req = _pins((ROOT / "requirements.txt").read_text().splitlines())
    cons = _pins((ROOT / "constraints.txt").read_text().splitlines())
    for name, version in req.items():
        assert cons.get(name) == version, (
            f"constraints.txt pins {name}=={cons.get(name)}, requirements.txt {version}"
        )


@pytest.mark.parametrize("pkg", ["ipmix_ops", "fractal_store", "pipelines", "train", "tools"])
def test_top_level_packages_import_with_docstring(pkg):
    mod = importlib.import_module(pkg)
    assert mod.__doc__ and len(mod.__doc__.strip()) > 40, f"{pkg} needs a module docstring"


def test_installed_versions_match_pins():
    from importlib.metadata import version

    req = _pins((ROOT / "requirements.txt").read_text().splitlines())
    for name in ("numpy", "numba", "pillow", "torch", "torchvision", "ffcv", "nvidia-dali-cuda120"):
        assert version(name).split("+")[0] == req[name], f"{name} installed {version(name)}"


def test_ci_runs_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text()
    readme = (ROOT / "README.md").read_text()
    assert "make test" in ci and "make test" in readme
    assert "make demo" in readme
