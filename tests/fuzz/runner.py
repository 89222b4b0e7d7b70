"""Run a fuzz target for N inputs: under atheris in a subprocess when it is installed, else under hypothesis.

A target is a module `tests.fuzz.fuzz_NAME` with `test_one_input(data: bytes)` and `seeds()`. Under atheris the
module is its own fuzzer (`python -m tests.fuzz.fuzz_NAME [libFuzzer options] CORPUS`); its seeds are written to
a fresh corpus directory first, and the figures (executions, coverage edges, features, corpus size) are read from
libFuzzer's output. Under hypothesis, `test_one_input` is called on random bytes and on mutated seeds.
"""

from __future__ import annotations

import importlib
import importlib.util
import re
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SEED = 1  # libFuzzer's and hypothesis's seed: a run is reproducible

_DONE = re.compile(r"^Done (\d+) runs in (\d+) second", re.MULTILINE)
_STATUS = re.compile(r"^#(\d+)\s+\w+\s+cov: (\d+) ft: (\d+) corp: (\d+)", re.MULTILINE)
_EXECS = re.compile(r"^stat::number_of_executed_units: (\d+)", re.MULTILINE)
_ARTIFACT = re.compile(r"Test unit written to (\S+)")


@dataclass
class FuzzRun:
    """What one fuzzing run did."""

    target: str
    engine: str  # "atheris" or "hypothesis"
    runs: int  # inputs executed
    wall_s: float
    exit_status: int
    coverage: int | None = None  # libFuzzer "cov": instrumented edges reached
    features: int | None = None  # libFuzzer "ft": coverage features (edges x hit-count buckets, comparisons)
    corpus: int | None = None
    crash: Path | None = None  # the reproducer the fuzzer saved, if it found a crash
    output: str = ""

    def summary(self) -> str:
        found = f", crash saved to {self.crash}" if self.crash else ""
        coverage = f", cov {self.coverage}, ft {self.features}, corpus {self.corpus}" if self.coverage else ""
        return (
            f"fuzz {self.target} ({self.engine}): {self.runs} inputs in {self.wall_s:.1f} s "
            f"({self.runs / max(self.wall_s, 1e-9):.0f}/s), exit {self.exit_status}{coverage}{found}"
        )

    def failure_report(self) -> str:
        """The summary and the tail of the fuzzer's output (where the traceback of a crash is)."""
        return self.summary() + "\n" + self.output[-6000:]


def atheris_available() -> bool:
    return importlib.util.find_spec("atheris") is not None


def target_module(target: str):  # type: ignore[no-untyped-def]
    return importlib.import_module(f"tests.fuzz.fuzz_{target}")


def write_corpus(seeds: list[bytes], directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for i, seed in enumerate(seeds):
        (directory / f"seed-{i:03d}").write_bytes(seed)


def run_atheris(
    target: str, runs: int, workdir: Path, *, max_len: int, artifacts: Path | None = None, timeout_s: float = 7200
) -> FuzzRun:
    """`python -m tests.fuzz.fuzz_TARGET -runs=RUNS` on a corpus of the target's seeds; a crash's reproducer
    goes to `artifacts` (default: `workdir`)."""
    corpus = workdir / f"corpus-{target}"
    write_corpus(target_module(target).seeds(), corpus)
    artifacts = artifacts or workdir
    artifacts.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable, "-m", f"tests.fuzz.fuzz_{target}", f"-runs={runs}", f"-max_len={max_len}", f"-seed={SEED}",
        "-print_final_stats=1", "-timeout=30", "-rss_limit_mb=2048", f"-artifact_prefix={artifacts}/{target}-",
        str(corpus),
    ]  # fmt: skip
    t0 = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, errors="replace", timeout=timeout_s)
    wall = time.perf_counter() - t0
    output = done.stdout + done.stderr
    executed = _EXECS.search(output) or _DONE.search(output)
    statuses = _STATUS.findall(output)
    artifact = _ARTIFACT.search(output)
    run = FuzzRun(target, "atheris", int(executed.group(1)) if executed else 0, wall, done.returncode, output=output)
    if statuses:
        run.coverage, run.features, run.corpus = (int(x) for x in statuses[-1][1:])
    if artifact:
        run.crash = Path(artifact.group(1))
    return run


def run_hypothesis(target: str, runs: int, *, max_len: int) -> FuzzRun:
    """`test_one_input` on `runs` inputs from hypothesis: random bytes, and seeds with bytes spliced in."""
    from hypothesis import HealthCheck, example, given, settings
    from hypothesis import strategies as st

    module = target_module(target)
    test_one_input: Callable[[bytes], None] = module.test_one_input
    seeds: list[bytes] = module.seeds()
    executed = 0

    def splice(args: tuple[bytes, int, int, bytes]) -> bytes:
        seed, at, cut, insert = args
        at %= len(seed) + 1
        return (seed[:at] + insert + seed[at + cut :])[:max_len]

    mutated = st.tuples(st.sampled_from(seeds), st.integers(0, max_len), st.integers(0, 8), st.binary(max_size=16))
    inputs = st.one_of(st.binary(max_size=max_len), mutated.map(splice))

    def one(data: bytes) -> None:
        nonlocal executed
        executed += 1
        test_one_input(data)

    check = given(inputs)(one)
    for seed in seeds:
        check = example(seed)(check)
    check = settings(
        max_examples=runs, database=None, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck)
    )(check)
    t0 = time.perf_counter()
    status, output = 0, ""
    try:
        check()
    except Exception as exc:  # a crash: hypothesis has shrunk it and printed the falsifying example
        status, output = 1, f"{type(exc).__name__}: {exc}"
    return FuzzRun(target, "hypothesis", executed, time.perf_counter() - t0, status, output=output)


def fuzz(target: str, runs: int, workdir: Path, *, max_len: int, artifacts: Path | None = None) -> FuzzRun:
    """Fuzz `target` for `runs` inputs with atheris if it is installed, else with hypothesis."""
    if atheris_available():
        return run_atheris(target, runs, workdir, max_len=max_len, artifacts=artifacts)
    return run_hypothesis(target, runs, max_len=max_len)
