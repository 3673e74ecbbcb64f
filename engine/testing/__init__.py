"""Harnesses shared by the tests and benchmarks: signals, rule runners, a live server, callback receivers.

Not imported by the engine itself; it may import any layer.
"""
