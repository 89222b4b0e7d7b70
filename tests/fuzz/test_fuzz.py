"""The fuzz targets under a coverage-guided fuzzer (atheris), or hypothesis where atheris is not installed.

The default run fuzzes each target briefly, so the harnesses themselves are exercised on every run; the
campaign (`pytest -m campaign tests/fuzz`) runs each for a million inputs. Only the package's own error types
may escape a target; any other exception is a crash, saved as a reproducer under tests/fuzz/crashes/.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fuzz import fuzz_decoder, fuzz_scpi
from tests.fuzz.runner import FuzzRun, atheris_available, fuzz, run_atheris, run_hypothesis

CRASHES = Path(__file__).parent / "crashes"
MAX_LEN = {"decoder": 1024, "scpi": 256}  # a few frames / a few program messages
QUICK_RUNS = {"decoder": 20_000, "scpi": 3_000}  # a few seconds each (the SCPI target steps the plant)
CAMPAIGN_RUNS = 1_000_000
# Where atheris is missing, hypothesis drives the targets (about 1000 inputs/s here): the quick run stays quick.
QUICK_RUNS_HYPOTHESIS = 5_000


def _report(run: FuzzRun, capsys: pytest.CaptureFixture[str], record_property) -> None:  # type: ignore[no-untyped-def]
    for name in ("engine", "runs", "wall_s", "exit_status", "coverage", "features", "corpus"):
        record_property(name, getattr(run, name))
    with capsys.disabled():
        print("\n" + run.summary())


@pytest.mark.parametrize("module", [fuzz_decoder, fuzz_scpi], ids=["decoder", "scpi"])
def test_every_seed_passes_the_harness(module) -> None:  # type: ignore[no-untyped-def]
    seeds = module.seeds()
    assert len(seeds) >= 5
    for seed in seeds:
        module.test_one_input(seed)


def test_decoder_harness_reports_a_decoder_that_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken_feed(self, data: bytes):  # type: ignore[no-untyped-def]
        raise IndexError("not a ProtocolError")

    monkeypatch.setattr(fuzz_decoder.Decoder, "feed", broken_feed)
    with pytest.raises(IndexError):
        fuzz_decoder.test_one_input(b"\x01\x00")


def test_scpi_harness_reports_an_instrument_that_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken_handle(self, program_message: str):  # type: ignore[no-untyped-def]
        raise KeyError("not an SCPI error")

    monkeypatch.setattr(fuzz_scpi.SourceMeter, "handle", broken_handle)
    with pytest.raises(KeyError):
        fuzz_scpi.test_one_input(b"*IDN?")


def test_scpi_harness_lets_the_parsers_own_errors_pass() -> None:
    fuzz_scpi.test_one_input(b":SOUR:CURR 1 parsec;*RST 7;:BOGUS:HEADER?;:SOUR:CURR 'x\n")


@pytest.mark.skipif(not atheris_available(), reason="atheris is not installed")
def test_runner_reports_a_crash_and_saves_its_reproducer(tmp_path: Path) -> None:
    run = run_atheris("selftest", 1000, tmp_path, max_len=16)
    assert run.exit_status != 0
    assert run.crash is not None and run.crash.read_bytes()[:1] == b"!"
    assert "planted bug" in run.output


def test_hypothesis_fallback_reports_a_crash() -> None:
    run = run_hypothesis("selftest", 50, max_len=16)
    assert run.exit_status == 1
    assert "planted bug" in run.output


@pytest.mark.parametrize("target", ["decoder", "scpi"])
def test_short_fuzz_run_finds_no_crash(
    target: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], record_property
) -> None:  # type: ignore[no-untyped-def]
    runs = QUICK_RUNS[target] if atheris_available() else QUICK_RUNS_HYPOTHESIS
    run = fuzz(target, runs, tmp_path, max_len=MAX_LEN[target])
    _report(run, capsys, record_property)
    assert run.exit_status == 0, run.failure_report()
    assert run.runs >= runs, run.failure_report()


@pytest.mark.parametrize("target", ["decoder", "scpi"])
def test_hypothesis_fallback_runs_the_target(target: str) -> None:
    run = run_hypothesis(target, 300, max_len=MAX_LEN[target])
    assert run.exit_status == 0, run.failure_report()
    assert run.runs >= 300


@pytest.mark.campaign
@pytest.mark.parametrize("target", ["decoder", "scpi"])
def test_a_million_inputs_raise_only_the_packages_own_errors(
    target: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], record_property
) -> None:  # type: ignore[no-untyped-def]
    run = fuzz(target, CAMPAIGN_RUNS, tmp_path, max_len=MAX_LEN[target], artifacts=CRASHES)
    _report(run, capsys, record_property)
    assert run.exit_status == 0, run.failure_report()
    assert run.runs >= CAMPAIGN_RUNS, run.failure_report()
