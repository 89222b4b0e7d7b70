"""Visits (`ionctl.treatment.visit`): several channels, each a whole session on its own simulated device, run at
once; the checks only the visit can see; the visit policy on a fault, judged on each device's ground truth."""

from __future__ import annotations

import io
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from ionctl.config import SiteConfig
from ionctl.config.people import Identity
from ionctl.core.vocabulary import ExitCode
from ionctl.records import Store
from ionctl.records.clinical import ClinicalDetails
from ionctl.treatment.visit import (
    Channel,
    VisitPolicy,
    VisitRefused,
    VisitRequest,
    VisitRunner,
    prepare_visit,
    worst,
)
from sim.faults import FaultSpec
from sim.plant import LOAD_PRESETS
from tests.session.inprocess import GroundTruth, InProcessSource, simulated
from tests.treatment.test_prepare import DEXA

HANDS = ("left hand", "right hand")


def two_hands(**changes: Any) -> VisitRequest:
    base = replace(DEXA, **changes)
    return VisitRequest(tuple(Channel(replace(base, device=f"inprocess:{n}", site=site))
                              for n, site in enumerate(HANDS, start=1)))  # fmt: skip


class Alerts:
    """A `VisitDisplay` that keeps the alerts."""

    def __init__(self) -> None:
        self.alerts: list[tuple[int, str]] = []
        self.faulted = threading.Event()

    def on_sample(self, channel: int, session: Any, sample: Any) -> None:
        pass

    def on_state(self, channel: int, session: Any, change: Any) -> None:
        pass

    def alert(self, channel: int, text: str) -> None:
        self.alerts.append((channel, text))
        self.faulted.set()

    def ended(self, channel: int, result: Any) -> None:
        pass


def run_visit(visit: VisitRequest, store: Store, config: SiteConfig, tess: Identity, *,
              faults: dict[int, list[str]] | None = None, hold_until_fault: bool = False,
              display: Alerts | None = None) -> tuple[Any, list[GroundTruth], list[InProcessSource]]:  # fmt: skip
    """Prepare and run `visit` on one simulated device per channel (faults by channel number); with
    `hold_until_fault`, every channel without a fault waits (in real time, at most 10 s) once 2 s into its
    output for the visit's first fault alert, so that the policy meets it energised."""
    prepared = prepare_visit(visit, store=store, config=config, operator=tess)
    display = display or Alerts()
    sources, truths = [], []
    for n in range(1, len(visit.channels) + 1):
        specs = [FaultSpec.parse(f) for f in (faults or {}).get(n, [])]
        source, truth = simulated(LOAD_PRESETS["normal"], faults=specs, seed=n)
        truth.keep = []
        if hold_until_fault and not specs:
            source.at(2.0, lambda: display.faulted.wait(10.0))
        sources.append(source)
        truths.append(truth)
    runner = VisitRunner(prepared, lambda n, channel: sources[n - 1], store_path=store.path, display=display,
                         messages=io.StringIO())  # fmt: skip
    return runner.run(), truths, sources


def test_a_two_hand_visit_completes_each_channel_its_own_session_record_and_dose(
    config: SiteConfig, store: Store, tess: Identity
) -> None:
    report, truths, _ = run_visit(two_hands(), store, config, tess)
    assert report.exit_code == ExitCode.OK and [r.result.outcome for r in report.reports] == ["completed"] * 2
    ids = [r.record_id for r in report.reports]
    assert None not in ids and len(set(ids)) == 2
    records = [store.get(record_id) for record_id in ids if record_id is not None]
    details = [ClinicalDetails.of_record(record.fields) for record in records]
    assert [d.site.text if d.site else None for d in details] == list(HANDS)
    visits = [d.visit for d in details]
    assert visits[0] is not None and visits[1] is not None
    assert visits[0].id == visits[1].id == report.visit_id
    assert [(v.channel, v.channels) for v in visits if v] == [(1, 2), (2, 2)]
    for record, truth in zip(records, truths, strict=True):
        assert record.fields["dose_ma_min"] == pytest.approx(truth.dose_ma_min, rel=0.01)
        assert truth.dose_ma_min == pytest.approx(DEXA.dose_ma_min, rel=0.02)


def _energised_after(truth: GroundTruth, t_s: float) -> bool:
    rows = truth.keep or []
    return any(float(r["t_s"]) > t_s and float(r["current_ua"]) > 100.0 for r in rows)  # type: ignore[arg-type]


def _fault_t(truth: GroundTruth) -> float:
    """Device time of the faulted channel's last energised step (its output cut)."""
    rows = truth.keep or []
    return max(float(r["t_s"]) for r in rows if float(r["current_ua"]) > 100.0)  # type: ignore[arg-type]


def test_stop_all_an_electrode_lift_on_one_hand_ramps_the_other_hand_down(
    config: SiteConfig, store: Store, tess: Identity
) -> None:
    visit = replace(two_hands(dose_ma_min=2.0), policy=VisitPolicy.STOP_ALL)
    display = Alerts()
    report, truths, _ = run_visit(visit, store, config, tess, faults={1: ["electrode-lift@4"]},
                                  hold_until_fault=True, display=display)  # fmt: skip
    lifted, other = report.reports
    assert lifted.result.outcome == "fault" and lifted.exit_code == ExitCode.FAULT
    assert other.result.outcome != "completed"  # stopped by the policy, short of its dose
    assert report.exit_code == ExitCode.FAULT  # the worst channel's
    assert [channel for channel, _ in display.alerts] == [1] and "ramping down" in display.alerts[0][1]
    # ground truth: the other hand's device ended at zero, having delivered less than prescribed
    assert truths[1].current_ua == 0.0 and truths[1].dose_ma_min < 2.0 * 0.9
    record = store.get(other.record_id)  # type: ignore[arg-type]
    said = [e["text"] for e in record.events]
    assert "visit: channel 1 (left hand) faulted" in " ".join(said)
    assert any(text.endswith("this channel ramps down (visit policy stop-all)") for text in said)


def test_continue_an_electrode_lift_on_one_hand_lets_the_other_hand_finish_its_dose(
    config: SiteConfig, store: Store, tess: Identity
) -> None:
    visit = replace(two_hands(dose_ma_min=2.0), policy=VisitPolicy.CONTINUE)
    display = Alerts()
    report, truths, _ = run_visit(visit, store, config, tess, faults={1: ["electrode-lift@4"]},
                                  hold_until_fault=True, display=display)  # fmt: skip
    lifted, other = report.reports
    assert lifted.result.outcome == "fault" and other.result.outcome == "completed"
    assert report.exit_code == ExitCode.FAULT
    assert [channel for channel, _ in display.alerts] == [1] and "continue" in display.alerts[0][1]
    # ground truth: the other hand was energised after the lifted hand's output was cut, and got its dose
    assert _energised_after(truths[1], _fault_t(truths[0]) + 1.0)
    assert truths[1].dose_ma_min == pytest.approx(2.0, rel=0.02)
    record = store.get(other.record_id)  # type: ignore[arg-type]
    assert any(
        e["text"].startswith("visit: channel 1 (left hand) faulted")
        and e["text"].endswith("this channel continues (visit policy continue)")
        for e in record.events
    )


def test_a_shared_return_electrode_holds_the_sum_of_its_channels_to_the_site_limit(
    config: SiteConfig, store: Store, tess: Identity
) -> None:
    visit = two_hands(current_ma=2.5, electrode_area_cm2=10.0, dose_ma_min=1.0)
    shared = VisitRequest(tuple(replace(c, return_path="common") for c in visit.channels))
    with pytest.raises(VisitRefused, match=r"share return path 'common': 5 mA .* above the site's max_current_ma 4 mA"):
        prepare_visit(shared, store=store, config=config, operator=tess)
    prepare_visit(visit, store=store, config=config, operator=tess)  # own return electrodes: each within its limit
    assert store.list_records() == []  # preparing writes no record


@pytest.mark.parametrize(
    ("second", "message"),
    [({"device": "inprocess:1"}, "both name device inprocess:1"), ({"site": "Left hand"}, "both treat the left hand"),
     ({"site": "L hand"}, "both treat the left hand"), ({"site": " left-HAND "}, "both treat the left hand")],
)  # fmt: skip
def test_two_channels_on_one_device_or_one_site_are_refused(
    config: SiteConfig, store: Store, tess: Identity, second: dict[str, Any], message: str
) -> None:
    first, other = two_hands().channels
    visit = VisitRequest((first, Channel(replace(other.request, **second))))
    with pytest.raises(VisitRefused, match=message) as refused:
        prepare_visit(visit, store=store, config=config, operator=tess)
    assert refused.value.channel == 2


def test_a_channel_over_its_limit_refuses_the_visit_naming_the_channel(
    config: SiteConfig, store: Store, tess: Identity
) -> None:
    first, other = two_hands().channels
    visit = VisitRequest((first, Channel(replace(other.request, current_ma=9.0))))
    with pytest.raises(VisitRefused, match=r"channel 2 \(right hand\)") as refused:
        prepare_visit(visit, store=store, config=config, operator=tess)
    assert refused.value.channel == 2


def test_the_visits_exit_code_is_its_worst_channels() -> None:
    assert worst([ExitCode.OK, ExitCode.OPERATOR, ExitCode.FAULT]) == ExitCode.FAULT
    assert worst([ExitCode.OK, ExitCode.REFUSED]) == ExitCode.REFUSED
    assert worst([ExitCode.OK, ExitCode.RECORD_FAILED, ExitCode.OPERATOR]) == ExitCode.RECORD_FAILED
    assert worst([]) == ExitCode.OK


def test_the_site_sets_the_visit_policy(config: SiteConfig, store: Store, tess: Identity, tmp_path: Path) -> None:
    prepared = prepare_visit(two_hands(), store=store, config=config, operator=tess)
    assert prepared.policy is VisitPolicy(config.visits.fault_policy) is VisitPolicy.STOP_ALL


def test_each_channels_chart_shows_every_channel_of_its_visit(config: SiteConfig, store: Store, tess: Identity) -> None:
    pytest.importorskip("matplotlib")
    pytest.importorskip("pypdf")
    from ionctl.records.narrative import show_text, visit_channels_in
    from ionctl.records.pdf import to_pdf
    from tests.records.charts import pdf_text

    visit = replace(two_hands(dose_ma_min=2.0), policy=VisitPolicy.STOP_ALL)
    report, _, _ = run_visit(visit, store, config, tess, faults={2: ["electrode-lift@4"]}, hold_until_fault=True)
    ids = [r.record_id for r in report.reports]
    assert None not in ids
    left = store.get(ids[0])  # type: ignore[arg-type]
    channels = visit_channels_in(store, left)
    assert [row[:2] for row in channels] == [("1 of 2", "left hand"), ("2 of 2", "right hand")]
    assert channels[0][2] == f"#{ids[0]} (this record)" and channels[1][2] == f"#{ids[1]}"
    assert [row[3] for row in channels] == ["stopped", "fault"]
    shown = "\n".join(show_text(left, visit=channels))
    assert "This visit's channels (2)" in shown and "right hand" in shown and "fault" in shown
    text = " ".join(pdf_text(to_pdf(left, visit=channels)))
    assert "This visit's channels (2)" in text and f"#{ids[1]}" in text and "right hand" in text
    alone = store.get(ids[0])  # a session of no visit lists no channels
    assert visit_channels_in(store, type(alone)({**alone.fields, "clinical": None}, [], [], [])) == []


def test_a_channel_abandoned_on_an_internal_error_counts_as_a_fault_for_the_stop_all_policy(
    config: SiteConfig, store: Store, tess: Identity
) -> None:
    visit = replace(two_hands(dose_ma_min=2.0), policy=VisitPolicy.STOP_ALL)
    prepared = prepare_visit(visit, store=store, config=config, operator=tess)
    display = Alerts()
    sources, truths = [], []
    for n in (1, 2):
        source, truth = simulated(LOAD_PRESETS["normal"], seed=n)
        sources.append(source)
        truths.append(truth)

    def bug() -> None:
        raise RuntimeError("a bug in the host, not the device")

    sources[0].at(4.0, bug)  # the left hand's session dies of it, 4 s into its output
    sources[1].at(2.0, lambda: display.faulted.wait(10.0))  # the right hand meets the policy energised
    runner = VisitRunner(prepared, lambda n, channel: sources[n - 1], store_path=store.path, display=display,
                         messages=io.StringIO())  # fmt: skip
    report = runner.run()
    broken, other = report.reports
    assert broken.result.outcome == "fault" and broken.result.fault == "internal"
    assert [channel for channel, _ in display.alerts] == [1]  # the policy heard of it
    assert other.result.outcome == "stopped"
    # ground truth: the right hand's device ended at zero, short of its dose
    assert truths[1].current_ua == 0.0 and truths[1].dose_ma_min < 2.0 * 0.9


def test_a_visit_whose_channels_name_a_course_is_refused_before_any_device_opens(
    config: SiteConfig, store: Store, tess: Identity
) -> None:
    visit = two_hands()
    coursed = replace(visit, channels=(visit.channels[0], replace(visit.channels[1],
                                                                  request=replace(visit.channels[1].request,
                                                                                  course_id=7))))  # fmt: skip
    with pytest.raises(VisitRefused, match="not sessions of a treatment course") as refused:
        prepare_visit(coursed, store=store, config=config, operator=tess)
    assert refused.value.channel == 2
