"""Benchmark tooling: reading pytest-benchmark JSON, percentiles, the Markdown report, the stage
chart, run-to-run comparison (benchmarks/report.py is the command line), and helpers the suites
share (adaptive rounds, FLOP counting, CUDA-synchronised timing)."""
