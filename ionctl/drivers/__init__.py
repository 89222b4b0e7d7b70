"""Current sources behind one interface: the firmware device (pyserial) and a SCPI SourceMeter (pyvisa).

`open_device(address)` takes an address as a user types it:

* a serial port (`/dev/ttyUSB0`, `COM3`) or any pyserial URL (`socket://127.0.0.1:7000`, `loop://`):
  the ionctl firmware protocol (`ionctl.drivers.firmware`);
* `visa:RESOURCE` (`visa:TCPIP::127.0.0.1::5025::SOCKET`, `visa:ASRL/dev/ttyUSB0::INSTR`, `visa:USB0::...`):
  a Keithley 2400-class SourceMeter through pyvisa, pyvisa-py backend by default (`ionctl.drivers.scpi`).

The driver modules are imported only when an address needs them, so pyvisa is not loaded for a serial
device (nor by `ionctl --help`).
"""

from __future__ import annotations

from typing import Any

from ionctl.drivers.base import (
    ENERGISED,
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

VISA_PREFIX = "visa:"


def open_device(address: str, **options: Any) -> CurrentSource:
    """Connect to the source at `address` and identify it; raises `DeviceError` subclasses."""
    address = address.strip()
    if not address:
        raise AddressError("empty device address; give a serial port, a pyserial URL or visa:RESOURCE")
    if address.lower().startswith(VISA_PREFIX):
        resource = address[len(VISA_PREFIX) :]
        if not resource:
            raise AddressError(f"{address!r}: nothing after 'visa:'; e.g. visa:TCPIP::127.0.0.1::5025::SOCKET")
        from ionctl.drivers.scpi import ScpiSourceMeter

        return ScpiSourceMeter.open(resource, **options)
    from ionctl.drivers.firmware import FirmwareDevice

    return FirmwareDevice.open(address, **options)


__all__ = [
    "ENERGISED",
    "VISA_PREFIX",
    "AddressError",
    "CommandRefused",
    "ContactReading",
    "CurrentSource",
    "DeviceError",
    "DeviceFault",
    "DeviceIdentity",
    "DeviceLimits",
    "FaultCode",
    "LinkLost",
    "OutputState",
    "Polarity",
    "Telemetry",
    "VersionMismatch",
    "open_device",
]
