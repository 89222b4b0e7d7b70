"""Reproducible performance figures: `python -m benchmarks` prints them as JSON.

A figure whose target depends on the machine's speed is reported as a ratio against a baseline measured
in the same run (codec throughput against a bare COBS+CRC floor, pty round trips against a raw echo), so
it means the same on a fast or a slow machine. Two targets are absolute by their nature and say so in
their unit: `sim_speedup` (simulated seconds per wall second, best of several runs after a warm-up) and
the codec's share of one CPU at 115 200 baud. Nothing here is asserted by the unit tests.
"""
