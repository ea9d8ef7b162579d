"""benchmarks/report.py on small hand-made result files: tables, cores per GPU, README block."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import report  # noqa: E402

META = {"command": "python benchmarks/bench_x.py --quick", "git_sha": "abc1234", "cores": 2}


def _row(pipeline, data, ipmix, rate, workers=1):
    return {
        "pipeline": pipeline,
        "data": data,
        "IPMix": ipmix,
        "workers": workers,
        "img/s/core": rate,
        "ms/img/core": round(1e3 / rate, 2),
    }


def write_fixtures(d: Path) -> None:
    rows = [
        _row("torch", "ImageFolder", "off", 200.0),
        _row("torch", "ImageFolder", "1 view (Pillow reference)", 80.0),
        _row("torch", "ImageFolder", "JSD (Pillow reference)", 40.0),
        _row("ffcv", ".beton jpg", "off", 400.0),
        _row("ffcv", ".beton jpg", "1 view (Numba)", 250.0),
        _row("ffcv", ".beton jpg", "JSD (Numba)", 100.0),
        _row("ffcv", ".beton jpg", "1 view (Numba)", 200.0, workers=2),
        _row("ffcv", ".beton jpg256", "off", 800.0),
        _row("ffcv", ".beton jpg256", "1 view (Numba)", 500.0),
    ]
    pipes = {"meta": META, "workers": 1, "rows": rows}
    # an older file of the same kind: must be ignored in favour of the newest
    (d / "pipelines-20260101-000000.json").write_text(json.dumps({"meta": META, "rows": []}))
    (d / "pipelines-20260102-000000.json").write_text(json.dumps(pipes))
    ipmix = {
        "meta": {**META, "command": "python benchmarks/bench_ipmix.py"},
        "size": 224,
        "batch": 32,
        "rows": [
            {
                "mode": "one view",
                "reference img/s/core": 150.0,
                "fast 1-thread img/s": 2000.0,
                "fast 2-thread img/s": 3800.0,
                "speed-up per core (1 thread)": 13.3,
            }
        ],
        "scaling": [
            {"axis": "size", "mode": "one view", "size": 128, "batch": 32, "threads": 1}
            | {"img/s": 5000.0, "img/s/core": 5000.0, "ms/img/core": 0.2},
        ],
    }
    (d / "ipmix-20260102-000000.json").write_text(json.dumps(ipmix))
    (d / "suite-20260103-000000.json").write_text("{not results")  # not a result kind


def test_tables_and_cores_per_gpu(tmp_path):
    write_fixtures(tmp_path)
    results = report.newest_results(tmp_path)
    assert results["pipelines"].path.name == "pipelines-20260102-000000.json"
    block = report.render_block(results)
    # cores: ceil(R / v / r); one view v=1, JSD v=3 (R = 3000, 5000, 7000)
    assert "| FFCV, JPEG .beton | one view | 250 | 12 | 20 | 28 |" in block
    assert "| FFCV, JPEG .beton | JSD | 100 | 10 | 17 | 24 |" in block
    assert "| torch (Pillow IPMix) | one view | 80 | 38 | 63 | 88 |" in block
    # split: decode + crop = the off cost (2.5 ms), IPMix = 4 - 2.5 ms, from 1-worker rows
    assert "| FFCV, JPEG .beton | one view | 1 | 250 | 4 | 2.5 | 1.5 |" in block
    assert "| FFCV, JPEG .beton, 256 px | one view | 1 | 500 | 2 | 1.25 | 0.75 |" in block
    assert "| FFCV, JPEG .beton | JSD | 1 | 100 | 10 | 2.5 | 7.5 |" in block
    # the scaling table: 1 worker 250 img/s, 2 workers 2 x 200 img/s
    assert "| FFCV, JPEG .beton | one view | 250 | 400 |" in block
    assert "| one view | 150 | 2,000 | 3,800 | 13.3 |" in block
    assert "`pipelines-20260102-000000.json`, `python benchmarks/bench_x.py --quick`" in block
    assert "| 128 | 0.2 | – |" in block


def test_cores_needed_rounds_up():
    assert report.cores_needed(250.0, 3000, 1) == 12
    assert report.cores_needed(251.0, 3000, 1) == 12
    assert report.cores_needed(249.0, 3000, 1) == 13
    assert report.cores_needed(100.0, 7000, 3) == 24


def test_main_replaces_only_the_block_and_writes_plots(tmp_path):
    write_fixtures(tmp_path)
    readme = tmp_path / "README.md"
    head = "# Title\n\n## Performance\n\nHand-written caveats.\n\n"
    tail = "\n\n## Troubleshooting\n\nkeep me\n"
    readme.write_text(head + report.BEGIN + "\nold table\n" + report.END + tail)
    plots = tmp_path / "plots"
    args = ["--results", str(tmp_path), "--readme", str(readme), "--plots", str(plots)]
    assert report.main(args) == 0
    text = readme.read_text()
    assert text.startswith(head + report.BEGIN + "\n")
    assert text.endswith(report.END + tail)
    assert "old table" not in text and "| FFCV, JPEG .beton | JSD |" in text
    assert {p.name for p in plots.glob("*.png")} == {
        "loaders_ms_per_image.png",
        "cores_per_gpu.png",
        "scaling.png",
    }


def test_readme_without_markers_is_an_error():
    with pytest.raises(report.ReportError, match="bench:begin"):
        report.replace_block("# no markers here\n", "x")


def test_garbled_json_names_the_file(tmp_path):
    write_fixtures(tmp_path)
    bad = tmp_path / "ipmix-20260105-000000.json"
    bad.write_text('{"meta": {"command": ')
    with pytest.raises(report.ReportError, match="ipmix-20260105-000000.json: not valid JSON"):
        report.newest_results(tmp_path)


def test_missing_file_and_missing_key_name_the_file(tmp_path):
    missing = tmp_path / "dali-20260101-000000.json"
    with pytest.raises(report.ReportError, match="dali-20260101-000000.json: no such file"):
        report.newest_results(tmp_path, [missing])
    no_rows = tmp_path / "pipelines-20260101-000000.json"
    no_rows.write_text(json.dumps({"meta": META}))
    with pytest.raises(report.ReportError, match=r"pipelines-20260101-000000.json: missing key"):
        report.render_block(report.newest_results(tmp_path))
    no_rows.unlink()
    frac = tmp_path / "fractals-20260101-000000.json"
    frac.write_text(json.dumps({"meta": META, "render": {"julia": {}}, "store": {}}))
    with pytest.raises(report.ReportError, match="fractals-20260101-000000.json: unexpected"):
        report.render_block(report.newest_results(tmp_path))
    with pytest.raises(report.ReportError, match="no such results directory"):
        report.newest_results(tmp_path / "nope")
