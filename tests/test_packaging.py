"""The project's packaging: pins agree across files, packages import, layout is as documented."""

from __future__ import annotations

import ast
import importlib
import os
import re
import subprocess
import sys
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


LIBRARIES = ("ipmix_ops", "fractal_store", "pipelines", "ipmix_train")


@pytest.mark.parametrize("pkg", [*LIBRARIES, "train", "tools"])
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


def test_distribution_ships_the_libraries_only():
    """pyproject's package list: the library packages and their subpackages, no generic
    top-level ``train`` or ``tools`` (those folders hold command lines run from a checkout)."""
    import tomllib

    from setuptools import find_packages

    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    shipped = find_packages(str(ROOT), include=cfg["packages"]["find"]["include"])
    assert {p.split(".")[0] for p in shipped} == set(LIBRARIES), shipped
    for pkg in LIBRARIES:  # every folder of .py files in a library is a shipped package
        for d in {f.parent for f in (ROOT / pkg).rglob("*.py")}:
            name = ".".join(d.relative_to(ROOT).parts)
            assert name in shipped, f"{d}: .py files outside a shipped package"


def _imports(path: Path, module: str, is_pkg: bool) -> set[str]:
    """Every module ``path`` imports (top level, inside functions, under TYPE_CHECKING),
    plus string constants naming a module (imported by name, e.g. a backend registry);
    relative imports resolved; ``from a import b`` counts as ``a.b`` when that is a module."""
    package = module if is_pkg else module.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parts = parts[: len(parts) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            out.add(base)
            out.update(f"{base}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            if re.fullmatch(r"[a-z_]+(\.[a-z_0-9]+)+", node.value):
                out.add(node.value)
    return out


def import_graph(packages: tuple[str, ...]) -> dict[str, set[str]]:
    """Module -> the project modules it imports, over every module of ``packages``."""
    files = {}
    for pkg in packages:
        for f in sorted((ROOT / pkg).rglob("*.py")):
            parts = f.relative_to(ROOT).with_suffix("").parts
            is_pkg = parts[-1] == "__init__"
            files[".".join(parts[:-1] if is_pkg else parts)] = (f, is_pkg)
    return {
        m: {i for i in _imports(f, m, is_pkg) if i in files and i != m}
        for m, (f, is_pkg) in files.items()
    }


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_import_cycle_detector_finds_one(tmp_path, monkeypatch):
    """The detector itself: a lazy import and a TYPE_CHECKING import make a cycle."""
    pkg = tmp_path / "cyc"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("def f():\n    from .b import g\n")
    (pkg / "b.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from . import a\n"
    )
    (pkg / "c.py").write_text("REGISTRY = {'x': 'cyc.a'}\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    graph = import_graph(("cyc",))
    assert graph["cyc.c"] == {"cyc.a"}
    assert import_cycles(graph) == [["cyc.a", "cyc.b"]]


def test_no_import_cycles():
    """No module of the libraries imports, however late, a module that imports it back."""
    cycles = import_cycles(import_graph(LIBRARIES))
    assert not cycles, f"import cycles: {cycles}"


def test_backends_do_not_import_the_registry():
    """pipelines.contract imports no backend; backends import the contract, not the registry."""
    graph = import_graph(("pipelines",))
    backends = ("pipelines.ffcv", "pipelines.dali", "pipelines.dataloader")
    assert not {m for m in graph["pipelines.contract"] if m.startswith(backends)}
    for m, deps in graph.items():
        if m.startswith(backends):
            assert "pipelines.registry" not in deps and "pipelines" not in deps, m


SCRIPTS = sorted(
    p.relative_to(ROOT).as_posix()
    for d in ("tools", "train")
    for p in (ROOT / d).glob("*.py")
    if p.name != "__init__.py"
)


@pytest.mark.parametrize("script", SCRIPTS)
def test_scripts_need_only_the_shipped_packages(script):
    """A command line imports libraries only (no ``train.``/``tools.`` modules) and leaves
    ``sys.path`` alone, so it runs from a checkout after ``pip install -e .``."""
    text = (ROOT / script).read_text()
    assert "sys.path" not in text, f"{script} edits sys.path"
    tops = {m.split(".")[0] for m in _imports(ROOT / script, "script", False)}
    assert not tops & {"train", "tools"}, f"{script} imports {sorted(tops & {'train', 'tools'})}"


@pytest.mark.parametrize("script", SCRIPTS)
def test_scripts_run_with_the_shipped_packages_only(script, tmp_path):
    """``python <script> --help`` from elsewhere, with only the shipped packages of this
    checkout on the path (what an install gives): exit 0 and a usage line."""
    for pkg in LIBRARIES:
        (tmp_path / pkg).symlink_to(ROOT / pkg)
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    res = subprocess.run(
        [sys.executable, str(ROOT / script), "--help"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, f"{script} --help: {res.stderr[-2000:]}"
    assert "usage:" in res.stdout.lower(), res.stdout[:500]


def _tracked_text_files() -> list[Path]:
    out = subprocess.run(
        ["git", "ls-files", "*.py", "*.md", "*.yaml", "*.toml", "Makefile", "*.sh"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return [ROOT / f for f in out if (ROOT / f).is_file()]


def test_docs_cite_the_repository_only():
    """Code and docs cite the repository's own docs (docs/algorithm.md, docs/architecture.md),
    never notes outside it; every ``docs/algorithm.md §N`` names a section that exists."""
    outside = re.compile(r"/shared/|SPEC-IPMIX|PERF-NOTES|DALI-NOTES|GPU-NOTES|ARCHITECTURE\.md")
    sections = set(re.findall(r"^## §(\d+) ", (ROOT / "docs" / "algorithm.md").read_text(), re.M))
    assert sections == {str(i) for i in range(1, 9)}, sections
    me = Path(__file__).resolve()
    for f in _tracked_text_files():
        if f.resolve() == me:
            continue
        text = f.read_text(errors="replace")
        hit = outside.search(text)
        assert not hit, f"{f.relative_to(ROOT)} cites {hit.group(0)!r} outside the repository"
        assert not re.search(r"\bspec §", text), f"{f.relative_to(ROOT)}: cite docs/algorithm.md"
        for n in re.findall(r"docs/algorithm\.md §(\d+)", text):
            assert n in sections, f"{f.relative_to(ROOT)} cites docs/algorithm.md §{n}"
