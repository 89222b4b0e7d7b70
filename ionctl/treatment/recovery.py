"""Before a session: what crash recovery may ask of the device the session is about to use."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def device_counter(address: str) -> Callable[[dict[str, Any]], float | None]:
    """For crash recovery (`ionctl.records.recover_interrupted`): the dose counter of the device at `address`, if
    it is the interrupted record's device (same serial). Not for a SourceMeter: it has no counter, and opening
    one resets it. Not for the in-process simulator (`sim:`): its device lived inside the process that was killed,
    and the device a new process finds at that address is another one with the same serial and a counter at zero,
    which would settle the record as if nothing had flowed."""

    def read(identity: dict[str, Any]) -> float | None:
        from ionctl.drivers import SIM_PREFIX, VISA_PREFIX, DeviceError, open_device

        if address.lower().startswith((VISA_PREFIX, SIM_PREFIX)):
            return None
        try:
            with open_device(address) as device:
                if device.identity.serial != identity.get("serial"):
                    return None
                samples = device.read_telemetry(1.0)
        except DeviceError:
            return None
        return samples[-1].device_dose_ma_min if samples else None

    return read


def devices_counter(addresses: list[str]) -> Callable[[dict[str, Any]], float | None]:
    """`device_counter` over several addresses (a visit's devices): the counter of whichever device at one of
    them is the interrupted record's (same serial); None if none is."""
    readers = [device_counter(address) for address in dict.fromkeys(addresses)]

    def read(identity: dict[str, Any]) -> float | None:
        for reader in readers:
            value = reader(identity)
            if value is not None:
                return value
        return None

    return read
