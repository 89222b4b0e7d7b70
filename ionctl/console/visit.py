"""The console's visit controller: runs a prepared visit (`ionctl.treatment.visit.VisitRunner`, the code `ionctl run
--channel` runs) in a thread of its own, and hands the screens what they draw, channel by channel.

No Textual here. As with `SessionController`, nothing waits for the screen: each channel's samples go into that
channel's snapshot under a lock (the run screen polls `snapshot(n)` at its own pace), and state changes, the visit
policy's alerts and the end are announced through `notify`, which must not block (the app's `post_message`).
Requests go to the runner (`VisitRunner.request`), which hands them to each channel's session between samples.

The console's generic paths (Ctrl-C, quitting, the idle lock, SIGTERM and SIGHUP, the settle at the end) see the
same face as a single session's controller: `running`, `request(action, reason)` for every channel, `wait`,
`describe` and `ramp_down_s`.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ionctl.console.controller import Snapshot, _Live, time_left_s

if TYPE_CHECKING:
    from ionctl.core.session import Session, SessionResult, StateChange
    from ionctl.drivers.base import CurrentSource, Telemetry
    from ionctl.records.skin import SkinCheck
    from ionctl.treatment.visit import Channel, PreparedVisit, VisitReport, VisitRunner


@dataclass(frozen=True)
class ChannelChanged:
    """A channel's state changed (posted from that channel's thread)."""

    channel: int
    change: StateChange
    fault: str | None


@dataclass(frozen=True)
class ChannelAlert:
    """A channel faulted, and what the visit policy did about the others."""

    channel: int
    text: str


@dataclass(frozen=True)
class ChannelEnded:
    """A channel's session has ended (its record closes next): the fault screen takes over if it faulted without a
    FAULT state (an internal error) or raised the alarm (current that may still flow)."""

    channel: int
    result: SessionResult


@dataclass(frozen=True)
class VisitFinished:
    """Every channel has ended and every record is closed."""

    report: VisitReport


VisitEvent = ChannelChanged | ChannelAlert | ChannelEnded | VisitFinished


class VisitController:
    """One prepared visit on its open devices (`sources[n - 1]` for channel n), run in a thread; the records written
    to the store at `store_path`. `reconnect(address)` reopens a channel's device after a lost link. The skin check
before (`skin_check_before`, one for the visit's sites) goes into every channel's record."""

    def __init__(
        self,
        visit: PreparedVisit,
        sources: list[CurrentSource],
        *,
        store_path: str | Path | None,
        reconnect: Callable[[str], CurrentSource] | None = None,
        notify: Callable[[VisitEvent], object] | None = None,
        skin_check_before: SkinCheck | None = None,
    ) -> None:
        from ionctl.treatment.visit import VisitRunner

        self.visit = visit
        self.sources = list(sources)
        self.notify = notify
        self.messages = io.StringIO()  # what the channels' record writers say (failures), for the end screen
        self.report: VisitReport | None = None
        self._lock = threading.Lock()
        self._live = [_Live() for _ in visit.channels]
        self._done = threading.Event()
        self._thread: threading.Thread | None = None
        self.runner: VisitRunner = VisitRunner(
            visit, self._open, store_path=store_path, display=self, messages=self.messages, say=self._say,
            reconnect=(lambda n, channel: reconnect(channel.request.device)) if reconnect is not None else None,
            runner_options={"skin_check_before": skin_check_before},
        )  # fmt: skip

    # -- the UI's side ------------------------------------------------------------------------------------

    @property
    def count(self) -> int:
        return len(self.visit.channels)

    def label(self, n: int) -> str:
        """Channel `n` (1-based) as the screens name it: "2 (right hand)"."""
        return f"{n} ({self.visit.channels[n - 1].label})"

    def device(self, n: int) -> str:
        return self.visit.channels[n - 1].request.device

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("this visit was started already")
        self._thread = threading.Thread(target=self._run, name="ionctl-console-visit", daemon=True)
        self._thread.start()

    def request(self, action: str, reason: str | None = None, *, channel: int | None = None) -> None:
        """`stop` / `abort` / `pause` / `resume` every channel (`channel` None) or one (1-based)."""
        self.runner.request(action, channel, reason=reason)

    @property
    def running(self) -> bool:
        return self._thread is not None and not self._done.is_set()

    def channel_running(self, n: int) -> bool:
        return self.running and self.runner.channels[n - 1].report is None

    def wait(self, timeout_s: float | None = None) -> VisitReport | None:
        self._done.wait(timeout_s)
        return self.report

    @property
    def ramp_down_s(self) -> float:
        """The longest ramp down of any channel (how long a stop may take)."""
        return max(p.prescription.ramp_down_s for p in self.visit.prepared)

    def snapshot(self, n: int) -> Snapshot:
        planned = self.visit.prepared[n - 1].prescription.planned_dose_ma_min
        with self._lock:
            return self._live[n - 1].snapshot(planned)

    def describe(self) -> str:
        """One line per channel: its state, current and dose (the idle lock shows it)."""
        return "\n".join(f"Channel {self.label(n)}: {self.channel_text(n)}" for n in range(1, self.count + 1))

    def channel_text(self, n: int) -> str:
        """Channel `n`'s state, current and dose."""
        return self.snapshot(n).text()

    def ended_text(self) -> str:
        """How the visit ended, one phrase per channel (after `wait`)."""
        if self.report is None:
            return "not ended"
        return "; ".join(f"channel {self.label(n)}: {r.result.outcome}, record {r.record_id}"
                         for n, r in enumerate(self.report.reports, start=1))  # fmt: skip

    # -- the visit's thread -----------------------------------------------------------------------------------

    def _open(self, n: int, channel: Channel) -> CurrentSource:
        return self.sources[n - 1]

    def _run(self) -> None:
        from ionctl.treatment.report import not_started
        from ionctl.treatment.visit import VisitReport

        try:
            self.report = self.runner.run()
        except Exception as exc:  # noqa: BLE001 - the screen must still reach the visit's end
            self._say(f"INTERNAL ERROR running the visit: {exc!r}")
            self.report = VisitReport(self.visit.visit_id, tuple(run.label for run in self.runner.channels), tuple(
                run.report or not_started(f"internal error: {exc!r}", db=None, outcome="fault", fault="internal")
                for run in self.runner.channels))  # fmt: skip
        finally:
            for source in self.sources:  # a channel that never started leaves its device open; closing is idempotent
                try:
                    source.close()
                except Exception as exc:  # closing must not hide the result
                    self.messages.write(f"while closing the device: {exc}\n")
            if self.report is not None:
                with self._lock:
                    for live, report in zip(self._live, self.report.reports, strict=True):
                        live.state, live.fault, live.reason = (report.result.outcome, report.result.fault,
                                                               report.result.message)  # fmt: skip
            self._done.set()
            if self.report is not None:
                self._tell(VisitFinished(self.report))

    def _say(self, text: str) -> None:
        self.messages.write(text + "\n")

    # -- `ionctl.treatment.visit.VisitDisplay`: called from the channels' threads ------------------------------

    def on_sample(self, channel: int, session: Session, sample: Telemetry) -> None:
        left = time_left_s(session, sample)
        with self._lock:
            self._live[channel - 1].take(session, sample, left)

    def on_state(self, channel: int, session: Session, change: StateChange) -> None:
        fault = session.result.fault if change.state == "fault" else None
        with self._lock:
            live = self._live[channel - 1]
            live.state, live.reason = change.state, change.reason
            if fault is not None:
                live.fault = fault
        self._tell(ChannelChanged(channel, change, fault))

    def alert(self, channel: int, text: str) -> None:
        self._tell(ChannelAlert(channel, text))

    def ended(self, channel: int, result: SessionResult) -> None:
        with self._lock:
            live = self._live[channel - 1]
            live.state, live.fault, live.reason = result.outcome, result.fault, result.message
        self._tell(ChannelEnded(channel, result))

    def _tell(self, event: VisitEvent) -> None:
        if self.notify is not None:
            try:
                self.notify(event)
            except Exception:  # the UI went away: the visit goes on regardless
                pass
