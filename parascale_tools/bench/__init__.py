"""Benchmarks: each module returns rows (dicts) that run.py prints as one table and writes as JSON."""
