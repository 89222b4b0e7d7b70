"""Reproducible performance figures: `python -m benchmarks` prints them as JSON.

Every figure that has a target is reported as a ratio against a baseline measured in the same run, so
the numbers mean the same on a fast or a slow machine. Nothing here is asserted by the unit tests.
"""
