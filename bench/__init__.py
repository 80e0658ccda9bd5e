"""Benchmarks, run on purpose (``python -m bench``); never part of the test suite. See docs/performance.md."""
