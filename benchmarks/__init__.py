"""Benchmark scripts (not timed tests). Each prints a table and writes JSON under
``benchmarks/results/`` with the command, versions, core count and git SHA."""
