"""`SessionRunner`: one prepared session on the in-process simulator, from the record's opening to its closing,
with every way out handled in one place."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ionctl.config import SiteConfig
from ionctl.config.people import Identity
from ionctl.core.vocabulary import ExitCode
from ionctl.drivers import DeviceError
from ionctl.records import Store
from ionctl.treatment import OVERRIDE_ACTION, Prepared, SessionRunner, TreatmentRequest, prepare, result_text
from sim.plant import LOAD_PRESETS
from tests.people import SUPERVISOR, TECHNICIAN, Clinic
from tests.session.inprocess import InProcessSource, simulated
from tests.treatment.conftest import anchor_site, signatures_verify
from tests.treatment.test_prepare import DEXA


def runner(prepared: Prepared, store: Store | None, **options: Any) -> tuple[SessionRunner, InProcessSource]:
    """A runner of `prepared` on a fresh simulated device, the session on the simulator's own host clock."""
    source, _ = simulated(LOAD_PRESETS["normal"])
    options.setdefault("open_source", lambda: source)
    opener: Callable[[], InProcessSource] = options.pop("open_source")
    return SessionRunner.of(prepared, opener, store=store, messages=io.StringIO(),
                            **options), source  # fmt: skip


def test_a_prepared_session_completes_on_the_simulator_and_its_record_is_closed(
    config: SiteConfig, store: Store, tess: Identity
) -> None:
    run, source = runner(prepare(DEXA, store=store, config=config, operator=tess), store)
    report = run.run()
    assert (report.result.outcome, report.exit_code) == ("completed", ExitCode.OK)
    assert report.record_id is not None and report.record_path == str(store.path)
    record = store.get(report.record_id)
    assert record.fields["outcome"] == "completed" and record.fields["config_sha256"] == config.sha256
    assert record.fields["dose_ma_min"] == pytest.approx(0.5, rel=0.02) and record.telemetry
    assert "start" in source.commands


def test_an_override_is_recorded_against_the_sessions_record(
    config: SiteConfig, store: Store, tess: Identity, sam: Identity, refusing_course: int
) -> None:
    request = TreatmentRequest(**{**DEXA.__dict__, "course_id": refusing_course, "override_reason": "missed visit"})
    run, _ = runner(prepare(request, store=store, config=config, operator=tess, supervisor=lambda: sam), store)
    report = run.run()
    assert report.result.outcome == "completed"
    (entry,) = store.audit(action=OVERRIDE_ACTION)
    assert (entry["record_id"], entry["course_id"], entry["actor"]) == (report.record_id, refusing_course,
                                                                        SUPERVISOR)  # fmt: skip
    assert entry["detail"]["signature"]["signer"] == SUPERVISOR  # signed by the supervisor who logged in
    assert entry["detail"]["reason"] == "missed visit"
    assert [r["id"] for r in store.course_records(refusing_course)][-1] == report.record_id


def test_a_record_that_cannot_be_written_stops_the_session_and_ends_record_failed(
    config: SiteConfig, store: Store, tess: Identity, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ionctl.records.writer import RecordWriter

    def full(self: RecordWriter, row: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(RecordWriter, "sample", full)
    run, source = runner(prepare(DEXA, store=store, config=config, operator=tess), store)
    report = run.run()
    assert (report.result.outcome, report.exit_code) == ("record_failed", ExitCode.RECORD_FAILED)
    assert "the record cannot be written: [Errno 28] No space left on device" in report.result.message
    assert isinstance(run.messages, io.StringIO) and "stopping the session" in run.messages.getvalue()
    assert "stop" in source.commands  # a ramped stop, asked as soon as the record failed


def test_a_device_that_cannot_be_reached_is_a_device_error_with_a_closed_record(
    config: SiteConfig, store: Store, tess: Identity
) -> None:
    said: list[str] = []

    def unreachable() -> InProcessSource:
        raise DeviceError("no such port")

    prepared = prepare(DEXA, store=store, config=config, operator=tess)
    run, _ = runner(prepared, store, open_source=unreachable, say=said.append)
    report = run.run()
    assert (report.result.outcome, report.result.fault, report.exit_code) == ("fault", "DeviceError", ExitCode.DEVICE)
    assert report.record_id is not None and store.get(report.record_id).fields["outcome"] == "fault"
    assert said == ["cannot reach the device at inprocess:sim: no such port\nNo current flowed."]


def test_a_record_that_cannot_be_opened_starts_nothing_and_opens_no_device(
    config: SiteConfig, store: Store, tess: Identity, sam: Identity, refusing_course: int
) -> None:
    prepared = prepare(TreatmentRequest(**{**DEXA.__dict__, "course_id": refusing_course,
                                           "override_reason": "missed visit"}),
                       store=store, config=config, operator=tess, supervisor=lambda: sam)  # fmt: skip
    opened: list[str] = []
    run, _ = runner(prepared, store, open_source=lambda: opened.append("opened"),
                    opening_check=lambda s: (_ for _ in ()).throw(OSError("the disk is read-only")))  # fmt: skip
    report = run.run()
    assert (report.result.outcome, report.exit_code) == ("refused", ExitCode.REFUSED)
    assert "not started: the session record could not be opened" in report.result.message
    assert "the disk is read-only" in report.result.message and opened == []
    assert store.audit(action=OVERRIDE_ACTION) == []  # an override that names no session is not recorded


def test_a_session_that_raises_is_abandoned_as_an_internal_fault_and_its_source_closed(
    config: SiteConfig, store: Store, tess: Identity
) -> None:
    class Broken:
        def on_sample(self, session: Any, sample: Any) -> None:
            if session.state == "delivering":
                raise RuntimeError("a bug in the display")

        def on_state(self, session: Any, change: Any) -> None:
            pass

        def ended(self, result: Any) -> None:
            self.result = result

    display = Broken()
    run, source = runner(prepare(DEXA, store=store, config=config, operator=tess), store, display=display)
    closed: list[bool] = []
    close = source.close
    source.close = lambda: (closed.append(True), close())[1]  # type: ignore[method-assign]
    report = run.run()
    assert (report.result.outcome, report.result.fault, report.exit_code) == ("fault", "internal", ExitCode.FAULT)
    assert display.result is report.result and report.record_id is not None
    assert store.get(report.record_id).fields["outcome"] == "fault"
    assert closed  # the watchdog takes the output to zero once the driver lets go


def test_the_closed_record_names_and_is_signed_performed_by_its_authenticated_operator(
    config: SiteConfig, store: Store, tess: Identity, clinic: Clinic
) -> None:
    run, _ = runner(prepare(DEXA, store=store, config=config, operator=tess), store)
    report = run.run()
    assert report.result.outcome == "completed" and report.record_id is not None
    assert store.get(report.record_id).fields["operator"] == TECHNICIAN
    (sign,) = store.audit(action="record-sign", record_id=report.record_id)
    assert sign["actor"] == TECHNICIAN and sign["detail"]["meaning"] == "performed"
    assert sign["detail"]["record_sha256"] == store.record_digest(report.record_id)
    assert sign["detail"]["signature"]["full_name"] == "Tess Technician"
    assert signatures_verify(clinic, store) > 0  # the sign-off among them, verified against the enrolled key
    assert report.signature is not None and "Tess Technician (tess, technician)" in report.signature
    assert "signed Tess Technician (tess, technician)" in result_text(report)


def test_a_sign_off_that_fails_is_a_notice_and_changes_nothing_about_the_session(
    config: SiteConfig, store: Store, tess: Identity, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ionctl.config.people import People

    def refuse(*args: Any, **kwargs: Any) -> int:
        raise OSError("the store is held by another program")

    monkeypatch.setattr(People, "signed", refuse)
    run, _ = runner(prepare(DEXA, store=store, config=config, operator=tess), store)
    report = run.run()
    assert (report.result.outcome, report.exit_code) == ("completed", ExitCode.OK)
    assert report.record_id is not None and store.get(report.record_id).fields["outcome"] == "completed"
    assert isinstance(run.messages, io.StringIO)
    assert f"record {report.record_id} was not signed by tess" in run.messages.getvalue()
    assert f"ionctl records sign {report.record_id} --as tess" in run.messages.getvalue()
    assert report.signature is None and store.audit(action="record-sign") == []


def test_each_record_close_leaves_a_signed_checkpoint_of_the_chain_head_in_the_anchor(
    store: Store, tess: Identity, clinic: Clinic, tmp_path: Path
) -> None:
    from ionctl.config.anchor import read_checkpoints

    anchor = tmp_path / "anchor"
    anchor.mkdir()
    site = anchor_site(clinic, store, anchor)
    heads = []
    for _ in range(2):
        run, _ = runner(prepare(DEXA, store=store, config=site, operator=tess), store)
        assert run.run().result.outcome == "completed"
        heads.append(store.chain_head())
    checkpoints = read_checkpoints(anchor, store.path)
    assert [(c.gseq, c.hash) for c in checkpoints] == heads  # the head after each close (and its sign-off)
    assert all(c.signature is not None and c.signature.signer == TECHNICIAN for c in checkpoints)


def test_an_anchor_that_cannot_be_written_is_a_notice_and_the_session_ends_as_it_did(
    store: Store, tess: Identity, clinic: Clinic, tmp_path: Path
) -> None:
    site = anchor_site(clinic, store, tmp_path / "not-mounted")  # no such directory
    run, _ = runner(prepare(DEXA, store=store, config=site, operator=tess), store)
    report = run.run()
    assert (report.result.outcome, report.exit_code) == ("completed", ExitCode.OK)
    assert isinstance(run.messages, io.StringIO)
    assert f"no checkpoint of the record store was written to the anchor {tmp_path / 'not-mounted'}" in (
        run.messages.getvalue()
    )
    assert len(store.audit(action="record-sign")) == 1  # the sign-off does not depend on the anchor


def test_the_sessions_lock_is_released_before_the_sign_off_and_the_checkpoint(
    store: Store, tess: Identity, clinic: Clinic, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ionctl.treatment.recorder import Recorder

    order: list[str] = []
    release, sign_off = Recorder.release, Recorder.sign_off

    def released(self: Recorder) -> None:
        release(self)
        order.append("release")

    def signed(self: Recorder, *args: Any) -> None:
        order.append("sign-off")
        sign_off(self, *args)

    monkeypatch.setattr(Recorder, "release", released)
    monkeypatch.setattr(Recorder, "sign_off", signed)
    (tmp_path / "anchor").mkdir()
    site = anchor_site(clinic, store, tmp_path / "anchor")
    run, _ = runner(prepare(DEXA, store=store, config=site, operator=tess), store)
    assert run.run().result.outcome == "completed"
    assert order == ["release", "sign-off"]


def _fifo_anchor(clinic: Clinic, store: Store, tmp_path: Path) -> tuple[SiteConfig, Path]:
    """An anchor directory whose file for this store is a FIFO (anyone who may append to the share can make
    one; a hard-mounted share that stopped answering blocks an open the same way)."""
    import os

    from ionctl.config.anchor import anchor_file

    anchor = tmp_path / "anchor"
    anchor.mkdir()
    site = anchor_site(clinic, store, anchor)
    identity = store.first_link()
    assert identity is not None
    fifo = anchor_file(anchor, identity)
    os.mkfifo(fifo)
    return site, fifo


def test_an_anchor_file_that_is_a_fifo_is_refused_at_once_and_the_session_ends_as_it_did(
    store: Store, tess: Identity, clinic: Clinic, tmp_path: Path
) -> None:
    import time

    site, fifo = _fifo_anchor(clinic, store, tmp_path)
    run, _ = runner(prepare(DEXA, store=store, config=site, operator=tess), store)
    started = time.monotonic()
    report = run.run()
    assert time.monotonic() - started < 30  # it used to block for ever on the FIFO's open
    assert (report.result.outcome, report.exit_code) == ("completed", ExitCode.OK)
    assert report.record_id is not None and store.get(report.record_id).fields["outcome"] == "completed"
    assert report.signature is not None  # the sign-off is written before the checkpoint is tried
    assert isinstance(run.messages, io.StringIO)
    assert f"{fifo} is not a regular file" in run.messages.getvalue()


def test_a_checkpoint_write_that_hangs_is_given_up_after_its_wait_with_a_notice(
    store: Store, tess: Identity, clinic: Clinic, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading
    import time

    from ionctl.config import anchor as anchor_module

    anchor = tmp_path / "anchor"
    anchor.mkdir()
    site = anchor_site(clinic, store, anchor)
    hung = threading.Event()
    monkeypatch.setattr(anchor_module, "_append", lambda path, data: hung.wait())  # a share that stopped answering
    monkeypatch.setattr(anchor_module, "WRITE_WAIT_S", 0.2)
    run, _ = runner(prepare(DEXA, store=store, config=site, operator=tess), store)
    started = time.monotonic()
    try:
        report = run.run()
    finally:
        hung.set()
    assert time.monotonic() - started < 20
    assert (report.result.outcome, report.exit_code) == ("completed", ExitCode.OK)
    assert isinstance(run.messages, io.StringIO)
    assert "did not finish within 0.2 s (is the share hung?)" in run.messages.getvalue()
    assert report.signature is not None and store.open_ids() == []


def test_an_anchor_that_is_not_a_writable_directory_is_a_notice(
    store: Store, tess: Identity, clinic: Clinic, tmp_path: Path
) -> None:
    not_a_directory = tmp_path / "anchor"
    not_a_directory.write_text("a file where the share's directory should be\n", encoding="utf-8")
    site = anchor_site(clinic, store, not_a_directory)
    run, _ = runner(prepare(DEXA, store=store, config=site, operator=tess), store)
    report = run.run()
    assert (report.result.outcome, report.exit_code) == ("completed", ExitCode.OK)
    assert isinstance(run.messages, io.StringIO)
    assert f"no checkpoint of the record store was written to the anchor {not_a_directory}" in run.messages.getvalue()


def test_ionctl_run_with_a_fifo_as_its_anchor_file_exits_promptly_with_its_exit_code(
    store: Store, clinic: Clinic, tmp_path: Path
) -> None:
    import subprocess
    import sys

    from tests.people import PASSWORDS

    _fifo_anchor(clinic, store, tmp_path)
    args = ["run",
            "--site", "left forearm", "--device", str(tmp_path / "no-such-port"),
            "--drug", "dexamethasone", "--polarity", "cathode",
            "--electrode-area", "10", "--current", "6", "--dose", "40", "--patient", "P-1", "--db", str(clinic.store),
            "--config", str(clinic.config), "--operator", TECHNICIAN, "--password-stdin", "--yes"]  # fmt: skip
    done = subprocess.run([sys.executable, "-m", "ionctl", *args], input=PASSWORDS[TECHNICIAN] + "\n",
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == ExitCode.REFUSED, done.stderr  # 6 mA is over the site's limits: refused, recorded
    assert "is not a regular file" in done.stderr
    (record,) = store.list_records()
    assert record["outcome"] == "refused"
    assert len(store.audit(action="record-sign", record_id=record["id"])) == 1
    assert store.open_ids() == []


def test_a_skin_check_before_is_written_under_the_operators_account(
    config: SiteConfig, store: Store, tess: Identity
) -> None:
    from ionctl.records.skin import BEFORE, SKIN_CHECK_BEFORE, SkinCheck
    from ionctl.records.skin import ITEMS as SKIN_ITEMS

    check = SkinCheck.of(BEFORE, dict.fromkeys(SKIN_ITEMS, "no"))
    run, _ = runner(prepare(DEXA, store=store, config=config, operator=tess), store, skin_check_before=check)
    report = run.run()
    (entry,) = store.audit(action=SKIN_CHECK_BEFORE, record_id=report.record_id)
    assert entry["actor"] == TECHNICIAN
