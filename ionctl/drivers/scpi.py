"""A Keithley 2400-class SourceMeter as a `CurrentSource`, through pyvisa (pyvisa-py by default).

Theory of operation
-------------------
A SourceMeter is a bare programmable current source: no ramp, no watchdog, no coulomb counter, no
contact probe, no dose or duration limit. This driver supplies them in software, on the host, and mirrors
the firmware device's state machine (IDLE → ARMED → RAMP_UP → RUNNING → RAMP_DOWN → DONE, FAULT latched)
so the session cannot tell the two apart except by `DeviceIdentity`'s capability flags.

* **Sampling.** One `:READ?` per sample returns voltage, current, the instrument's TIME and its status
  word together (`:FORM:ELEM VOLT,CURR,TIME,STAT`). TIME is the device clock (`Telemetry.t_s`); every ramp,
  dose and duration computation below runs on it. Samples are taken when the session polls
  `read_telemetry`: one per call, at most one per `sample_interval_s` host seconds, or per
  `max_step_ma / ramp rate` while ramping so that ramp steps stay small.
  With the output off there is nothing to read (the 2400 refuses `:READ?`, error +803), so an idle sample
  asks `:OUTP?` instead and repeats the last instrument time.
* **Ramps.** As the firmware does (PROTOCOL.md §7.1): the set point moves toward the target at
  |Δ|/ramp_s, never faster than the configured max slew, by `rate × Δt` per sample on the instrument clock,
  and never by more than `max_step_ma` (0.1 mA) per `:SOUR:CURR` write. While the output is at compliance
  the set point is held within a margin of the measured current (anti-windup), so a recovering load gets
  a ramp, not a step. A ramp to zero ends with `:OUTP OFF`.
* **Polarity.** The active electrode is wired to Force HI, the return electrode to Force LO. ANODE is a
  positive source current (out of HI), CATHODE a negative one (into HI). Polarity changes only with the
  output off.
* **What the host enforces here** (the instrument cannot): max current (start/set_target refused),
  dose and duration (integrated from measured current on the instrument clock; latched like the firmware,
  allowing for the dose and time the ramp-down at max slew will still take), open circuit (output off at
  once), a short (impedance below `min_impedance_ohm`: ramp down), compliance timeout. The instrument
  itself enforces the voltage compliance (`:SENS:VOLT:PROT`, set from `max_voltage_v`) and the current
  range (fixed to hold `max_current_ma`).
* **No watchdog.** If the host dies the current keeps flowing; so `close()` ramps the output down, then
  whatever that raised tries every way to switch it off (`:OUTP OFF`, a VISA device clear, `*RST`) and asks
  `:OUTP?`; when no readable '0' comes back, `unconfirmed_off` says so and the front end raises the
  remove-the-electrodes alarm. `keep_alive()` is a no-op.
* **A reply that cannot be read is a lost link.** Bytes that are not ASCII text (a serial line at the wrong
  baud rate, a noisy link), or text that does not parse as the reply asked for, raise `LinkLost` (from the
  original error) and latch the link lost, as silence does. At connect, such a reply is something else
  answering (a firmware device, another instrument): refused with `VersionMismatch` before any current.
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass
from typing import Any, NoReturn

from ionctl.drivers.base import (
    AddressError,
    CommandRefused,
    ContactReading,
    CurrentSource,
    DeviceError,
    DeviceFault,
    DeviceIdentity,
    DeviceLimits,
    FaultCode,
    LinkLost,
    OutputState,
    Polarity,
    Telemetry,
    VersionMismatch,
)

S = OutputState

# (max current mA, compliance V) on each model's highest voltage range, where both hold at once: e.g. the
# 2400 sources 1.05 A only up to 21 V, but 105 mA up to 210 V (model specifications).
MODELS: dict[str, tuple[float, float]] = {
    "2400": (105.0, 210.0),
    "2401": (1050.0, 21.0),
    "2410": (21.0, 1100.0),
    "2420": (1050.0, 63.0),
    "2425": (1050.0, 105.0),
    "2440": (1050.0, 42.0),
}

STAT_COMPLIANCE = 1 << 3  # status word bit 3: in compliance (manual 18-50)
TIME_WRAP_S = 100_000.0  # the TIME element restarts from zero after 99,999.999 s
IMPEDANCE_FLOOR_MA = 0.05  # below this measured current V/I means nothing (as the firmware's 50 µA)
MONITOR_FLOOR_MA = 0.1  # the firmware's monitor floor: currents below it do not arm the monitors
OPEN_CIRCUIT_WINDOW_S = 0.1  # device seconds the open-circuit condition must hold (as PROTOCOL.md §6.2)
LOW_IMPEDANCE_WINDOW_S = 0.1  # ... and a short (impedance below the minimum), as the firmware's LOW_IMPEDANCE
PROBE_RANGE_MA = (0.05, 1.0)
PROBE_DURATION_S = (0.01, 1.0)
CUT_FAULTS = frozenset({FaultCode.OPEN_CIRCUIT, FaultCode.INTERNAL})  # output off at once; others ramp

SETUP = (
    ":SOUR:FUNC CURR",
    ":SOUR:CURR:MODE FIX",
    ":SOUR:CURR 0",
    ":SOUR:CLE:AUTO OFF",  # READ? must never switch the output by itself
    ":SENS:FUNC:CONC ON",
    ':SENS:FUNC "VOLT","CURR"',
    ":SENS:VOLT:PROT 21",  # a low compliance until configure() sets the session's
    ":FORM:ELEM VOLT,CURR,TIME,STAT",
    ":SYST:TIME:RES",
    ":OUTP OFF",
)


@dataclass(frozen=True)
class Reading:
    """One `:READ?`: signed volts and amps as the instrument reports them, its TIME and status word."""

    voltage_v: float
    current_a: float
    time_s: float
    status: int


class Link:
    """The VISA resource with every pyvisa/OS error, and every reply that cannot be decoded or parsed (a serial
    line at the wrong baud rate, a noisy link, something that does not speak SCPI), turned into `LinkLost`,
    latched once lost: a reply the driver cannot read is no reply."""

    def __init__(self, manager: Any, resource: Any, address: str, errors: tuple[type[BaseException], ...]) -> None:
        self.manager = manager
        self.resource = resource
        self.address = address
        self.errors = errors
        self.lost = False

    def write(self, command: str) -> None:
        """Send `command` and wait for the instrument to have executed it (`*OPC?`). Besides confirming
        the command, this keeps the line strictly query/answer, so Nagle's algorithm never holds a
        command back waiting for a delayed ACK (40 ms per write on TCP otherwise)."""
        reply = self.query(f"{command};*OPC?")
        if reply != "1":
            self.unreadable(f"{command};*OPC?", reply, ValueError(f"expected '1', got {reply!r}"))

    def query(self, command: str) -> str:
        self._check()
        try:
            reply = str(self.resource.query(command)).strip()
        except UnicodeError as exc:  # pyvisa decodes as ASCII: bytes that are not text
            raw = exc.object if isinstance(exc, UnicodeDecodeError) else b""
            self.unreadable(command, raw, exc)
        except self.errors as exc:
            self._lose(command, exc)
        if not reply.isprintable():
            self.unreadable(command, reply, ValueError("control characters in the reply"))
        return reply

    def unreadable(self, command: str, reply: str | bytes, exc: BaseException) -> NoReturn:
        """A reply that cannot be decoded or parsed: the link is lost (raised from `exc`)."""
        self.lost = True
        raise UnreadableReply(
            f"{self.address}: link lost: unreadable reply to {command!r}: {reply[:60]!r}", reply
        ) from exc

    def last_resort_off(self) -> None:
        """`:OUTP OFF` once, lost or not, errors ignored: the first thing to try when the link fails."""
        try:
            self.resource.write(":OUTP OFF")
        except Exception:  # noqa: BLE001 - whatever failed, closing goes on with the other ways
            pass

    def switch_off(self) -> str | None:
        """Every way there is to switch the output off, each in its own try whatever the others raised:
        `:OUTP OFF`; a VISA device clear (aborts a hung command on the instrument and discards stale
        replies; GPIB, USB, VXI-11 and serial resources); `*RST` (output off is its default). Then ask
        `:OUTP?`. None if the instrument answered a readable '0', else why the output cannot be confirmed off."""
        failures: list[str] = []
        resource = self.resource
        # A raw socket has no device clear: pyvisa-py's stand-in only drains input, and spins for ever on a
        # connection the instrument has closed. There, stale input is left, and read as "not confirmed".
        socket = self.address.upper().endswith("::SOCKET")
        for name in (":OUTP OFF", *(() if socket else ("device clear",)), "*RST"):
            try:
                if name == "device clear":
                    resource.clear()
                else:
                    resource.write(name)
            except Exception as exc:  # noqa: BLE001 - each way is tried whatever the one before raised
                failures.append(f"{name} failed ({exc})")
        try:
            reply = self.resource.query(":OUTP?").strip()
        except Exception as exc:  # noqa: BLE001 - no readable answer is no confirmation
            return f"{self.address}: the output could not be confirmed off: no readable answer to ':OUTP?' ({exc})"
        if reply != "0":
            detail = f"; {'; '.join(failures)}" if failures else ""
            return f"{self.address}: the output could not be confirmed off: ':OUTP?' answered {reply[:60]!r}{detail}"
        return None

    def close(self) -> None:
        # Only the resource: pyvisa shares one ResourceManager per backend in a process, and closing it
        # would close every other resource open through it (another instrument, a discovery probe).
        try:
            self.resource.close()
        except Exception:  # noqa: BLE001 - releasing the port must not hide the result
            pass

    def _check(self) -> None:
        if self.lost:
            raise LinkLost(f"{self.address}: the link was lost earlier; reconnect")

    def _lose(self, command: str, exc: BaseException) -> NoReturn:
        self.lost = True
        raise LinkLost(f"{self.address}: link lost during {command!r}: {exc}") from exc


class UnreadableReply(LinkLost):
    """A reply that could not be decoded or parsed; `reply` is what came (bytes if it was not text)."""

    def __init__(self, message: str, reply: str | bytes) -> None:
        super().__init__(message)
        self.reply = reply


class ScpiSourceMeter(CurrentSource):
    """A Keithley 2400-class SourceMeter with host-side ramps, limits and a firmware-like state machine."""

    def __init__(
        self, link: Link, identity: DeviceIdentity, *, sample_interval_s: float = 0.1, max_step_ma: float = 0.1
    ) -> None:
        self._link = link
        self._identity = identity
        self._sample_interval_s = sample_interval_s
        self._max_step_ma = max_step_ma
        self._closed = False
        self.unconfirmed_off: str | None = None  # set by close(): why the output could not be confirmed off
        self._state = S.IDLE
        self._fault = FaultCode.NONE
        self._polarity: Polarity | None = None
        self._limits: DeviceLimits | None = None
        self._output_on = False
        self._set_ma = 0.0  # magnitude in force on the instrument
        self._target_ma = 0.0
        self._rate_ma_per_s = 0.0
        self._t_s = 0.0  # instrument time of the last reading, unwrapped
        self._t_offset_s = 0.0
        self._raw_t_s: float | None = None
        self._anchor = True  # the next reading starts a new dt (after the output was switched on)
        self._dose_ma_min = 0.0
        self._energised_s = 0.0
        self._since: dict[FaultCode, float] = {}
        self._pending: list[Telemetry] = []
        self._next_sample_host_s = 0.0

    # -- connecting -----------------------------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        resource: str,
        *,
        backend: str = "@py",
        timeout_s: float = 2.0,
        sample_interval_s: float = 0.1,
        max_step_ma: float = 0.1,
    ) -> ScpiSourceMeter:
        """Connect to `resource` (a VISA resource name), reset the instrument and set it up as a current
        source with the output off. `timeout_s` bounds each query (host seconds)."""
        import pyvisa  # here, so that `import ionctl.drivers` does not load pyvisa

        if not (timeout_s > 0 and sample_interval_s >= 0 and max_step_ma > 0):
            raise ValueError("timeout_s and max_step_ma must be positive, sample_interval_s not negative")
        try:
            pyvisa.rname.parse_resource_name(resource)
        except ValueError as exc:  # pyvisa.rname.InvalidResourceName
            raise AddressError(f"visa:{resource}: not a VISA resource name ({exc})") from exc
        errors: tuple[type[BaseException], ...] = (pyvisa.errors.Error, OSError)
        try:
            manager = pyvisa.ResourceManager(backend)
            handle = manager.open_resource(
                resource, read_termination="\n", write_termination="\n", timeout=round(timeout_s * 1000)
            )
        except ValueError as exc:  # pyvisa's "no such backend" / unusable resource type
            raise DeviceError(f"{resource}: cannot open with VISA backend {backend!r}: {exc}") from exc
        except errors as exc:
            raise LinkLost(f"{resource}: cannot open: {exc}") from exc
        link = Link(manager, handle, resource, errors)
        try:
            try:
                link.write("*RST")
                link.write("*CLS")
                identity = parse_identity(link.query("*IDN?"), resource)
            except UnreadableReply as exc:  # something answered, not in SCPI: refused before any current
                raise VersionMismatch(
                    f"{resource}: no SCPI SourceMeter answered: {exc.reply[:16]!r} is not a SCPI reply (a firmware "
                    "device or another instrument at this address, or a serial line at the wrong baud rate); "
                    "nothing was switched on"
                ) from exc
            for command in SETUP:
                link.write(command)
            check_errors(link, "set-up")
        except BaseException:
            link.close()
            raise
        return cls(link, identity, sample_interval_s=sample_interval_s, max_step_ma=max_step_ma)

    @property
    def identity(self) -> DeviceIdentity:
        return self._identity

    def identify(self) -> DeviceIdentity:
        self._identity = parse_identity(self._link.query("*IDN?"), self._link.address)
        return self._identity

    # -- set-up ---------------------------------------------------------------------------------------------

    def configure(self, limits: DeviceLimits) -> None:
        """Set the voltage compliance and a fixed current range; a new configuration restarts the dose and
        duration counters (the instrument has no session of its own)."""
        self._require("configure", {S.IDLE, S.ARMED, S.DONE})
        ident = self._identity
        if limits.max_current_ma > ident.hw_max_current_ma or limits.max_voltage_v > ident.compliance_v:
            raise CommandRefused(
                "configure",
                "limit_exceeded",
                f"configure refused: {limits.max_current_ma} mA / {limits.max_voltage_v} V is beyond the "
                f"{ident.model}'s {ident.hw_max_current_ma} mA / {ident.compliance_v} V",
            )
        for command in (
            ":SOUR:CURR 0",
            f":SOUR:CURR:RANG {limits.max_current_ma / 1000:.6g}",  # fixed: no range-change glitches
            f":SENS:VOLT:PROT {limits.max_voltage_v:.6g}",
        ):
            self._link.write(command)
        check_errors(self._link, "configure")
        self._limits = limits
        self._dose_ma_min = self._energised_s = 0.0
        self._state = S.IDLE

    def reset(self) -> None:
        """As the firmware's RESET: forget the limits, the polarity and the counters (output off only)."""
        self._require("reset", {S.IDLE, S.ARMED, S.DONE})
        self._link.write(":SOUR:CURR 0")
        self._limits = None
        self._polarity = None
        self._dose_ma_min = self._energised_s = 0.0
        self._state = S.IDLE

    def set_polarity(self, polarity: Polarity) -> None:
        self._require("set_polarity", {S.IDLE, S.ARMED, S.DONE})
        self._polarity = polarity  # the sign is applied with the next non-zero level

    def arm(self) -> None:
        self._require("arm", {S.IDLE, S.ARMED, S.DONE})
        if self._limits is None or self._polarity is None:
            raise CommandRefused("arm", "not_configured", "arm refused: configure and set_polarity first")
        self._state = S.ARMED

    def check_contact(self, probe_ma: float, duration_s: float) -> ContactReading:
        """Output on at `probe_ma` (with the chosen polarity; anode if none yet) for `duration_s` instrument
        seconds, then off. A probe is the one current that is switched, not ramped, as on the device."""
        self._require("check_contact", {S.IDLE, S.ARMED, S.DONE})
        limits = self._limits
        if limits is None:
            raise CommandRefused("check_contact", "not_configured", "check_contact refused: configure first")
        lo, hi = PROBE_RANGE_MA
        if not (lo <= probe_ma <= hi and PROBE_DURATION_S[0] <= duration_s <= PROBE_DURATION_S[1]):
            raise CommandRefused("check_contact", "bad_argument")
        if probe_ma > limits.max_current_ma:
            raise CommandRefused("check_contact", "limit_exceeded")
        self._link.write(f":SOUR:CURR {self._sign() * probe_ma / 1000:.6g}")
        try:
            self._link.write(":OUTP ON")
            first = last = self._read()
            deadline = time.monotonic() + duration_s + 2.0  # host-side guard against a stuck clock
            while last.time_s - first.time_s < duration_s and time.monotonic() < deadline:
                last = self._read()
        finally:
            if self._link.lost:
                self._link.last_resort_off()
            else:
                self._link.write(":OUTP OFF")
                self._link.write(":SOUR:CURR 0")
        current_ma, voltage_v = abs(last.current_a) * 1000, abs(last.voltage_v)
        impedance = voltage_v / current_ma * 1000 if current_ma >= IMPEDANCE_FLOOR_MA else None
        return ContactReading(impedance_ohm=impedance, voltage_v=voltage_v, current_ma=current_ma)

    # -- delivering -----------------------------------------------------------------------------------------

    def start(self, target_ma: float, ramp_s: float) -> None:
        self._require("start", {S.ARMED})
        limits = self._check_target("start", target_ma, ramp_s)
        if self._dose_ma_min >= limits.max_dose_ma_min or self._energised_s >= limits.max_duration_s:
            raise CommandRefused("start", "limit_exceeded", "start refused: the dose or duration limit is used up")
        self._link.write(":SOUR:CURR 0")
        self._link.write(":OUTP ON")
        check_errors(self._link, "start")
        self._output_on, self._anchor = True, True
        self._since.clear()
        self._state = S.RAMP_UP
        self._ramp_to(target_ma, ramp_s)

    def set_target(self, target_ma: float, ramp_s: float) -> None:
        self._require("set_target", {S.RAMP_UP, S.RUNNING})
        self._check_target("set_target", target_ma, ramp_s, pause=True)
        self._ramp_to(target_ma, ramp_s)

    def stop(self, ramp_s: float) -> None:
        """Ramp to zero over `ramp_s` device seconds; the output opens when the ramp, driven by
        `read_telemetry`, reaches zero (state DONE)."""
        if not (math.isfinite(ramp_s) and ramp_s >= 0):  # NaN or inf would never bring the current down
            raise CommandRefused("stop", "bad_argument")
        if self._state in (S.RAMP_UP, S.RUNNING):
            self._ramp_to(0.0, ramp_s)
            self._state = S.RAMP_DOWN
        elif self._state is S.RAMP_DOWN:
            previous = self._rate_ma_per_s
            self._ramp_to(0.0, ramp_s)
            self._rate_ma_per_s = max(previous, self._rate_ma_per_s)

    def abort(self) -> None:
        """Ramp to zero at max slew and open the output, here and now (blocking: with no watchdog behind
        it, an abort must not depend on the caller polling). If the link fails, `:OUTP OFF` is tried once."""
        if not self._output_on:
            return
        if self._state in (S.RAMP_UP, S.RUNNING):
            self._state = S.RAMP_DOWN
        self._ramp_to(0.0, 0.0)
        slew = self._limits.max_slew_ma_per_s if self._limits else 1.0
        deadline = time.monotonic() + 1.5 * self._set_ma / slew + 2.0  # host guard against a stuck clock
        try:
            while self._output_on:
                if time.monotonic() > deadline:
                    self._cut_output()
                    break
                self._pace(math.inf)
                self._pending.append(self._sample())
        except LinkLost:
            self._link.last_resort_off()
            raise

    def clear_fault(self) -> None:
        if self._state is not S.FAULT:
            raise CommandRefused("clear_fault", "bad_state")
        if self._output_on:
            raise CommandRefused("clear_fault", "busy", "clear_fault refused: the output is still ramping down")
        self._fault = FaultCode.NONE
        self._state = S.DONE

    # -- telemetry ------------------------------------------------------------------------------------------

    def read_telemetry(self, timeout_s: float) -> list[Telemetry]:
        """Samples since the last call: those an `abort` took, else one new one. Waits until the next
        sample is due, up to `timeout_s` host seconds; [] if that was not long enough."""
        if self._pending:
            samples, self._pending = self._pending, []
            return samples
        if self._closed:
            raise DeviceError(f"{self._link.address}: read_telemetry after close()")
        if not self._pace(timeout_s):
            return []
        return [self._sample()]

    def keep_alive(self) -> None:
        """Nothing to do: a SourceMeter has no watchdog (which is why `close()` turns the output off)."""

    def close(self) -> None:
        """Ramp the output down, then, whatever that raised, try every way to switch the output off
        (`Link.switch_off`) and ask the instrument whether it is; then release the resource. Idempotent; never
        raises for the instrument. Unlike a device with a watchdog, a SourceMeter left on would keep driving
        current, so when the output cannot be confirmed off `unconfirmed_off` says why: the front end raises
        the remove-the-electrodes alarm."""
        if self._closed:
            return
        self._closed = True
        try:
            if self._output_on and not self._link.lost:
                self.abort()
        except Exception:  # noqa: BLE001 - whatever failed, the ways to switch off below are all tried
            pass
        finally:
            try:
                self.unconfirmed_off = self._link.switch_off()
                if self.unconfirmed_off is None:
                    self._output_on = False
            finally:
                self._link.close()

    # -- the software ramp and the monitors -------------------------------------------------------------

    def _sample(self) -> Telemetry:
        """One reading while the output is on (else an idle sample), acted on: dose, monitors, ramp."""
        if not self._output_on:
            return self._idle_sample()
        reading = self._read()
        dt = self._clock(reading.time_s)
        in_force_ma = self._set_ma
        measured_ma, voltage_v = abs(reading.current_a) * 1000, abs(reading.voltage_v)
        at_compliance = bool(reading.status & STAT_COMPLIANCE)
        self._dose_ma_min += measured_ma * dt / 60
        self._energised_s += dt
        self._monitor(dt, measured_ma, voltage_v, at_compliance)
        self._step(dt, measured_ma, at_compliance)
        impedance = voltage_v / measured_ma * 1000 if measured_ma >= IMPEDANCE_FLOOR_MA else None
        return self._telemetry(in_force_ma, measured_ma, voltage_v, impedance, at_compliance)

    def _idle_sample(self) -> Telemetry:
        """With the output off there is no reading; check the instrument agrees the output is off."""
        reply = self._link.query(":OUTP?")
        if reply not in ("0", "OFF", "1", "ON"):
            self._link.unreadable(":OUTP?", reply, ValueError("expected 0 or 1"))
        if reply in ("1", "ON"):
            self._link.write(":OUTP OFF")
            self._latch(FaultCode.INTERNAL)  # output on that the driver did not switch on
        return self._telemetry(0.0, 0.0, 0.0, None, False)

    def _telemetry(
        self, set_ma: float, measured_ma: float, voltage_v: float, impedance: float | None, at_compliance: bool
    ) -> Telemetry:
        # set_ma is the level in force when the reading was taken; state and output are after acting on it.
        return Telemetry(
            t_s=self._t_s,
            state=self._state,
            fault=self._fault,
            polarity=self._polarity,
            set_ma=set_ma,
            measured_ma=measured_ma,
            voltage_v=voltage_v,
            impedance_ohm=impedance,
            device_dose_ma_min=None,
            at_compliance=at_compliance,
            output_on=self._output_on,
            ramping=self._set_ma != self._target_ma,
        )

    def _clock(self, raw_s: float) -> float:
        """Unwrap the instrument TIME and return the device seconds since the previous reading."""
        if self._raw_t_s is not None and raw_s < self._raw_t_s - TIME_WRAP_S / 2:
            self._t_offset_s += TIME_WRAP_S
        self._raw_t_s = raw_s
        now = raw_s + self._t_offset_s
        dt = 0.0 if self._anchor else max(0.0, now - self._t_s)
        self._t_s, self._anchor = now, False
        return dt

    def _step(self, dt: float, measured_ma: float, at_compliance: bool) -> None:
        """Move the set point toward the target by rate·dt (at most max_step_ma); finish ramps."""
        target, present = self._target_ma, self._set_ma
        move = min(self._rate_ma_per_s * dt, self._max_step_ma)
        new = target if abs(target - present) <= move else present + math.copysign(move, target - present)
        if at_compliance:  # anti-windup (PROTOCOL.md §7.1): never run ahead of what the load accepts
            new = min(new, measured_ma + max(0.05 * target, MONITOR_FLOOR_MA))
        new = round(new, 9)  # no float residue: a ramp to zero ends at exactly zero
        if new != present:
            self._write_level(new)
        if self._state is S.RAMP_UP and self._set_ma == self._target_ma:
            self._state = S.RUNNING
        elif self._state in (S.RAMP_DOWN, S.FAULT) and self._output_on and self._set_ma == self._target_ma == 0.0:
            self._link.write(":OUTP OFF")
            self._output_on = False
            if self._state is S.RAMP_DOWN:
                self._state = S.DONE

    def _monitor(self, dt: float, measured_ma: float, voltage_v: float, at_compliance: bool) -> None:
        """The firmware's host-enforceable monitors (PROTOCOL.md §6.2), on the instrument clock. Dose and
        duration look one sample interval (`dt`) ahead: the next reading may come too late to stop in time."""
        limits = self._limits
        if limits is None or self._state is S.FAULT:
            return
        set_ma, target = self._set_ma, self._target_ma
        impedance = voltage_v / measured_ma * 1000 if measured_ma >= IMPEDANCE_FLOOR_MA else math.inf
        open_circuit = (
            set_ma >= MONITOR_FLOOR_MA and math.isfinite(impedance) and impedance > limits.max_impedance_ohm
        ) or (target >= MONITOR_FLOOR_MA and at_compliance and measured_ma < 0.1 * target)
        short = measured_ma >= MONITOR_FLOOR_MA and impedance < limits.min_impedance_ohm
        if self._held(FaultCode.OPEN_CIRCUIT, open_circuit, OPEN_CIRCUIT_WINDOW_S):
            self._latch(FaultCode.OPEN_CIRCUIT)
        elif self._held(FaultCode.LOW_IMPEDANCE, short, LOW_IMPEDANCE_WINDOW_S):
            self._latch(FaultCode.LOW_IMPEDANCE)
        elif self._held(FaultCode.COMPLIANCE, at_compliance, limits.compliance_timeout_s):
            self._latch(FaultCode.COMPLIANCE)
        else:  # count the ramp-down that stopping will still take: at max slew, or slower if samples are sparse
            slew = min(limits.max_slew_ma_per_s, self._max_step_ma / dt) if dt > 0 else limits.max_slew_ma_per_s
            if self._dose_ma_min + (measured_ma * dt + set_ma * set_ma / (2 * slew)) / 60 >= limits.max_dose_ma_min:
                self._latch(FaultCode.DOSE_LIMIT)
            elif self._energised_s + dt + set_ma / slew >= limits.max_duration_s:
                self._latch(FaultCode.DURATION_LIMIT)

    def _held(self, fault: FaultCode, condition: bool, window_s: float) -> bool:
        """True once `condition` has held on every reading for `window_s` device seconds."""
        if not condition:
            self._since.pop(fault, None)
            return False
        return self._t_s - self._since.setdefault(fault, self._t_s) >= window_s - 1e-9

    def output_off(self) -> None:
        """`:OUTP OFF` now, as the firmware's OUTPUT_OFF: FAULT OUTPUT_CUT if the output was on."""
        was_on = self._output_on
        self._cut_output()
        if was_on and self._state is not S.FAULT:
            self._fault, self._state = FaultCode.OUTPUT_CUT, S.FAULT

    def _latch(self, fault: FaultCode) -> None:
        """FAULT keeps its first code; the output ramps to zero at max slew, or is cut for CUT_FAULTS."""
        if self._state is not S.FAULT:
            self._fault, self._state = fault, S.FAULT
            self._ramp_to(0.0, 0.0)
        if fault in CUT_FAULTS:
            self._cut_output()

    def _cut_output(self) -> None:
        self._link.write(":OUTP OFF")
        self._output_on = False
        self._write_level(0.0)
        self._target_ma = 0.0
        if self._state is S.RAMP_DOWN:
            self._state = S.DONE

    # -- helpers --------------------------------------------------------------------------------------------

    def _ramp_to(self, target_ma: float, ramp_s: float) -> None:
        """Aim at `target_ma` at |Δ|/ramp_s, never faster than max slew (as the firmware, §7.1)."""
        slew = self._limits.max_slew_ma_per_s if self._limits else 1.0
        delta = abs(target_ma - self._set_ma)
        self._target_ma = target_ma
        self._rate_ma_per_s = min(delta / ramp_s, slew) if delta and ramp_s > 0 else slew

    def _write_level(self, magnitude_ma: float) -> None:
        self._link.write(f":SOUR:CURR {self._sign() * magnitude_ma / 1000:.9g}")
        self._set_ma = magnitude_ma

    def _sign(self) -> float:
        return -1.0 if self._polarity is Polarity.CATHODE else 1.0

    def _read(self) -> Reading:
        text = self._link.query(":READ?")
        try:
            volts, amps, stamp, status = (float(field) for field in text.split(","))
            reading = Reading(volts, amps, stamp, int(status))
        except (ValueError, OverflowError) as exc:
            self._link.unreadable(":READ?", text, exc)
        if not all(math.isfinite(value) for value in (volts, amps, stamp)):
            self._link.unreadable(":READ?", text, ValueError("a reading that is not a finite number"))
        return reading

    def _pace(self, timeout_s: float) -> bool:
        """Wait (host clock) until the next sample is due, at most `timeout_s`; True if it is due now."""
        wait = self._next_sample_host_s - time.monotonic()
        if wait > timeout_s:
            time.sleep(max(0.0, timeout_s))
            return False
        if wait > 0:
            time.sleep(wait)
        interval = self._sample_interval_s
        if self._output_on and self._set_ma != self._target_ma:  # ramping: small steps need more samples
            interval = min(interval, self._max_step_ma / self._rate_ma_per_s)
        self._next_sample_host_s = time.monotonic() + interval
        return True

    def _require(self, command: str, states: set[OutputState]) -> None:
        if self._closed:
            raise DeviceError(f"{self._link.address}: {command} after close()")
        if self._state not in states:
            if self._state is S.FAULT:
                raise DeviceFault(self._fault, f"{command} refused: the source is in FAULT ({self._fault.value})")
            raise CommandRefused(command, "bad_state", f"{command} refused in state {self._state.value}")

    def _check_target(self, command: str, target_ma: float, ramp_s: float, *, pause: bool = False) -> DeviceLimits:
        """`pause`: a target of 0 is legal (set_target's pause, as the firmware's SET_TARGET 0)."""
        limits = self._limits
        assert limits is not None  # ARMED and later imply configured
        lowest_ok = target_ma >= 0 if pause else target_ma > 0
        if not (lowest_ok and ramp_s >= 0 and math.isfinite(target_ma) and math.isfinite(ramp_s)):
            raise CommandRefused(command, "bad_argument")
        if target_ma > limits.max_current_ma:
            raise CommandRefused(
                command,
                "limit_exceeded",
                f"{command} refused: {target_ma} mA is above the configured maximum {limits.max_current_ma} mA",
            )
        return limits


def parse_identity(idn: str, address: str) -> DeviceIdentity:
    """`*IDN?` -> identity: "KEITHLEY INSTRUMENTS INC.,MODEL 2400,4000001,C32 ..." (manufacturer, model,
    serial, firmware). Refuses an instrument that is not a known 2400-class SourceMeter."""
    fields = [field.strip() for field in idn.split(",")]
    if len(fields) != 4:
        raise DeviceError(f"{address}: unexpected *IDN? reply {idn!r}")
    maker, model, serial, firmware = fields
    number = re.search(r"\b(24\d\d)\b", model)
    if "KEITHLEY" not in maker.upper() or number is None or number.group(1) not in MODELS:
        raise VersionMismatch(
            f"{address}: {maker} {model} is not a supported SourceMeter (Keithley {', '.join(MODELS)})"
        )
    max_ma, compliance_v = MODELS[number.group(1)]
    return DeviceIdentity(
        address=f"visa:{address}",
        model=f"{maker} {model}",
        serial=serial,
        firmware=" ".join(firmware.split()),
        protocol="SCPI",
        hw_max_current_ma=max_ma,
        compliance_v=compliance_v,
        native_ramp=False,
        watchdog=False,
        coulomb_counter=False,
        contact_check=False,
    )


def check_errors(link: Link, phase: str) -> None:
    """Empty the instrument's error queue; any error there fails `phase` with the instrument's words."""
    reply = link.query(":SYST:ERR:ALL?")
    if not reply.startswith("0,") and reply != "0":
        raise DeviceError(f"{link.address}: the instrument reported errors during {phase}: {reply}")
