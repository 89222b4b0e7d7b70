"""The fault matrix (`tests/campaign/fault_matrix.py`) as a test: every simulator fault kind in every energised
session state, each a whole session against the simulator process over its pty; every cell must meet the
expectation written in the script's table (outcome, exit code, fault code, time to zero and dose error
against the simulator's ground truth)."""

from __future__ import annotations

from sim.device import FAULT_KINDS
from tests.campaign.fault_matrix import EXPECTED, FAULT_ARGS, STATES, Cell, check, run_matrix


def test_the_matrix_covers_every_fault_kind_of_the_simulator_in_every_energised_state() -> None:
    assert set(FAULT_ARGS) == set(FAULT_KINDS)
    assert set(EXPECTED) == {(kind, state) for kind in FAULT_KINDS for state in STATES}


def test_a_cell_that_breaks_its_expectation_is_named_with_every_way_it_does() -> None:
    cell = Cell("electrode-lift", "delivering", "electrode-lift@32.5", 100.0, outcome="completed", exit=0,
                state_at_fault="delivering", zero_s=12.0, host_dose_ma_min=4.0, true_dose_ma_min=4.5)  # fmt: skip
    check(cell)
    assert not cell.ok
    text = "; ".join(cell.problems)
    for part in ("outcome/exit/alarm", "fault None", "zero current 12.00 s", "off the true by", "true dose 4.500"):
        assert part in text


def test_every_cell_of_the_fault_matrix_meets_its_expectation() -> None:
    cells = run_matrix(jobs=2)
    assert len(cells) == len(EXPECTED)
    failing = [f"{c.kind} x {c.state} ({c.spec}): {'; '.join(c.problems)} [{c.message}]" for c in cells if not c.ok]
    assert not failing, "\n".join(failing)
