"""The words the layers share, as enums rather than string literals.

`ExitCode` is every status an `ionctl` command or the console ends with, in one place (the front ends map an
outcome to one of these; the shell sees the integer). `SessionState`, `Outcome` and `SessionFault` are the
session's states, its outcomes and the host's own fault codes, so a renamed word is a type error, not a silent
mismatch. They are `StrEnum`s: each member is its string, as stored in a record and shown to the operator.
"""

from __future__ import annotations

import enum


class ExitCode(enum.IntEnum):
    """What the process tells the shell (`ionctl run --help` lists the session's)."""

    OK = 0  # done; for a session: completed as prescribed
    FAILED = 1  # the command could not do its work (an unreadable file, a store that cannot be opened, a crash)
    REFUSED = 2  # refused before any current flowed: bad arguments, limits broken, a course rule
    FAULT = 3  # a fault ended an energised session, or the stuck-output alarm
    OPERATOR = 4  # stopped or aborted by the operator (including SIGINT, SIGTERM and SIGHUP)
    DEVICE = 5  # a device or link error before any current flowed
    RECORD_FAILED = 6  # the session ended safely but its record could not be written in full
    INTERRUPTED = 130  # 128 + SIGINT, as a shell reports a command Ctrl-C ended (outside a session)
    BROKEN_PIPE = 141  # 128 + SIGPIPE: the reader of our output went away


class SessionState(enum.StrEnum):
    """Every state of the session's machine (`ionctl.core.session.TRANSITIONS`; docs/SESSION.md draws them)."""

    DISCONNECTED = "disconnected"
    CONNECTED = "connected"
    CONFIGURED = "configured"
    CONTACT_CHECKED = "contact_checked"
    ARMED = "armed"
    RAMPING_UP = "ramping_up"
    DELIVERING = "delivering"
    PAUSED = "paused"
    REVERSING = "reversing"
    RAMPING_DOWN = "ramping_down"
    COMPLETED = "completed"
    STOPPED = "stopped"
    ABORTED = "aborted"
    FAULT = "fault"
    REFUSED = "refused"


class Outcome(enum.StrEnum):
    """How a session ended (`SessionResult.outcome`), and the two outcomes only a record has."""

    COMPLETED = "completed"
    STOPPED = "stopped"
    ABORTED = "aborted"
    FAULT = "fault"
    REFUSED = "refused"
    #: A record only: the session was stopped because its record could not be written (`ionctl run`).
    RECORD_FAILED = "record_failed"
    #: A record only: the session never ended (process killed, power lost), closed at recovery.
    INTERRUPTED = "interrupted"


class SessionFault(enum.StrEnum):
    """The fault codes the host itself ends a session with (`SessionResult.fault`), beside the device's own
    `FaultCode` values that it passes on. The console has advice for every one (`ionctl.console.faults`)."""

    STUCK_OUTPUT = "stuck_output"  # the current did not fall when told
    RAMP_STALLED = "ramp_stalled"  # a ramp up stopped rising below the prescribed current
    STALE_TELEMETRY = "stale_telemetry"  # no sample with a new device time for STALE_TELEMETRY_S
    DOSE_MISMATCH = "dose_mismatch"  # host and device dose disagree (ionctl.core.monitors)
    DOSE_SHORT = "dose_short"  # the ramp-down ended with the dose short
    DOSE_OVERSHOOT = "dose_overshoot"  # the delivery ended beyond the prescription
    DEVICE_STOPPED = "device_stopped"  # the device stopped delivering on its own
    POLARITY_MISMATCH = "polarity_mismatch"  # the device reports the other polarity
    HOST_LOST = "host_lost"  # the link was lost with the session under way (the device's watchdog acts)
    WRONG_DEVICE = "wrong_device"  # a reconnect reached another device
    LINK_LOST = "link_lost"  # the link was lost before any current flowed
    VERSION_MISMATCH = "version_mismatch"  # the device speaks another protocol version
    DEVICE_ERROR = "device_error"  # any other driver error before any current flowed
    INTERNAL = "internal"  # an error neither the device nor the host has a better word for


def fault_of(exc: BaseException) -> str:
    """The fault code for an exception that ended a session: the device's own code for a `DeviceFault`, a
    `SessionFault` for every other driver error, and `internal` for anything else (never a class name)."""
    from ionctl.drivers.base import DeviceError, DeviceFault, LinkLost, VersionMismatch  # not for `ionctl --help`

    if isinstance(exc, DeviceFault):
        return str(exc.fault.value)
    if isinstance(exc, LinkLost):
        return SessionFault.LINK_LOST
    if isinstance(exc, VersionMismatch):
        return SessionFault.VERSION_MISMATCH
    if isinstance(exc, DeviceError):
        return SessionFault.DEVICE_ERROR
    return SessionFault.INTERNAL
