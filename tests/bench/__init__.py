"""Benchmarks, run by `make bench` (`python -m tests.bench`), never by pytest.

Each benchmark is a module with `NAME`, `DESCRIPTION` and `run(options)`; `__main__` runs them in
sequence. `harness` holds what they share: worker processes, timing, machine info, reports.
"""
