"""benchmarks.report: percentiles from raw timings, baseline ratios, regression flags, Markdown, chart, atomic write."""

from __future__ import annotations

import json
import os
import struct

import numpy as np
import pytest

from benchmarks import report
from benchmarks.tools.chart import render_chart
from benchmarks.tools.compare import (
    GONE,
    IMPROVED,
    NEW,
    REGRESSION,
    UNCHANGED,
    classify,
    compare_runs,
)
from benchmarks.tools.markdown import render_report
from benchmarks.tools.output import write_atomic
from benchmarks.tools.results import baseline_of, format_speedup, load_run, parse_run

from .conftest import around, bench_entry, results_doc

E2E = "e2e r50"


def e2e_entries() -> list[dict]:
    return [
        bench_entry("test_torchvision_eager", E2E, around(4.0)),
        bench_entry("test_maskrt_cpu_engine", E2E, around(1.0), {"flops": 460e9}),
        bench_entry("test_maskrt_torch_backend", E2E, around(5.0)),
    ]


def stage_entries() -> list[dict]:
    stages = [("preprocess", 0.002), ("dense", 0.2), ("rpn", 0.01), ("paste", 0.03)]
    return [bench_entry(f"test_{s}[small]", "stages r18 320x320", around(t, seed=i), {"stage": s})
            for i, (s, t) in enumerate(stages)]


def test_percentiles_are_numpys_on_the_raw_timings():
    rng = np.random.default_rng(7)
    data = rng.lognormal(mean=-3, sigma=0.4, size=57)
    run = parse_run(results_doc([bench_entry("test_a", "g", data)]))
    r = run.results[0]
    assert r.rounds == 57
    assert r.median == pytest.approx(np.median(data), rel=0, abs=0)
    assert r.p90 == pytest.approx(np.percentile(data, 90), rel=0, abs=0)
    assert r.p99 == pytest.approx(np.percentile(data, 99), rel=0, abs=0)
    assert r.min == data.min()
    # pytest-benchmark's own stats have no percentiles; p99 is a real tail, above the median
    assert r.p99 > r.p90 > r.median


def test_percentiles_are_in_the_markdown_table():
    data = np.arange(1, 102, dtype=float) * 1e-3  # 1..101 ms: median 51, p90 91, p99 100
    md = render_report(parse_run(results_doc([bench_entry("test_a", "g", data)])))
    row = next(line for line in md.splitlines() if line.startswith("| `test_a`"))
    assert row.split(" | ")[1:6] == ["101", "51", "91", "100", "1"]


def test_without_raw_data_falls_back_to_stats_and_says_so():
    run = parse_run(results_doc([bench_entry("test_a", "g", [1.0, 2.0, 3.0], raw=False)]))
    r = run.results[0]
    assert (r.median, r.p90, r.min, r.rounds) == (2.0, None, 1.0, 3)
    assert "n/a" in render_report(run)


def test_ratio_to_baseline_named_torchvision():
    run = parse_run(results_doc(e2e_entries()))
    results = run.groups()[E2E]
    assert baseline_of(results).name == "test_torchvision_eager"
    md = render_report(run)
    assert "| `test_torchvision_eager` |" in md and "| baseline |" in md
    assert "4.0x faster" in next(line for line in md.splitlines() if "test_maskrt_cpu_engine" in line)
    assert next(line for line in md.splitlines() if "test_maskrt_torch_backend" in line).endswith("| 0.8x |")


def test_explicit_baseline_wins_and_groups_without_one_have_no_ratio():
    entries = e2e_entries()
    entries[2]["extra_info"]["baseline"] = True
    assert baseline_of(parse_run(results_doc(entries)).results).name == "test_maskrt_torch_backend"
    run = parse_run(results_doc(stage_entries()))
    assert baseline_of(run.results) is None
    assert all(line.endswith("| — |") for line in render_report(run).splitlines() if line.startswith("| `test_"))


@pytest.mark.parametrize("ratio, text", [(4.1, "4.1x faster"), (1.0, "1.0x faster"), (0.8, "0.8x"), (0.456, "0.46x")])
def test_speedup_wording(ratio, text):
    assert format_speedup(ratio) == text


@pytest.mark.parametrize("change, status", [(0.04, UNCHANGED), (0.05, UNCHANGED), (0.06, REGRESSION),
                                            (-0.04, UNCHANGED), (-0.06, IMPROVED)])
def test_regression_threshold_is_five_percent_of_the_median(change, status):
    assert classify(1.0, 1.0 + change) == status
    assert classify(0.02, 0.02 * (1.0 + change)) == status


def test_comparison_flags_only_beyond_five_percent(write_doc, capsys):
    old = write_doc([bench_entry("test_a", "g", around(1.0)), bench_entry("test_b", "g", around(1.0)),
                     bench_entry("test_c", "g", around(1.0)), bench_entry("test_gone", "g", around(1.0))], "old.json")
    new = write_doc([bench_entry("test_a", "g", around(1.04)), bench_entry("test_b", "g", around(1.06)),
                     bench_entry("test_c", "g", around(0.90)), bench_entry("test_new", "g", around(1.0))], "new.json")
    comparison = compare_runs(load_run(old), load_run(new))
    status = {c.name: c.status for c in comparison.changes}
    assert status == {"test_a": UNCHANGED, "test_b": REGRESSION, "test_c": IMPROVED, "test_new": NEW,
                      "test_gone": GONE}
    assert [c.name for c in comparison.regressions] == ["test_b"]
    assert comparison.changes[1].change == pytest.approx(0.06)

    out = new.parent / "CMP.md"
    assert report.main([str(new), "-o", str(out), "--compare", str(old)]) == 0
    assert report.main([str(new), "-o", str(out), "--compare", str(old), "--fail-on-regression"]) == 1
    assert "test_b" in capsys.readouterr().err
    md = out.read_text()
    assert "**REGRESSION**" in md and "+6.0%" in md and "+4.0%" in md
    assert "noise (IQR/median)" in md


def test_no_regression_exits_zero_with_fail_flag(write_doc):
    old = write_doc([bench_entry("test_a", "g", around(1.0))], "old.json")
    new = write_doc([bench_entry("test_a", "g", around(1.04))], "new.json")
    assert report.main([str(new), "-o", str(new.parent / "r.md"), "--compare", str(old), "--fail-on-regression"]) == 0


def test_markdown_has_one_table_per_group():
    entries = e2e_entries() + stage_entries() + [bench_entry("test_matmul_fp32", "machine", around(0.1))]
    md = render_report(parse_run(results_doc(entries)))
    groups = [E2E, "stages r18 320x320", "machine"]
    assert [line[3:] for line in md.splitlines() if line.startswith("## ") and "FLOPs" not in line] == groups
    header_rows = [line for line in md.splitlines() if line.startswith("| benchmark | rounds |")]
    assert len(header_rows) == len(groups)
    assert all("p90" in h and "p99" in h and "median" in h and "vs baseline" in h for h in header_rows)


def test_flops_table_uses_the_best_machine_limit_of_each_dtype():
    machine = [bench_entry("test_matmul_fp32", "machine", around(0.1), {"gflops_per_s": 500.0}),
               bench_entry("test_matmul_openvino[f32]", "machine", around(0.1), {"gflops_per_s": 920.0, "dtype": "float32"}),
               bench_entry("test_matmul_openvino[bf16]", "machine", around(0.1),
                           {"gflops_per_s": 1840.0, "dtype": "bfloat16"})]
    bf16 = bench_entry("test_maskrt_cpu_engine_fp16", E2E, around(0.5), {"flops": 460e9, "compute_dtype": "bfloat16"})
    run = parse_run(results_doc(e2e_entries() + [bf16] + machine))
    assert run.machine_limit().name == "test_matmul_openvino[f32]"
    assert run.machine_limit("bfloat16").name == "test_matmul_openvino[bf16]"
    md = render_report(run)
    assert "**920.0 GFLOP/s**" in md and "**1840.0 GFLOP/s**" in md
    row = next(line for line in md.splitlines() if line.startswith(f"| {E2E} | `test_maskrt_cpu_engine`"))
    assert row.split(" | ")[2:] == ["460", "1000", "460", "float32", "50.0% |"]  # 460 GFLOP in 1 s, 920 GFLOP/s limit
    row = next(line for line in md.splitlines() if line.startswith(f"| {E2E} | `test_maskrt_cpu_engine_fp16`"))
    assert row.split(" | ")[2:] == ["460", "500", "920", "bfloat16", "50.0% |"]  # 920 GFLOP/s of 1840


def test_flops_without_a_machine_run():
    md = render_report(parse_run(results_doc(e2e_entries())))
    assert "not measured in this run" in md
    assert next(line for line in md.splitlines() if "| `test_maskrt_cpu_engine` | 460" in line).endswith("| n/a |")


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_chart_is_a_png_of_the_stage_groups(write_doc):
    path = write_doc(e2e_entries() + stage_entries())
    chart = path.parent / "out" / "stages.png"
    out = path.parent / "out" / "REPORT.md"
    assert report.main([str(path), "-o", str(out), "--chart", str(chart)]) == 0
    width, height = png_size(chart.read_bytes())
    assert width > 100 and height > 100
    assert "![median latency per model stage](stages.png)" in out.read_text()


def test_no_chart_without_stage_results(write_doc, capsys):
    path = write_doc(e2e_entries())
    assert render_chart(load_run(path)) is None
    chart = path.parent / "stages.png"
    assert report.main([str(path), "-o", str(path.parent / "r.md"), "--chart", str(chart)]) == 0
    assert not chart.exists()
    assert "not written" in capsys.readouterr().err


def test_unreadable_inputs_exit_two(tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    assert report.main([str(bad)]) == 2
    assert report.main([str(tmp_path / "missing.json")]) == 2
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"hello": 1}))
    assert report.main([str(other)]) == 2
    err = capsys.readouterr().err
    assert "cannot read it as JSON" in err and "no such file" in err and "not a pytest-benchmark JSON" in err


def test_atomic_write_replaces_whole_file(tmp_path):
    target = tmp_path / "sub" / "REPORT.md"
    write_atomic(target, "old report\n")
    write_atomic(target, "new report\n")
    assert target.read_text() == "new report\n"
    assert os.listdir(target.parent) == ["REPORT.md"]


def test_atomic_write_failure_keeps_previous_file(tmp_path, monkeypatch):
    target = tmp_path / "REPORT.md"
    target.write_text("previous\n")

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        write_atomic(target, "half-written")
    assert target.read_text() == "previous\n"
    assert os.listdir(tmp_path) == ["REPORT.md"]  # no temporary left behind


def test_report_to_stdout_without_output(write_doc, capsys):
    path = write_doc(e2e_entries())
    assert report.main([str(path)]) == 0
    assert capsys.readouterr().out.startswith("# Benchmark report")


def test_short_extra_info_is_shown_and_bookkeeping_hidden():
    entries = [bench_entry("test_engine_only", "stream", around(1.0), {"baseline": True, "fps": 12.345678}),
               bench_entry("test_pipeline", "stream", around(1.1), {"fps": 11.1, "planned_rounds": 5, "big": [1, 2]})]
    lines = render_report(parse_run(results_doc(entries))).splitlines()
    assert next(line for line in lines if "test_engine_only" in line).endswith("| baseline | fps=12.35 |")
    assert next(line for line in lines if "test_pipeline" in line).endswith("| 0.91x | fps=11.1 |")


def test_soak_rss_trend_separates_a_leak_from_settled_memory():
    from benchmarks.streaming.test_streaming import rss_trend

    settled = [(f, 1e9 + (30e6 if f > 500 else 0)) for f in range(0, 10_001, 100)]
    leaking = [(f, 1e9 + 2_000 * f) for f in range(0, 10_001, 100)]  # 2 kB a frame = 2 MB / 1k frames
    assert abs(rss_trend(settled)) < 1e-6
    assert rss_trend(leaking) == pytest.approx(2.0)


def test_header_names_the_machine_precisely_and_its_measured_limits():
    from maskrt.machine import parse_cpuinfo
    from tests.test_machine import ZEN3_FLAGS, cpuinfo

    info = parse_cpuinfo(cpuinfo("AuthenticAMD", 25, 1, "AMD EPYC", ZEN3_FLAGS, cores=2), ("FP32", "INT8"))
    doc = results_doc(e2e_entries() + [
        bench_entry("test_matmul_openvino[f32]", "machine", around(0.1), {"gflops_per_s": 91.5, "library": "openvino"})])
    doc["machine_info"]["maskrt_cpu"] = info.as_dict()
    header = render_report(parse_run(doc)).splitlines()[:6]
    machine = next(line for line in header if line.startswith("Machine: "))
    assert "AMD EPYC (Zen 3), family 25 model 1: 2 physical cores, 2 logical CPUs; kind avx2; ISA avx2 fma" in machine
    assert "no avx512f avx512_bf16 avx512_vnni avx_vnni amx_tile amx_bf16 amx_int8" in machine
    assert "Machine limits measured in this run: float32 92 GFLOP/s (openvino)" in header


def test_header_of_an_older_results_file_falls_back_to_the_brand_string():
    header = render_report(parse_run(results_doc(e2e_entries()))).splitlines()
    assert "Machine: Test CPU, 2 CPUs, CPython 3.11.7" in header
