"""A Keithley 2400-class SourceMeter as a `CurrentSource`, through pyvisa (pyvisa-py by default).

The driver is the glue: the instrument's dialect and its VISA link are `ionctl.drivers.scpi.dialect`, the
host-side device layer (state machine, ramps, monitors, dose) is the pure `ionctl.drivers.scpi.soft_source`.

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
import time

from ionctl.drivers.base import (
    AddressError,
    ContactReading,
    CurrentSource,
    DeviceError,
    DeviceIdentity,
    DeviceLimits,
    LinkLost,
    Polarity,
    Telemetry,
    VersionMismatch,
)
from ionctl.drivers.scpi.dialect import (
    SETUP,
    Link,
    UnreadableReply,
    check_errors,
    configure_commands,
    level_command,
    parse_identity,
    read,
)
from ionctl.drivers.scpi.soft_source import IMPEDANCE_FLOOR_MA, S, SoftSource


class LinkPort:
    """The soft source's `Port` on the VISA link: each write is confirmed (`Link.write`)."""

    def __init__(self, link: Link) -> None:
        self.link = link

    def level(self, signed_ma: float) -> None:
        self.link.write(level_command(signed_ma))

    def output(self, on: bool) -> None:
        self.link.write(":OUTP ON" if on else ":OUTP OFF")


class ScpiSourceMeter(CurrentSource):
    """A Keithley 2400-class SourceMeter with host-side ramps, limits and a firmware-like state machine."""

    def __init__(
        self, link: Link, identity: DeviceIdentity, *, sample_interval_s: float = 0.1, max_step_ma: float = 0.1
    ) -> None:
        self._link = link
        self._identity = identity
        self._sample_interval_s = sample_interval_s
        self._soft = SoftSource(LinkPort(link), max_step_ma=max_step_ma)
        self._closed = False
        self.unconfirmed_off: str | None = None  # set by close(): why the output could not be confirmed off
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
        self._open_for("configure")
        self._soft.check_configure(limits, self._identity)
        for command in configure_commands(limits.max_current_ma, limits.max_voltage_v):
            self._link.write(command)
        check_errors(self._link, "configure")
        self._soft.configured(limits)

    def reset(self) -> None:
        """As the firmware's RESET: forget the limits, the polarity and the counters (output off only)."""
        self._open_for("reset")
        self._soft.require("reset", {S.IDLE, S.ARMED, S.DONE})
        self._link.write(":SOUR:CURR 0")
        self._soft.reset()

    def set_polarity(self, polarity: Polarity) -> None:
        self._open_for("set_polarity")
        self._soft.set_polarity(polarity)

    def arm(self) -> None:
        self._open_for("arm")
        self._soft.arm()

    def check_contact(self, probe_ma: float, duration_s: float) -> ContactReading:
        """Output on at `probe_ma` (with the chosen polarity; anode if none yet) for `duration_s` instrument
        seconds, then off. A probe is the one current that is switched, not ramped, as on the device."""
        self._open_for("check_contact")
        self._soft.check_probe(probe_ma, duration_s)
        self._link.write(level_command(self._soft.sign() * probe_ma, 6))
        try:
            self._link.write(":OUTP ON")
            first = last = read(self._link)
            deadline = time.monotonic() + duration_s + 2.0  # host-side guard against a stuck clock
            while last.time_s - first.time_s < duration_s and time.monotonic() < deadline:
                last = read(self._link)
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
        self._open_for("start")
        self._soft.check_start(target_ma, ramp_s)
        self._link.write(":SOUR:CURR 0")
        self._link.write(":OUTP ON")
        check_errors(self._link, "start")
        self._soft.started(target_ma, ramp_s)

    def set_target(self, target_ma: float, ramp_s: float) -> None:
        self._open_for("set_target")
        self._soft.set_target(target_ma, ramp_s)

    def stop(self, ramp_s: float) -> None:
        """Ramp to zero over `ramp_s` device seconds; the output opens when the ramp, driven by
        `read_telemetry`, reaches zero (state DONE)."""
        self._soft.stop(ramp_s)

    def abort(self) -> None:
        """Ramp to zero at max slew and open the output, here and now (blocking: with no watchdog behind
        it, an abort must not depend on the caller polling). If the link fails, `:OUTP OFF` is tried once."""
        guard_s = self._soft.begin_abort()
        if guard_s is None:
            return
        deadline = time.monotonic() + guard_s  # host guard against a stuck clock
        try:
            while self._soft.output_on:
                if time.monotonic() > deadline:
                    self._soft.cut()
                    break
                self._pace(math.inf)
                self._pending.append(self._sample())
        except LinkLost:
            self._link.last_resort_off()
            raise

    def clear_fault(self) -> None:
        self._soft.clear_fault()

    def output_off(self) -> None:
        """`:OUTP OFF` now, as the firmware's OUTPUT_OFF: FAULT OUTPUT_CUT if the output was on."""
        self._soft.output_off()

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
            if self._soft.output_on and not self._link.lost:
                self.abort()
        except Exception:  # noqa: BLE001 - whatever failed, the ways to switch off below are all tried
            pass
        finally:
            try:
                self.unconfirmed_off = self._link.switch_off()
                if self.unconfirmed_off is None:
                    self._soft.output_on = False
            finally:
                self._link.close()

    # -- helpers --------------------------------------------------------------------------------------------

    def _sample(self) -> Telemetry:
        """One reading while the output is on (else an idle sample), acted on by the soft source."""
        if not self._soft.output_on:
            return self._idle_sample()
        return self._soft.observe(read(self._link))

    def _idle_sample(self) -> Telemetry:
        """With the output off there is no reading; check the instrument agrees the output is off."""
        reply = self._link.query(":OUTP?")
        if reply not in ("0", "OFF", "1", "ON"):
            self._link.unreadable(":OUTP?", reply, ValueError("expected 0 or 1"))
        return self._soft.idle(reported_on=reply in ("1", "ON"))

    def _pace(self, timeout_s: float) -> bool:
        """Wait (host clock) until the next sample is due, at most `timeout_s`; True if it is due now."""
        wait = self._next_sample_host_s - time.monotonic()
        if wait > timeout_s:
            time.sleep(max(0.0, timeout_s))
            return False
        if wait > 0:
            time.sleep(wait)
        self._next_sample_host_s = time.monotonic() + self._soft.sample_interval_s(self._sample_interval_s)
        return True

    def _open_for(self, command: str) -> None:
        if self._closed:
            raise DeviceError(f"{self._link.address}: {command} after close()")
