"""Benchmarks of qdataset against raw sqlite3 and QCoDeS (issue 4).

Run ``python -m benchmarks`` from the project root; see ``benchmarks/README.md``.
"""
