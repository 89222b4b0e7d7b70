"""What a fault means for the technician at the bench: each fault code the session or the device can end
with, mapped to what happened and what to do, in plain words.

The codes are the session's (`SessionResult.fault`): the device's own `FaultCode` values, the host
monitors' (`ionctl.core.vocabulary.SessionFault`: `stuck_output`, `ramp_stalled`, `stale_telemetry`, ...), and
for a session that never started, the driver error's (`link_lost`, `version_mismatch`, `device_error`).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FaultAdvice:
    """A fault for the technician: a short title and the steps to take, most urgent first."""

    title: str
    steps: tuple[str, ...]


#: The alarm (current still flowing after output-off) overrides whatever fault led to it.
ALARM = FaultAdvice(
    "CURRENT IS STILL FLOWING after the output was switched off",
    (
        "REMOVE THE ELECTRODES FROM THE PATIENT NOW.",
        "Then switch the device off at its mains switch and disconnect it.",
        "Take the device out of service and report it; do not use it for another patient.",
        "Inspect the skin under both electrodes and note any reaction.",
    ),
)

_CHECK_SKIN = "Inspect the skin under both electrodes and note any reaction on the end screen."

FAULT_ADVICE: dict[str, FaultAdvice] = {
    "stuck_output": FaultAdvice(
        "The current did not fall when the device was told to stop (stuck output)",
        (
            "Remove the electrodes from the patient now.",
            "Switch the device off and take it out of service; report it.",
            _CHECK_SKIN,
        ),
    ),
    "ramp_stalled": FaultAdvice(
        "The current stopped rising on the way up: the device does not follow its setting",
        (
            "Watch the current readout: if it does not reach zero, remove the electrodes from the patient.",
            "Take the device out of service and report it; do not restart the session on it.",
            _CHECK_SKIN,
        ),
    ),
    "open_circuit": FaultAdvice(
        "Open circuit: an electrode lost contact, so the current was cut",
        (
            "Check that both electrodes are on the skin, wet and firmly attached; check the lead wires.",
            "Ask the patient about any sting or shock felt when the current was cut.",
            _CHECK_SKIN,
            "Start a new session to deliver the rest of the dose, if the prescriber allows.",
        ),
    ),
    "low_impedance": FaultAdvice(
        "Short circuit: the resistance between the electrodes fell abnormally low",
        (
            "Check that the two electrodes do not touch and that no water bridges them.",
            "Dry the skin between the electrodes; check the lead wires for damage.",
            _CHECK_SKIN,
        ),
    ),
    "compliance": FaultAdvice(
        "The device could not push the prescribed current through the skin (compliance voltage reached)",
        (
            "Check electrode contact and wetting; dry or poorly wetted electrodes raise the resistance.",
            _CHECK_SKIN,
            "Consider a lower current or larger electrodes with the prescriber.",
        ),
    ),
    "overcurrent": FaultAdvice(
        "The measured current exceeded the prescription (over-current)",
        (
            "Remove the electrodes and inspect the skin for burns.",
            "Do not use the device again until it has been checked; report it.",
        ),
    ),
    "current_mismatch": FaultAdvice(
        "The measured current did not follow the set point",
        (
            "Remove the electrodes and inspect the skin.",
            "Have the device checked before the next session; report it.",
        ),
    ),
    "dose_mismatch": FaultAdvice(
        "The dose counted by this PC and the dose counted by the device disagree",
        (
            "Remove the electrodes and inspect the skin.",
            "Have the device checked (its current sensor may drift) before the next session.",
        ),
    ),
    "overvoltage": FaultAdvice(
        "The output voltage went above its limit",
        ("Remove the electrodes and inspect the skin.", "Have the device checked; report it."),
    ),
    "dose_limit": FaultAdvice(
        "The device stopped at its own dose limit (its safety backstop)",
        (_CHECK_SKIN, "Report the event: the host should have stopped first."),
    ),
    "duration_limit": FaultAdvice(
        "The device stopped at its own time limit (its safety backstop)",
        (_CHECK_SKIN, "Check electrode contact; a long time at compliance stretches a session."),
    ),
    "dose_short": FaultAdvice(
        "The session ended before the full dose was delivered",
        (
            "Check the electrodes: one may have lifted during the ramp-down.",
            _CHECK_SKIN,
            "Note the dose delivered; deliver the rest only if the prescriber allows.",
        ),
    ),
    "host_lost": FaultAdvice(
        "The link to the device was lost; the device's watchdog ramps the current to zero by itself",
        (
            "Check the device's display: its output must be off.",
            "Check the cable between this PC and the device.",
            _CHECK_SKIN,
        ),
    ),
    "link_lost": FaultAdvice(
        "The device could not be reached",
        ("Check the cable and that the device is switched on, then choose the device again.",),
    ),
    "stale_telemetry": FaultAdvice(
        "The device stopped reporting its current, so the current could not be watched",
        (
            "Remove the electrodes from the patient now.",
            "Switch the device off and check the cable; report it.",
            _CHECK_SKIN,
        ),
    ),
    "brownout": FaultAdvice(
        "The device restarted (power dip or reboot); its output is off",
        ("Check the device's power supply.", _CHECK_SKIN),
    ),
    "output_cut": FaultAdvice(
        "The output was cut at once (last-resort output-off)",
        (
            "Ask the patient about any sting or shock felt when the current was cut.",
            _CHECK_SKIN,
        ),
    ),
    "device_stopped": FaultAdvice(
        "The device stopped delivering on its own (its front panel, its firmware, or another program)",
        ("Check the device's display and why it stopped.", _CHECK_SKIN,
         "Note the dose delivered; deliver the rest only if the prescriber allows."),
    ),
    "polarity_mismatch": FaultAdvice(
        "The device reported the other polarity than prescribed; the current was ramped to zero",
        ("Remove the electrodes from the patient.", _CHECK_SKIN,
         "Take the device out of service and report it: its output polarity cannot be trusted."),
    ),
    "dose_overshoot": FaultAdvice(
        "More than the prescribed dose was delivered",
        (_CHECK_SKIN, "Note both doses in the chart and tell the prescriber.",
         "Check the link to the device (a slow or busy link delays the stop)."),
    ),
    "wrong_device": FaultAdvice(
        "After the link was lost, another device answered at the same address",
        ("Go to the patient's device now: check its display, its output must be off.", _CHECK_SKIN,
         "Check which device is connected to this PC before any new session."),
    ),
    "version_mismatch": FaultAdvice(
        "The device speaks another protocol version than this program; nothing was started",
        ("Check the device's firmware and this program's version; report it.",),
    ),
    "device_error": FaultAdvice(
        "The device answered in a way this program does not understand; nothing was started",
        ("Check the cable and the device, then choose the device again; report it if it happens again.",),
    ),
    "internal": FaultAdvice(
        "An internal error in the device or in this program",
        ("Remove the electrodes from the patient.", "Check the device's display: its output must be off.",
         "Report the event with the record number."),
    ),
}  # fmt: skip

_UNKNOWN = FaultAdvice(
    "The session ended with a fault",
    ("Remove the electrodes from the patient.", "Check the device's display: its output must be off.",
     _CHECK_SKIN),
)  # fmt: skip


def advice(fault: str | None, *, alarm: bool = False) -> FaultAdvice:
    """The advice for a fault code (the alarm overrides it); a generic one for a code not in the table."""
    if alarm:
        return ALARM
    return FAULT_ADVICE.get(fault or "", _UNKNOWN)
