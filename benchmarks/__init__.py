"""Reproducible performance figures: `python -m benchmarks` prints them as JSON and, on a full run, writes
docs/performance.json and docs/PERFORMANCE.md (`benchmarks.report`).

A figure whose target depends on the machine's speed is reported as a ratio against a baseline measured
in the same run (codec throughput against a bare COBS+CRC floor, pty round trips against a raw echo,
`ionctl --help` against a bare interpreter start-up, a session's CPU against a bare reader of the same
telemetry), so it means the same on a fast or a slow machine. Some targets are absolute by their nature and
say so in their unit: `sim_speedup` (simulated seconds per wall second, best of several runs after a
warm-up), the codec's share of one CPU at 115 200 baud, the host's share of one CPU at 100 Hz telemetry.
Nothing here is asserted by the unit tests.
"""
