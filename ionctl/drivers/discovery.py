"""Finding current sources: serial ports (pyserial's `list_ports`) and VISA resources (pyvisa-py).

Listing never talks to a device. Probing (`probe`) does, briefly: the firmware protocol's IDENTIFY on a
serial address, `*IDN?` on a VISA resource (nothing that changes an instrument's settings).

VISA discovery stays on this machine by default (serial, USB and GPIB resources). pyvisa-py finds network
instruments by broadcasting on the LAN (VXI-11, and mDNS for HiSLIP); that happens only with `lan=True`.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, replace

from ionctl.drivers import VISA_PREFIX, open_device
from ionctl.drivers.base import DeviceError

#: pyvisa-py interface types whose listing goes out on the network.
_NETWORK_INTERFACES = frozenset({"tcpip", "vicp", "prlgx_tcpip"})


@dataclass(frozen=True)
class Found:
    """One place a source may be: the address to give ionctl, and what is known about it."""

    address: str
    kind: str  # "serial" (ionctl firmware protocol) or "visa" (SCPI SourceMeter)
    description: str = ""
    answer: str | None = None  # what a probe heard, or why it heard nothing

    def line(self) -> str:
        text = f"{self.address}\t{self.kind}"
        if self.description:
            text += f"\t{self.description}"
        if self.answer is not None:
            text += f"\t-> {self.answer}"
        return text


def kind_of(address: str) -> str:
    return "visa" if address.lower().startswith(VISA_PREFIX) else "serial"


def serial_ports() -> list[Found]:
    from serial.tools import list_ports

    found = []
    for port in sorted(list_ports.comports(), key=lambda p: p.device):
        known = [text for text in (port.description, port.hwid) if text and text != "n/a"]
        found.append(Found(port.device, "serial", " ".join(known)))
    return found


def visa_resources(*, lan: bool = False) -> tuple[list[Found], str | None]:
    """VISA resources as `visa:` addresses, and a note when VISA discovery could not run."""
    try:
        import pyvisa

        manager = pyvisa.ResourceManager("@py")
    except Exception as exc:  # pyvisa raises a variety of errors when a backend is missing or broken
        return [], f"VISA discovery unavailable: {exc}"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pyvisa-py warns about optional discovery packages
            names = manager.list_resources("?*") if lan else _local_resources()
    except Exception as exc:
        return [], f"VISA discovery failed: {exc}"
    # The manager is not closed: pyvisa shares it per backend, and closing it closes every resource open
    # through it in this process (a connected instrument included).
    return [Found(VISA_PREFIX + name, "visa") for name in sorted(set(names))], None


def _local_resources() -> list[str]:
    from pyvisa_py.sessions import Session

    names: list[str] = []
    for (interface, _resource_class), session in Session.iter_valid_session_classes():
        if interface.name not in _NETWORK_INTERFACES:
            names += session.list_resources()
    return names


def probe(found: Found, *, timeout_s: float = 1.0) -> Found:
    """Ask who is at `found.address`; the answer (or the reason there is none) goes in `answer`."""
    try:
        answer = _idn(found.address[len(VISA_PREFIX) :], timeout_s) if found.kind == "visa" else _identify(found)
    except DeviceError as exc:
        answer = f"no answer: {exc}"
    return replace(found, answer=answer)


def _identify(found: Found) -> str:
    with open_device(found.address) as device:
        who = device.identity
        return (
            f"{who.model} serial {who.serial} firmware {who.firmware} protocol {who.protocol} "
            f"max {who.hw_max_current_ma:g} mA {who.compliance_v:g} V"
        )


def _idn(resource: str, timeout_s: float) -> str:
    import pyvisa

    try:
        manager = pyvisa.ResourceManager("@py")  # shared per backend: left open (see visa_resources)
        instrument = manager.open_resource(
            resource, read_termination="\n", write_termination="\n", timeout=int(timeout_s * 1000)
        )
        try:
            return str(instrument.query("*IDN?")).strip()  # type: ignore[attr-defined]
        finally:
            instrument.close()
    except Exception as exc:  # VisaIOError, a malformed resource name, an OS error from the transport
        raise DeviceError(str(exc) or type(exc).__name__) from exc
