"""ionctl: a bench-PC controller for constant-current iontophoresis devices."""

__version__ = "0.1.0"
