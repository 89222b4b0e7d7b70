"""The command line: one module per command; `ionctl.cli.main.main` is the `ionctl` entry point."""

from ionctl.cli.main import build_parser, main

__all__ = ["build_parser", "main"]
