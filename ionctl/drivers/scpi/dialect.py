"""The 2400-class SourceMeter's dialect: its models, its set-up, its replies, and the VISA link that carries them.

Everything here is about the instrument and the wire to it; what a SourceMeter lacks and the host supplies (ramps,
monitors, dose) is `ionctl.drivers.scpi.soft_source`.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, NoReturn

from ionctl.drivers.base import DeviceError, DeviceIdentity, LinkLost, VersionMismatch

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


def level_command(signed_ma: float, digits: int = 9) -> str:
    """`:SOUR:CURR` in amps for a signed level in mA (positive out of Force HI)."""
    return f":SOUR:CURR {signed_ma / 1000:.{digits}g}"


def configure_commands(max_current_ma: float, max_voltage_v: float) -> tuple[str, ...]:
    """Level to zero, a fixed current range (no range-change glitches) and the voltage compliance."""
    return (
        ":SOUR:CURR 0",
        f":SOUR:CURR:RANG {max_current_ma / 1000:.6g}",
        f":SENS:VOLT:PROT {max_voltage_v:.6g}",
    )


@dataclass(frozen=True)
class Reading:
    """One `:READ?`: signed volts and amps as the instrument reports them, its TIME and status word."""

    voltage_v: float
    current_a: float
    time_s: float
    status: int

    @property
    def at_compliance(self) -> bool:
        return bool(self.status & STAT_COMPLIANCE)


def read(link: Link) -> Reading:
    """One `:READ?`; a reply that does not parse as four finite numbers is an unreadable reply (link lost)."""
    text = link.query(":READ?")
    try:
        volts, amps, stamp, status = (float(field) for field in text.split(","))
        reading = Reading(volts, amps, stamp, int(status))
    except (ValueError, OverflowError) as exc:
        link.unreadable(":READ?", text, exc)
    if not all(math.isfinite(value) for value in (volts, amps, stamp)):
        link.unreadable(":READ?", text, ValueError("a reading that is not a finite number"))
    return reading


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
