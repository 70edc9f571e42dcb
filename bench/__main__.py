"""python -m bench: the benchmark runner (bench/runner.py)."""

from bench import runner

runner.main()
