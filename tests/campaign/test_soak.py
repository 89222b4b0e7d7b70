"""The soak (`tests/campaign/soak.py`): 200 back-to-back `ionctl run` sessions in this process, each against a
fresh simulator over its pty with a seeded random fault, into one record store. No hang, memory flat, every
record closed and the store verified."""

from __future__ import annotations

import random

import pytest

from sim.device import FAULT_KINDS
from tests.campaign.soak import SoakReport, random_fault, run_soak

SESSIONS = 200
#: Resident memory may grow by this much from the first session to the last (allocator noise, caches filled
#: once); a leak of a few hundred KiB per session would pass it within 200 sessions.
RSS_GROWTH_LIMIT_KIB = 10 * 1024


def test_the_random_faults_are_reproducible_and_cover_every_kind_and_no_fault() -> None:
    faults = [random_fault(random.Random(7)) for _ in range(3)]
    assert faults[0] == faults[1] == faults[2]
    rng = random.Random(7)
    drawn = [random_fault(rng) for _ in range(SESSIONS)]
    kinds = {f.partition("@")[0].partition("=")[0] for f in drawn if f is not None}
    assert kinds == set(FAULT_KINDS)
    assert None in drawn


def test_a_report_with_a_leak_or_a_hang_is_not_clean() -> None:
    report = SoakReport(sessions=SESSIONS, rss_first_kib=30_000, rss_last_kib=30_000 + RSS_GROWTH_LIMIT_KIB + 1)
    assert problems(report) == [f"resident memory grew {RSS_GROWTH_LIMIT_KIB + 1} KiB"]
    report = SoakReport(sessions=SESSIONS - 1, hung=["session 3"], verify="record 2: chain broken")
    assert len(problems(report)) == 3


def problems(report: SoakReport) -> list[str]:
    found = []
    if report.sessions != SESSIONS:
        found.append(f"{report.sessions} of {SESSIONS} sessions ran")
    if report.hung or report.internal or report.not_closed:
        found.append(f"hung {report.hung}, internal errors {report.internal}, records not closed {report.not_closed}")
    if report.verify is not None:
        found.append(f"the store does not verify: {report.verify}")
    if report.rss_growth_kib > RSS_GROWTH_LIMIT_KIB:
        found.append(f"resident memory grew {report.rss_growth_kib} KiB")
    return found


@pytest.mark.campaign
def test_200_sessions_with_random_faults_never_hang_keep_memory_flat_and_leave_verified_closed_records() -> None:
    report = run_soak(SESSIONS, seed=7)
    assert problems(report) == [], report.figures()
    assert report.records == SESSIONS
