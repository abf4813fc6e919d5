"""Benchmarks of the order DAG against a no-op DAG of the same shape (``make bench``; see run.py)."""
