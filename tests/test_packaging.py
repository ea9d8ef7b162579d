"""The project's packaging: pins agree across files, packages import, layout is as documented."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
import yaml

from tools.check_pins import mismatches, parse_pins, read_pins

ROOT = Path(__file__).resolve().parents[1]


def test_environment_yml_pins_match_requirements():
    req = read_pins(ROOT / "requirements.txt")
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_sections = [d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d]
    assert len(pip_sections) == 1, "environment.yml needs exactly one pip section"
    env_pins = parse_pins(pip_sections[0], "environment.yml")
    assert env_pins == req, (
        f"environment.yml and requirements.txt disagree: "
        f"only in yml {sorted(set(env_pins.items()) - set(req.items()))}, "
        f"only in requirements {sorted(set(req.items()) - set(env_pins.items()))}"
    )
    assert "python=3.11" in env["dependencies"]


def test_constraints_agree_with_requirements():
    req = read_pins(ROOT / "requirements.txt")
    cons = read_pins(ROOT / "constraints.txt")
    for name, version in req.items():
        assert cons.get(name) == version, (
            f"constraints.txt pins {name}=={cons.get(name)}, requirements.txt {version}"
        )


@pytest.mark.parametrize("pkg", ["ipmix_ops", "fractal_store", "pipelines", "train", "tools"])
def test_top_level_packages_import_with_docstring(pkg):
    mod = importlib.import_module(pkg)
    assert mod.__doc__ and len(mod.__doc__.strip()) > 40, f"{pkg} needs a module docstring"


def test_pin_checker_reports_mismatches(tmp_path):
    """tools/check_pins.py (run by ``make setup``) on pins that cannot all hold here."""
    from importlib.metadata import version

    req = tmp_path / "requirements.txt"
    req.write_text(f"# a comment\nnumpy=={version('numpy')}\nPillow==0.0.1\nno-such-pkg==1.0\n")
    assert mismatches(read_pins(req)) == [
        "no-such-pkg: pinned 1.0, not installed",
        f"pillow: pinned 0.0.1, installed {version('pillow')}",
    ]
    (tmp_path / "loose.txt").write_text("numpy>=2\n")
    with pytest.raises(ValueError, match="loose.txt: unpinned requirement 'numpy>=2'"):
        read_pins(tmp_path / "loose.txt")


def test_ci_runs_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text()
    readme = (ROOT / "README.md").read_text()
    assert "make test" in ci and "make test" in readme
    assert "make demo" in readme
