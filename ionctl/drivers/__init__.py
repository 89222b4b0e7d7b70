"""Current sources behind one interface: the firmware device (pyserial), a SCPI SourceMeter (pyvisa) and the
in-process simulated device.

`open_device(address)` takes an address as a user types it:

* a serial port (`/dev/ttyUSB0`, `COM3`) or any pyserial URL (`socket://127.0.0.1:7000`, `loop://`):
  the ionctl firmware protocol (`ionctl.drivers.firmware`);
* `visa:RESOURCE` (`visa:TCPIP::127.0.0.1::5025::SOCKET`, `visa:ASRL/dev/ttyUSB0::INSTR`, `visa:USB0::...`):
  a Keithley 2400-class SourceMeter through pyvisa, pyvisa-py backend by default (`ionctl.drivers.scpi`);
* `sim:` (`sim:?load=tap-water-hands&seed=3&fault=electrode-lift@60`): the simulated firmware device in this
  process, on a synthetic clock (`ionctl.drivers.simulated`).

The driver modules are imported only when an address needs them, so pyvisa is not loaded for a serial
device (nor the simulator, nor by `ionctl --help`).
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
SIM_PREFIX = "sim:"


def open_device(address: str, **options: Any) -> CurrentSource:
    """Connect to the source at `address` and identify it; raises `DeviceError` subclasses."""
    address = address.strip()
    if not address:
        raise AddressError("empty device address; give a serial port, a pyserial URL, visa:RESOURCE or sim:")
    if address.lower().startswith(VISA_PREFIX):
        resource = address[len(VISA_PREFIX) :]
        if not resource:
            raise AddressError(f"{address!r}: nothing after 'visa:'; e.g. visa:TCPIP::127.0.0.1::5025::SOCKET")
        from ionctl.drivers.scpi import ScpiSourceMeter

        return ScpiSourceMeter.open(resource, **options)
    if address.lower().startswith(SIM_PREFIX):
        from ionctl.drivers.simulated import SimulatedSource

        return SimulatedSource.open(address, **options)
    from ionctl.drivers.firmware import FirmwareDevice

    return FirmwareDevice.open(address, **options)


__all__ = [
    "ENERGISED",
    "SIM_PREFIX",
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
