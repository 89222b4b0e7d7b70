"""A visit: one patient, several channels at once (both hands; hands and feet), each channel a whole session on
its own device with its own prescription, record and every guarantee a single session has.

`prepare_visit` prepares each channel as `prepare` prepares a session (approval, course rules, validation), then
checks what only the visit can see: no two channels on one device or one treatment site, and the current through a
shared return path. Channels that share a return electrode (or a return path through one device) name the same
`return_path`; the return electrode carries their sum, so the sum is held to the site's `max_current_ma` for the
class, the limit that applies to the current through one electrode pair (ionctl/data/limits.toml gives its
sources). Channels with their own return electrodes are independent circuits and are each held to their own limits.

`VisitRunner.run` runs every channel's `SessionRunner` in a thread of its own, each with its own record-store
connection, device, session clock, monitors and record writer: nothing one channel does waits for another. What a
fault on one channel does to the others is the visit policy (`VisitPolicy`, the site's `[visits] fault_policy`;
docs/SESSION.md, "Visits", gives the reasoning):

- `stop-all` (the default): every other channel is asked for a ramped stop, its record says why;
- `continue`: the others go on, each record notes the fault, and the operator is alerted (`VisitDisplay.alert`).

A policy stop is a request like the operator's Stop (`Session.request`, served between samples): it never reaches
into another channel's session or waits for it. `request` stops or aborts every channel (a signal, the stop-all key)
or one. The visit's exit code is its worst channel's (`worst`).
"""

from __future__ import annotations

import enum
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TextIO

from ionctl.config.site import MAX_VISIT_SITES
from ionctl.core.vocabulary import ExitCode
from ionctl.treatment.report import Interrupts, Report, not_started
from ionctl.treatment.request import TreatmentRequest

if TYPE_CHECKING:
    from ionctl.config import SiteConfig
    from ionctl.config.people import Identity
    from ionctl.core.session import Session, SessionResult, StateChange
    from ionctl.drivers.base import CurrentSource, Telemetry
    from ionctl.records import Store
    from ionctl.treatment.prepare import Prepared


class VisitPolicy(enum.StrEnum):
    """What a fault on one channel does to the others (docs/SESSION.md, "Visits")."""

    STOP_ALL = "stop-all"
    CONTINUE = "continue"


#: Exit codes from the worst to the best: a visit exits with its worst channel's.
SEVERITY = (ExitCode.FAULT, ExitCode.RECORD_FAILED, ExitCode.FAILED, ExitCode.DEVICE, ExitCode.OPERATOR,
            ExitCode.REFUSED, ExitCode.OK)  # fmt: skip
MAX_CHANNELS = MAX_VISIT_SITES


def worst(codes: Sequence[ExitCode]) -> ExitCode:
    """The worst of `codes` by `SEVERITY` (an unlisted code ranks just above OK); OK for none."""
    if not codes:
        return ExitCode.OK
    rank = {code: n for n, code in enumerate(SEVERITY)}
    return min(codes, key=lambda code: rank.get(code, len(SEVERITY) - 1.5))


class VisitRefused(Exception):
    """A visit that may not start: which channel (None: the visit as a whole) and why. No device was opened."""

    def __init__(self, message: str, *, channel: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.channel = channel


@dataclass(frozen=True)
class Channel:
    """One channel as asked for: its request (device, treatment site, prescription values) and the return path it
    shares with other channels (None: its own return electrode)."""

    request: TreatmentRequest
    return_path: str | None = None

    @property
    def label(self) -> str:
        """How the visit names it: its treatment site ("left hand"), else its device."""
        return self.request.site or self.request.device


@dataclass(frozen=True)
class VisitRequest:
    channels: tuple[Channel, ...]
    policy: VisitPolicy | None = None  # None: the site's


@dataclass
class PreparedVisit:
    """Every channel prepared, the visit-level checks passed."""

    visit_id: str
    channels: tuple[Channel, ...]
    prepared: tuple[Prepared, ...]
    policy: VisitPolicy

    def summary(self) -> str:
        """What is about to be delivered, channel by channel, for one confirmation."""
        lines = [
            f"Visit {self.visit_id[:8]}: {len(self.channels)} channels; a fault on one: {policy_text(self.policy)}"
        ]
        for n, (channel, prepared) in enumerate(zip(self.channels, self.prepared, strict=True), start=1):
            lines.append(f"-- channel {n}: {channel.label} on {channel.request.device}"
                         + (f" (return path {channel.return_path})" if channel.return_path else ""))  # fmt: skip
            lines.append(prepared.summary())
        return "\n".join(lines)


def policy_text(policy: VisitPolicy) -> str:
    """What a fault on one channel does to the others, in words."""
    return ("every other channel ramps down" if policy is VisitPolicy.STOP_ALL
            else "the others continue and the operator is alerted")  # fmt: skip


def prepare_visit(visit: VisitRequest, *, store: Store | None, config: SiteConfig, operator: Identity | None = None,
                  supervisor: Callable[[], Identity] | None = None) -> PreparedVisit:  # fmt: skip
    """Prepare every channel (`prepare`), each record naming the visit and its channel; `VisitRefused` naming the
    channel for the first that may not start, or the visit for a check across channels."""
    from ionctl.treatment.prepare import Refused, prepare

    channels = visit.channels
    if not 1 <= len(channels) <= MAX_CHANNELS:
        raise VisitRefused(f"a visit has 1 to {MAX_CHANNELS} channels, not {len(channels)}")
    _distinct(channels)
    coursed = [n for n, c in enumerate(channels, start=1) if c.request.course_id is not None or c.request.course_ref]
    if coursed:  # the course rules count one session at a time, and a course's session is one site's
        raise VisitRefused("a visit's channels are not sessions of a treatment course (the course rules allow one "
                           "session at a time): start the visit without a course, or run each course's session on "
                           "its own", channel=coursed[0])  # fmt: skip
    visit_id = str(uuid.uuid4())
    prepared: list[Prepared] = []
    for n, channel in enumerate(channels, start=1):
        request = replace(channel.request, visit={"id": visit_id, "channel": n, "channels": len(channels)})
        try:
            prepared.append(prepare(request, store=store, config=config, operator=operator, supervisor=supervisor))
        except Refused as exc:
            raise VisitRefused(f"channel {n} ({channel.label}): {exc.message}", channel=n) from exc
    _shared_returns(channels, prepared)
    policy = visit.policy or VisitPolicy(config.visits.fault_policy)
    return PreparedVisit(visit_id, channels, tuple(prepared), policy)


def _distinct(channels: Sequence[Channel]) -> None:
    seen_devices: dict[str, int] = {}
    seen_sites: dict[str, int] = {}
    for n, channel in enumerate(channels, start=1):
        device = channel.request.device
        if device in seen_devices:
            raise VisitRefused(f"channels {seen_devices[device]} and {n} both name device {device}: one device drives "
                               "one channel", channel=n)  # fmt: skip
        seen_devices[device] = n
        site = _site_key(channel.request.site)
        if site and site in seen_sites:
            raise VisitRefused(f"channels {seen_sites[site]} and {n} both treat the {site}", channel=n)
        if site:
            seen_sites[site] = n


def _site_key(text: str | None) -> str:
    """How two channels' sites are compared: as the chart says them ("L hand" is the left hand), else as given."""
    from ionctl.records.clinical import ClinicalError, TreatmentSite

    if not text or not text.strip():
        return ""
    try:
        return TreatmentSite.parse(text).text
    except ClinicalError:
        return " ".join(text.lower().split())


def _shared_returns(channels: Sequence[Channel], prepared: Sequence[Prepared]) -> None:
    """The channels sharing a return path: their currents' sum within the class's max_current_ma."""
    groups: dict[str, list[int]] = {}
    for n, channel in enumerate(channels):
        if channel.return_path:
            groups.setdefault(channel.return_path, []).append(n)
    for path, members in groups.items():
        if len(members) < 2:
            continue
        total = sum(prepared[n].prescription.current_ma for n in members)
        classes = {prepared[n].prescription.protocol_class for n in members}
        limit = min(prepared[n].limits.for_class(prepared[n].prescription.protocol_class).max_current_ma
                    for n in members)  # fmt: skip
        if total > limit + 1e-9:
            names = ", ".join(f"{n + 1} ({channels[n].label}) {prepared[n].prescription.current_ma:g} mA"
                              for n in members)  # fmt: skip
            raise VisitRefused(f"channels {names} share return path {path!r}: {total:g} mA through it is above the "
                               f"site's max_current_ma {limit:g} mA ({'/'.join(sorted(classes))}); give each its own "
                               "return electrode, or lower the currents")  # fmt: skip


# -- running ---------------------------------------------------------------------------------------------------


class VisitDisplay(Protocol):
    """What a front end shows of a running visit. Called from the channels' threads; must not block."""

    def on_sample(self, channel: int, session: Session, sample: Telemetry) -> None: ...

    def on_state(self, channel: int, session: Session, change: StateChange) -> None: ...

    def alert(self, channel: int, text: str) -> None:
        """A channel faulted (`channel`, 1-based) and what the policy did about it."""

    def ended(self, channel: int, result: SessionResult) -> None: ...


@dataclass
class ChannelRun:
    """One channel while the visit runs: its thread, its session once it exists, and its report once over."""

    number: int
    label: str
    interrupts: Interrupts = field(default_factory=Interrupts)
    session: Session | None = None
    report: Report | None = None
    pending: list[str] = field(default_factory=list)
    thread: threading.Thread | None = None
    record_note: Callable[[str], None] | None = None
    notes: list[str] = field(default_factory=list)  # for its record, written by its own thread (`_drain`)
    stopping: bool = False  # a stop or abort was asked of it (the operator's, a signal's, the policy's)


@dataclass
class VisitReport:
    """Every channel's report, in channel order, and the visit's exit code (its worst channel's)."""

    visit_id: str
    labels: tuple[str, ...]
    reports: tuple[Report, ...]

    @property
    def exit_code(self) -> ExitCode:
        return worst([r.exit_code for r in self.reports])

    def to_dict(self) -> dict[str, Any]:
        channels = [
            {"channel": n, "label": label, **report.to_dict()}
            for n, (label, report) in enumerate(zip(self.labels, self.reports, strict=True), start=1)
        ]
        return {"visit_id": self.visit_id, "exit_code": int(self.exit_code), "channels": channels}


class VisitRunner:
    """Runs a prepared visit: each channel's `SessionRunner` in its own thread, with its own store connection
    (`store_path`; None: no records) and device (`open_source(n, channel)`, n 1-based)."""

    def __init__(self, visit: PreparedVisit, open_source: Callable[[int, Channel], CurrentSource], *,
                 store_path: str | Path | None, display: VisitDisplay | None = None, messages: TextIO | None = None,
                 say: Callable[[str], None] | None = None,
                 reconnect: Callable[[int, Channel], CurrentSource] | None = None,
                 runner_options: dict[str, Any] | None = None) -> None:  # fmt: skip
        self.visit = visit
        self.open_source = open_source
        self.reconnect = reconnect
        self.store_path = store_path
        self.display = display
        self.messages = messages
        self.say = say
        self.runner_options = runner_options or {}
        self.channels = [ChannelRun(n, c.label) for n, c in enumerate(visit.channels, start=1)]
        self._lock = threading.Lock()
        self._faulted: set[int] = set()

    # -- the front end's side ---------------------------------------------------------------------------------

    def request(self, action: str, channel: int | None = None, reason: str | None = None) -> None:
        """`stop` / `abort` / `pause` / `resume` one channel (1-based) or every channel (None); `reason` names
        what asked in the record of a session it stops."""
        targets = self.channels if channel is None else [self.channels[channel - 1]]
        for run in targets:
            with self._lock:
                if action in ("stop", "abort"):
                    run.stopping = True
                if reason is not None:
                    run.interrupts.reasons.append(reason)
                session = run.session
                if session is None:
                    run.pending.append(action)
                    continue
            session.request(action)

    @property
    def ended(self) -> bool:
        return all(run.report is not None for run in self.channels)

    def run(self, *, watch: Callable[[VisitRunner], AbstractContextManager[Any]] | None = None) -> VisitReport:
        """Start every channel (in channel order) and wait for all; `watch(self)` is held meanwhile (the front
        end's signals). Never raises for a channel: each way out is that channel's report."""
        for run in self.channels:
            run.thread = threading.Thread(target=self._channel, args=(run,), name=f"ionctl-visit-channel-{run.number}",
                                          daemon=True)  # fmt: skip
        with watch(self) if watch is not None else nullcontext():
            for run in self.channels:
                assert run.thread is not None
                run.thread.start()
            for run in self.channels:
                assert run.thread is not None
                while run.thread.is_alive():
                    run.thread.join(0.1)  # short waits: the main thread's signal handlers run between them
        reports = tuple(run.report or not_started("the channel's thread ended without a report", db=None)
                        for run in self.channels)  # fmt: skip
        return VisitReport(self.visit.visit_id, tuple(run.label for run in self.channels), reports)

    # -- a channel's thread -------------------------------------------------------------------------------------

    def _channel(self, run: ChannelRun) -> None:
        from ionctl.records import Store
        from ionctl.treatment.runner import SessionRunner

        n, channel = run.number, self.visit.channels[run.number - 1]
        prepared = self.visit.prepared[n - 1]
        store: Store | None = None
        try:
            if self.store_path is not None:
                store = Store(self.store_path)
            reconnect = self.reconnect
            runner = SessionRunner.of(
                prepared, lambda: self.open_source(n, channel), store=store,
                db=str(store.path) if store is not None else None, messages=self.messages,
                say=(lambda text: self._say(f"channel {n} ({run.label}): {text}")),
                reconnect=(lambda: reconnect(n, channel)) if reconnect is not None else None,
                display=_ChannelDisplay(self, n), watch=lambda session: self._watch(run, session),
                **self.runner_options,
            )  # fmt: skip
            run.record_note = lambda text: runner.recorder.note(text) if runner.recorder is not None else None
            run.report = runner.run()
        except Exception as exc:  # noqa: BLE001 - the channel's own report says it; the others go on
            self._say(f"channel {n} ({run.label}): INTERNAL ERROR: {exc!r}")
            run.report = not_started(f"internal error: {exc!r}", db=None, outcome="fault", fault="internal")
        finally:
            if store is not None:
                store.close()

    @contextmanager
    def _watch(self, run: ChannelRun, session: Session) -> Iterator[Interrupts]:
        with self._lock:
            run.session, pending, run.pending = session, run.pending, []
        for action in pending:
            session.request(action)
        try:
            yield run.interrupts
        finally:
            run.interrupts.ended = True

    def _on_state(self, n: int, session: Session, change: StateChange) -> None:
        if str(change.state) == "fault":
            self._fault(n, change.reason)
        if self.display is not None:
            self.display.on_state(n, session, change)

    def _fault(self, n: int, reason: str) -> None:
        """Channel `n` faulted (its session's FAULT state, or a session abandoned on an internal error): the visit
        policy for the others (requests only: nothing here waits for them). A channel already stopping at the
        operator's request (or a signal's) keeps that as the reason its record gives."""
        with self._lock:
            if n in self._faulted:
                return
            self._faulted.add(n)
        faulted = self.channels[n - 1]
        said = f"channel {n} ({faulted.label}) faulted: {reason}"
        stop = self.visit.policy is VisitPolicy.STOP_ALL
        for other in self.channels:
            if other.number == n or other.report is not None:
                continue
            with self._lock:
                already = other.stopping
            if stop and not already:
                self.request("stop", other.number, reason=f"visit policy stop-all: {said}")
            if already:
                what = "was already stopping (asked before the fault)"
            else:
                what = "ramps down (visit policy stop-all)" if stop else "continues (visit policy continue)"
            with self._lock:  # its own thread writes it (`_drain`): never another channel's store from this one
                other.notes.append(f"visit: {said}; this channel {what}")
        if self.display is not None:
            self.display.alert(n, f"{said}; " + ("every other channel is ramping down" if stop
                                                  else "the other channels continue"))  # fmt: skip

    def _drain(self, n: int) -> None:
        """Channel `n`'s thread: write the notes the visit left for its record."""
        run = self.channels[n - 1]
        if not run.notes or run.record_note is None:
            return
        with self._lock:
            notes, run.notes = run.notes, []
        for text in notes:
            run.record_note(text)

    def _say(self, text: str) -> None:
        if self.say is not None:
            self.say(text)


class _ChannelDisplay:
    """A channel's `Display` for its SessionRunner: the visit's policy first, then the front end's display."""

    def __init__(self, visit: VisitRunner, channel: int) -> None:
        self.visit, self.channel = visit, channel

    def on_sample(self, session: Session, sample: Telemetry) -> None:
        self.visit._drain(self.channel)
        if self.visit.display is not None:
            self.visit.display.on_sample(self.channel, session, sample)

    def on_state(self, session: Session, change: StateChange) -> None:
        self.visit._drain(self.channel)
        self.visit._on_state(self.channel, session, change)

    def ended(self, result: SessionResult) -> None:
        if result.outcome == "fault":  # also a session abandoned on an internal error, which has no FAULT state
            self.visit._fault(self.channel, result.message or str(result.fault))
        if self.visit.display is not None:
            self.visit.display.ended(self.channel, result)
