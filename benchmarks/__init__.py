"""hpctool's benchmarks: each ``bench_*.py`` module measures one thing as a ratio against a
baseline in the same run, and prints a Markdown section for docs/benchmarks.md."""
