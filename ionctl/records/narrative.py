"""A record in plain sentences, as a technician reads a chart: every event, addendum and sign-off of a session
record as one sentence with the clinic's local time and the session's elapsed time (m:ss), the outcome with the
dose still to give, and the prescription beside what was delivered.

The chart PDF (`ionctl.records.pdf`) and `ionctl records show` both say a record through this module, so the page
and the terminal read alike. What is stored is never changed here: a device's identity stored as JSON, a refusal's
limits stored as JSON, a skin check stored as an object are put into words; long text is wrapped (`wrap`), never
cut. What each fault does comes from the runtime monitors' table (docs/SESSION.md, "Runtime monitors").

Standard library only: matplotlib is the PDF's business, not this module's.
"""

from __future__ import annotations

import json
import math
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ionctl.records import timefmt
from ionctl.records.clinical import ClinicalDetails, is_simulated

SIGN_ACTION = "record-sign"  # `ionctl.records.export.SIGN_ACTION` (export imports this module's caller)

#: Each fault code a record can end with: what happened, and what ionctl did (docs/SESSION.md, "Runtime monitors").
FAULTS: dict[str, tuple[str, str]] = {
    "open_circuit": ("an electrode lost contact (open circuit)", "the output was switched off at once"),
    "low_impedance": ("the resistance between the electrodes fell abnormally low (short circuit)",
                      "the current was ramped down to zero and the output switched off"),
    "compliance": ("the device could not drive the prescribed current through the skin for too long (at its "
                   "voltage limit)", "the current was ramped down to zero and the output switched off"),
    "overcurrent": ("the measured current exceeded the setting", "the current was ramped down to zero"),
    "current_mismatch": ("the measured current did not follow the setting",
                         "the current was ramped down to zero and the output switched off"),
    "dose_mismatch": ("the host's and the device's dose counts disagreed",
                      "the current was ramped down to zero and the output switched off"),
    "stuck_output": ("the current did not fall when the device was told to stop",
                     "the output was switched off, then aborted"),
    "ramp_stalled": ("the current stopped rising on the way up", "the current was ramped down to zero (abort)"),
    "host_lost": ("the link to the device was lost", "the device's watchdog ramped the current down to zero; ionctl "
                  "reconnected and settled the dose from the device's own counter"),
    "stale_telemetry": ("the device stopped reporting (its clock stopped)",
                        "the session was aborted and the output switched off"),
    "brownout": ("the device restarted (power dip)", "its output was already off"),
    "dose_short": ("the ramp-down ended with the dose short", "the output was already off"),
    "dose_overshoot": ("the dose went past the prescription", "the output was already off"),
    "device_stopped": ("the device stopped delivering on its own", "the current was ramped down to zero"),
    "polarity_mismatch": ("the output's polarity was not the prescribed one",
                          "the current was ramped down to zero (abort)"),
    "wrong_device": ("another device answered after a reconnect", "it was closed without a command"),
    "interrupted": ("the session never ended (the program was killed or the power lost)",
                    "the record was closed at the next start with the dose its stored samples show"),
}  # fmt: skip

#: A state change in words (the reason the session gave follows it).
STATES = {
    "disconnected": "Session record opened",
    "connected": "Device connected",
    "configured": "Device configured",
    "contact_checked": "Electrode contact checked",
    "armed": "Output armed",
    "ramping_up": "Current ramping up",
    "delivering": "Delivering",
    "paused": "Paused at zero current",
    "reversing": "Ramping to zero to reverse the polarity",
    "ramping_down": "Current ramping down",
    "completed": "Session completed",
    "stopped": "Session stopped",
    "aborted": "Session aborted",
    "fault": "Fault",
    "refused": "Session refused",
}
#: Reasons that only repeat the state's own words, left out of the sentence.
_SAME = {"created", "armed", "identified"}

OUTCOMES = {
    "completed": "Completed as prescribed",
    "stopped": "Stopped before the prescribed dose",
    "aborted": "Aborted before the prescribed dose",
    "fault": "Ended by a fault",
    "refused": "Refused: no current flowed",
    "record_failed": "Stopped: the record could not be written",
    "interrupted": "Interrupted: the session never ended",
}


@dataclass(frozen=True)
class Entry:
    """One line of a record's account: local time, session elapsed time (`+m:ss`, "" before the output started),
    what kind of entry, the sentence, and whether a reader must not miss it (a fault, an adverse reaction)."""

    utc: str | None
    when: str
    elapsed: str
    kind: str
    text: str
    alert: bool = False


# -- small words ------------------------------------------------------------------------------------------------


def parsed(value: Any) -> dict[str, Any]:
    """A JSON column (prescription, limits, device, clinical) as a dict ({} when absent or not an object)."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return {}
    return dict(value) if isinstance(value, Mapping) else {}


def number(value: Any, digits: int = 1, unit: str = "") -> str:
    """`4.0 mA`; "-" for no value. Rounded for a reader; the JSON export keeps every digit."""
    if value is None or isinstance(value, bool):
        return "-"
    try:
        f = float(value)
    except (TypeError, ValueError):
        return str(value)
    if not math.isfinite(f):
        return "-"
    return f"{f:.{digits}f}" + (f" {unit}" if unit else "")


def minutes(seconds: Any) -> str:
    """A duration as `10 min 42 s` (`42 s` under a minute)."""
    if seconds is None:
        return "-"
    whole = round(float(seconds))
    return f"{whole // 60} min {whole % 60:02d} s" if whole >= 60 else f"{whole} s"


def sentence(text: str) -> str:
    """`text` on one line, capitalised, ending with a full stop."""
    words = " ".join(str(text).split())
    if not words:
        return ""
    words = words[0].upper() + words[1:]
    return words if words[-1] in ".!?" else words + "."


def wrap(text: str, width: int, indent: str = "") -> list[str]:
    """`text` wrapped at `width` characters, every word kept (a word longer than the line is broken, not cut);
    following lines indented by `indent`."""
    lines: list[str] = []
    for paragraph in str(text).split("\n"):
        lines += textwrap.wrap(paragraph, width=width, subsequent_indent=indent, break_long_words=True,
                               break_on_hyphens=False) or [""]  # fmt: skip
    return lines


def _plain(value: Any) -> str:
    """A stored value in words: an object's keys and values, a list's items, yes/no."""
    if isinstance(value, Mapping):
        return ", ".join(f"{str(k).replace('_', ' ')} {_plain(v)}" for k, v in value.items() if v not in (None, ""))
    if isinstance(value, list | tuple):
        return ", ".join(_plain(v) for v in value)
    if isinstance(value, bool):
        return "yes" if value else "no"
    return " ".join(str(value).split())


# -- the session's time -----------------------------------------------------------------------------------------


def start_s(record: Any) -> float | None:
    """The device time the session's elapsed times count from (`timefmt.session_start_s`)."""
    return timefmt.session_start_s(record.events, record.telemetry)


def clock(utc: Any) -> str:
    """A stored time as the clinic's wall clock, `14:03:05`."""
    text = timefmt.local_text(utc, missing="")
    return text[11:19] if len(text) >= 19 else text


# -- events -----------------------------------------------------------------------------------------------------


def fault_code(text: str, record_fault: str | None = None) -> str | None:
    """The fault code a fault event names (the record's own fault when the text names none of `FAULTS`)."""
    words = str(text).replace(":", " ").replace(",", " ").split()
    return next((w for w in words if w in FAULTS), record_fault if record_fault in FAULTS else None)


def fault_sentence(text: str, record_fault: str | None = None) -> str:
    """A fault event: what happened, and what was done about it."""
    reason = " ".join(str(text).split())
    reason = reason.removeprefix("fault:").strip()
    code = fault_code(reason, record_fault)
    if code is None:
        return sentence(f"Fault: {reason}; the session ended it with a ramp to zero current")
    what, done = FAULTS[code]
    said = reason.replace(code, code.replace("_", " "))
    return sentence(f"Fault: {what}; {done}. Reported: {said}")


def device_sentence(identity: Mapping[str, Any]) -> str:
    """A device's identity in words: model, serial, firmware, protocol and what it can do."""
    parts = [str(identity.get("model") or "unknown model")]
    if identity.get("serial"):
        parts.append(f"serial {identity['serial']}")
    if identity.get("firmware"):
        parts.append(f"firmware {identity['firmware']}")
    if identity.get("protocol"):
        parts.append(f"protocol {identity['protocol']}")
    can = [label for key, label in (("contact_check", "contact check"), ("coulomb_counter", "its own dose counter"),
                                    ("watchdog", "a host-loss watchdog"), ("native_ramp", "its own ramps"))
           if identity.get(key)]  # fmt: skip
    limits = []
    if identity.get("hw_max_current_ma") is not None:
        limits.append(f"at most {number(identity['hw_max_current_ma'], 0, 'mA')}")
    if identity.get("compliance_v") is not None:
        limits.append(f"{number(identity['compliance_v'], 0, 'V')} compliance")
    text = "Device " + ", ".join(parts)
    if limits:
        text += f" ({', '.join(limits)})"
    if can:
        text += "; it has " + ", ".join(can[:-1]) + (" and " if len(can) > 1 else "") + can[-1]
    return sentence(text)


def note_sentence(text: str) -> str:
    """A note event: a device's identity, a limit a refused prescription broke, or a note as written (with any
    stored object after its label put into words)."""
    head, sep, rest = str(text).partition(": ")
    data: Any = None
    if sep and rest.lstrip().startswith(("{", "[")):
        try:
            data = json.loads(rest)
        except ValueError:
            data = None
    if head == "device" and isinstance(data, Mapping):
        return device_sentence(data)
    if head == "limit broken" and isinstance(data, Mapping):
        return sentence(f"Refused: {data.get('message') or _plain(data)}")
    if data is not None:
        return sentence(f"{head}: {_plain(data)}")
    return sentence(" ".join(str(text).replace("{", "(").replace("}", ")").split()))


def state_sentence(text: str) -> str:
    state, sep, reason = str(text).partition(": ")
    phrase = STATES.get(state.strip())
    if phrase is None:
        return sentence(text)
    reason = " ".join(reason.split()) if sep else ""
    if not reason or reason in _SAME or reason.lower() == phrase.lower():
        return sentence(phrase)
    return sentence(f"{phrase} ({reason})")


def event_sentence(event: Mapping[str, Any], record_fault: str | None = None) -> str:
    kind = event.get("kind")
    if kind == "fault":
        return fault_sentence(str(event.get("text", "")), record_fault)
    if kind == "note":
        return note_sentence(str(event.get("text", "")))
    return state_sentence(str(event.get("text", "")))


# -- addenda and signatures -------------------------------------------------------------------------------------

ADDENDUM_NAMES = {
    "skin-check-before": "Skin check before the session",
    "skin-check-after": "Skin check after the session",
    "adverse-reaction": "Adverse reaction",
    "correction": "Correction",
    "note": "Note",
}


def addendum_sentence(entry: Mapping[str, Any]) -> str:
    """An addendum: its number, what it is, who made it, and its content in words."""
    from ionctl.records.skin import addendum_text

    detail = parsed(entry.get("detail"))
    text = addendum_text({**entry, "detail": detail})
    name = ADDENDUM_NAMES.get(str(entry.get("action")), str(entry.get("action", "addendum")).replace("-", " "))
    return sentence(f"{name} (#{entry.get('seq', '-')}, by {entry.get('actor', '-')}): {text}")


def signature(entry: Mapping[str, Any]) -> dict[str, str] | None:
    """A sign-off's printed name, login and role, local date and time, and meaning; None for another entry."""
    detail = parsed(entry.get("detail"))
    sig = detail.get("signature")
    if entry.get("action") != SIGN_ACTION or not isinstance(sig, Mapping):
        return None
    return {"name": str(sig.get("full_name", "-")), "login": str(sig.get("signer", "-")),
            "role": str(sig.get("role", "-")), "when": timefmt.local_text(sig.get("utc")),
            "meaning": str(sig.get("meaning", "-"))}  # fmt: skip


def signature_sentence(entry: Mapping[str, Any]) -> str | None:
    sig = signature(entry)
    if sig is None:
        return None
    return sentence(f'Signed "{sig["meaning"]}" by {sig["name"]} ({sig["login"]}, {sig["role"]}) on {sig["when"]}')


def is_adverse(entry: Mapping[str, Any]) -> bool:
    """An addendum that states an adverse reaction (a late one, or a skin check after with a finding)."""
    if entry.get("action") == "adverse-reaction":
        return True
    if entry.get("action") != "skin-check-after":
        return False
    detail = parsed(entry.get("detail"))
    items = detail.get("items")
    found = isinstance(items, Mapping) and any(isinstance(v, Mapping) and v.get("answer") == "yes"
                                               for v in items.values())  # fmt: skip
    return found or bool(str(detail.get("reaction") or "").strip())


# -- the whole account ------------------------------------------------------------------------------------------


def entries(record: Any) -> list[Entry]:
    """Every event, addendum and sign-off of `record` as an `Entry`, in the order they happened."""
    origin = start_s(record)
    fault = record.fields.get("fault")
    out: list[tuple[str, int, Entry]] = []
    for n, e in enumerate(record.events):
        at = e.get("device_t_s")
        elapsed = f"+{timefmt.since_start(origin, at)}" if at is not None else ""
        kind = str(e.get("kind"))
        text = event_sentence(e, fault)
        if kind == "note" and text.startswith("Refused:"):
            kind = "refusal"
        out.append((str(e.get("utc") or ""), n, Entry(e.get("utc"), clock(e.get("utc")), elapsed, kind, text,
                                                        alert=kind == "fault")))  # fmt: skip
    for n, a in enumerate(record.addenda, start=len(out)):
        signed = signature_sentence(a)
        if signed is not None:
            utc = parsed(a.get("detail")).get("signature", {}).get("utc") or a.get("utc")
            out.append((str(utc or ""), n, Entry(utc, clock(utc), "", "signature", signed)))
            continue
        kind = "adverse-reaction" if is_adverse(a) else str(a.get("action", "addendum"))
        out.append(
            (
                str(a.get("utc") or ""),
                n,
                Entry(
                    a.get("utc"), clock(a.get("utc")), "", kind, addendum_sentence(a), alert=kind == "adverse-reaction"
                ),
            )
        )
    out.sort(key=lambda item: (item[0], item[1]))  # ISO 8601 UTC texts sort as the times they are
    return [entry for _, _, entry in out]


def dose_figures(record: Any) -> tuple[float | None, float | None]:
    """(delivered, prescribed) mA·min of a record."""
    f = record.fields
    rx = parsed(f.get("prescription"))
    prescribed = f.get("prescribed_dose_ma_min")
    if prescribed is None:
        prescribed = rx.get("dose_ma_min") if rx.get("dose_ma_min") is not None else rx.get("planned_dose_ma_min")
    delivered = f.get("dose_ma_min")
    return (None if delivered is None else float(delivered)), (None if prescribed is None else float(prescribed))


def percent(delivered: float | None, prescribed: float | None) -> str:
    if delivered is None or not prescribed:
        return "-"
    return f"{100.0 * delivered / prescribed:.0f} %"


def outcome_sentence(record: Any) -> str:
    """How the session ended, with the dose delivered of the prescribed and, for one that ended early, the dose
    still to give."""
    f = record.fields
    outcome = f.get("outcome")
    if outcome is None:
        return "The session is still running (the record is open)."
    delivered, prescribed = dose_figures(record)
    head = OUTCOMES.get(str(outcome), str(outcome).replace("_", " ").capitalize())
    if outcome == "refused":
        return sentence(f"{head}; the device was not energised")
    dose = f"{number(delivered, 2, 'mA·min')} of {number(prescribed, 2, 'mA·min')} delivered " \
           f"({percent(delivered, prescribed)}) in {minutes(f.get('duration_s'))}"  # fmt: skip
    text = f"{head}: {dose}"
    if f.get("fault") and outcome != "completed":
        code = str(f["fault"])
        what = FAULTS.get(code, (code.replace("_", " "), ""))[0]
        text += f"; fault: {what}"
    if outcome != "completed" and delivered is not None and prescribed:
        remaining = max(0.0, prescribed - delivered)
        text += f". Remaining dose not given: {number(remaining, 2, 'mA·min')}"
    if f.get("alarm"):
        text += ". ALARM: the output could not be confirmed off; the electrodes were to be removed at once"
    return sentence(text)


def refusal_reasons(record: Any) -> list[str]:
    """A refused record's reasons, one sentence each (from its message, else its limit notes)."""
    message = str(record.fields.get("message") or "")
    reasons = [sentence(line.strip().removeprefix("- ").strip()) for line in message.split("\n")[1:]
               if line.strip().startswith("-")]  # fmt: skip
    if reasons:
        return reasons
    notes = [note_sentence(str(e.get("text"))) for e in record.events if e.get("kind") == "note"]
    return [n.removeprefix("Refused: ") for n in notes if n.startswith("Refused:")] or (
        [sentence(message)] if message else []
    )


# -- prescription against delivery ------------------------------------------------------------------------------


def site_text(details: ClinicalDetails | None) -> str:
    return details.site.text if details is not None and details.site is not None else "not recorded"


def drug_text(rx: Mapping[str, Any], details: ClinicalDetails | None) -> str:
    """The drug with its concentration and volume (and lot), as a chart line."""
    text = str(rx.get("drug") or "-")
    extra = []
    if details is not None and details.concentration:
        extra.append(details.concentration)
    if details is not None and details.volume_ml is not None:
        extra.append(f"{details.volume_ml:g} mL")
    if details is not None and details.lot:
        extra.append(f"lot {details.lot}")
    return f"{text}, {', '.join(extra)}" if extra else text


def electrode_text(rx: Mapping[str, Any], details: ClinicalDetails | None) -> str:
    area = number(rx.get("electrode_area_cm2"), 1, "cm²")
    if details is not None and details.electrode_product:
        kind = f" ({details.electrode_type})" if details.electrode_type else ""
        return f"{details.electrode_product}{kind}, {area}"
    return area


def polarity_text(rx: Mapping[str, Any]) -> str:
    polarity = str(rx.get("polarity") or "-")
    charge = {"-": "negative", "+": "positive"}.get(str(rx.get("drug_charge")), rx.get("drug_charge"))
    text = f"{polarity} (active electrode)"
    if charge:
        text += f", drug charge {charge}"
    if rx.get("polarity_reversal_at_midpoint"):
        text += ", reversed at the midpoint"
    return text


def comparison(record: Any) -> list[tuple[str, str, str]]:
    """(what, prescribed, delivered) rows: current, density, dose (with %), duration, then the details that have
    one value (site, drug, polarity, electrode) in the prescribed column."""
    f = record.fields
    rx = parsed(f.get("prescription"))
    details = ClinicalDetails.of_record(f)
    delivered, prescribed = dose_figures(record)
    area = rx.get("electrode_area_cm2")
    peak_density = f.get("peak_density_ma_cm2")
    if peak_density is None and f.get("peak_current_ma") is not None and area:
        peak_density = float(f["peak_current_ma"]) / float(area)
    planned_min = rx.get("duration_min")
    if planned_min is None and prescribed and rx.get("current_ma"):
        planned_min = prescribed / float(rx["current_ma"])  # the hold alone: ramps add to it
    energised = f.get("outcome") not in (None, "refused")
    done = (lambda text: text) if energised else (lambda _text: "none (refused)")  # noqa: E731
    dose_done = f"{number(delivered, 2, 'mA·min')} ({percent(delivered, prescribed)})"
    return [
        ("Current", number(rx.get("current_ma"), 2, "mA"), done(f"{number(f.get('peak_current_ma'), 2, 'mA')} peak")),
        ("Density", number(rx.get("density_ma_cm2"), 3, "mA/cm²"), done(f"{number(peak_density, 3, 'mA/cm²')} peak")),
        ("Dose", number(prescribed, 2, "mA·min"), done(dose_done)),
        ("Duration", f"about {number(planned_min, 1, 'min')}" if planned_min is not None else "-",
         done(minutes(f.get("duration_s")))),
        ("Site", site_text(details), ""),
        ("Drug", drug_text(rx, details), ""),
        ("Polarity", polarity_text(rx), ""),
        ("Electrode", electrode_text(rx, details), ""),
    ]  # fmt: skip


def simulated(record: Any) -> bool:
    return is_simulated(record.fields)


def details_lines(record: Any) -> list[tuple[str, str]]:
    """(label, value) of who and what beyond the prescription: patient, operator, prescriber, device, visit."""
    f = record.fields
    details = ClinicalDetails.of_record(f)
    device = parsed(f.get("device"))
    model = " ".join(str(device.get(k)) for k in ("model", "serial") if device.get(k)) or "not opened"
    rows = [("Patient", str(f.get("patient", "-"))), ("Operator", str(f.get("operator", "-"))),
            ("Prescriber", details.prescriber if details is not None and details.prescriber else "not recorded"),
            ("Device", model + (" (simulator)" if simulated(record) else ""))]  # fmt: skip
    if details is not None and details.visit is not None:
        rows.append(("Visit", f"{details.visit.id}, channel {details.visit.channel} of {details.visit.channels}"))
    if f.get("course_id") is not None or f.get("course_ref"):
        rows.append(("Course", str(f.get("course_ref") or f.get("course_id"))))
    return rows


def skin_table(record: Any) -> list[tuple[str, str, str]]:
    """(item, before, after) of the latest skin check before and after the session ("-" when none)."""
    from ionctl.records.skin import ITEMS

    checks: dict[str, dict[str, Any]] = {}
    for a in record.addenda:
        if a.get("action") in ("skin-check-before", "skin-check-after") and isinstance(
            parsed(a.get("detail")).get("items"), Mapping
        ):
            checks[str(a["action"]).removeprefix("skin-check-")] = parsed(a.get("detail"))
    rows = []
    for key, label in ITEMS.items():
        cells = []
        for when in ("before", "after"):
            item = (checks.get(when) or {}).get("items", {}).get(key)
            if isinstance(item, Mapping):
                answer = str(item.get("answer", "-"))
                cells.append(f"{answer} ({item['reason']})" if item.get("reason") else answer)
            else:
                cells.append("-")
        rows.append((label.split(" (")[0], cells[0], cells[1]))
    return rows if checks else []


# -- `ionctl records show` --------------------------------------------------------------------------------------

SHOW_WIDTH = 100


def _table(rows: Sequence[Sequence[str]], indent: str = "  ") -> list[str]:
    widths = [max(len(str(row[k])) for row in rows) for k in range(len(rows[0]))]
    return [(indent + "  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True))).rstrip() for row in rows]


class _Fields:
    """A record row as the sentences read a record (`.fields`)."""

    def __init__(self, fields: Mapping[str, Any]) -> None:
        self.fields = fields


def visit_channels(record: Any, rows: Sequence[Mapping[str, Any]]) -> list[tuple[str, str, str, str, str]]:
    """The channels of the visit `record` is a channel of, found among `rows` (the patient's record rows): (channel,
    treatment site, record, outcome, dose delivered of prescribed), in channel order; empty for a session that is
    no visit's. The chart shows them so that each channel's page says what the visit as a whole did."""
    details = ClinicalDetails.of_record(record.fields)
    if details is None or details.visit is None:
        return []
    found: list[tuple[int, tuple[str, str, str, str, str]]] = []
    for row in rows:
        other = ClinicalDetails.of_record(row)
        if other is None or other.visit is None or other.visit.id != details.visit.id:
            continue
        delivered, prescribed = dose_figures(_Fields(row))
        dose = f"{number(delivered, 2)} of {number(prescribed, 2, 'mA·min')} ({percent(delivered, prescribed)})"
        this = " (this record)" if int(row["id"]) == int(record.fields["id"]) else ""
        found.append((other.visit.channel, (f"{other.visit.channel} of {other.visit.channels}", site_text(other),
                                            f"#{row['id']}{this}", str(row.get("outcome") or "open"), dose)))
    return [line for _, line in sorted(found)]  # fmt: skip


def visit_channels_in(store: Any, record: Any) -> list[tuple[str, str, str, str, str]]:
    """`visit_channels` of `record`, read from its store (the patient's records); empty for no visit's, or a store
    that cannot list records."""
    details = ClinicalDetails.of_record(record.fields)
    lister = getattr(store, "list_records", None)
    if details is None or details.visit is None or lister is None:
        return []
    return visit_channels(record, lister(patient=record.fields.get("patient")))


def show_text(record: Any, name: str | None = None,
              visit: Sequence[tuple[str, str, str, str, str]] = ()) -> list[str]:  # fmt: skip
    """A record for a person at a terminal, in sections: who and when, how it ended, the prescription beside the
    delivery, a visit's channels (`visit`: `visit_channels`), the skin check, any adverse reaction, what happened,
    the addenda, the signatures, the integrity."""
    from ionctl.records.skin import corrected_by

    f = record.fields
    out = [f"Iontophoresis session record #{record.id}"]
    if simulated(record):
        out.append("SIMULATED DEVICE — NOT A TREATMENT")
    out += [f"  {label}: {value}" for label, value in details_lines(record)]
    out += [f"  Started: {timefmt.local_text(f.get('created_utc'))}",
            f"  Ended: {timefmt.local_text(f.get('ended_utc'), missing='still open')}", "", "Outcome"]  # fmt: skip
    out += ["  " + line for line in wrap(outcome_sentence(record), SHOW_WIDTH - 2)]
    if f.get("outcome") == "refused":
        out += [f"  - {line}" for reason in refusal_reasons(record) for line in wrap(reason, SHOW_WIDTH - 4)]
    out += ["", "Prescription and delivery"]
    out += _table([("", "prescribed", "delivered"), *comparison(record)])
    if visit:
        out += ["", f"This visit's channels ({len(visit)})"]
        out += _table([("channel", "site", "record", "outcome", "dose mA·min"), *visit])
    skin = skin_table(record)
    if skin:
        out += ["", "Skin check"] + _table([("item", "before", "after"), *skin])
    adverse = [a for a in record.addenda if is_adverse(a)]
    if adverse:
        out += ["", "ADVERSE REACTION"]
        for a in adverse:
            text = f"{timefmt.local_text(a.get('utc'), seconds=False)}: {addendum_sentence(a)}"
            out += ["  " + line for line in wrap(text, SHOW_WIDTH - 2, "   ")]
    session = type(record)(record.fields, record.events, record.telemetry, [])
    out += ["", f"What happened (times {timefmt.zone_label()}, +m:ss since the session started)"]
    for entry in entries(session):
        stamp = f"{entry.when} {entry.elapsed}".strip().ljust(16)
        lines = wrap(entry.text, SHOW_WIDTH - 20)
        out += [f"  {stamp}  {lines[0]}", *(f"  {'':16}  {line}" for line in lines[1:])]
    addenda = [a for a in record.addenda if signature(a) is None]
    out += ["", f"Addenda ({len(addenda)})" if addenda else "Addenda: none"]
    later = corrected_by(addenda)
    for a in addenda:
        mark = f" Corrected by {', '.join(f'#{n}' for n in later[a['seq']])}." if a.get("seq") in later else ""
        text = f"{timefmt.local_text(a.get('utc'))}: {addendum_sentence(a)}{mark}"
        out += ["  " + line for line in wrap(text, SHOW_WIDTH - 2, "   ")]
    signatures = [s for s in (signature(a) for a in record.addenda) if s is not None]
    out += ["", "Signatures (`ionctl records verify` checks them)" if signatures else
            f"Signatures: none (`ionctl records sign {record.id} --as NAME`)"]  # fmt: skip
    if signatures:
        out += _table(
            [
                ("printed name", "date and time", "meaning"),
                *[(f"{s['name']} ({s['login']}, {s['role']})", s["when"], s["meaning"]) for s in signatures],
            ]
        )
    name = str(name) if name else str(record.id)  # clinic-wide "bench-b/1": the name the commands below take
    out += ["", f"Telemetry: {len(record.telemetry)} samples (ionctl records export {name} --format csv)"]
    closing = f.get("chain_hash")
    out.append(f"Record chain hash (link {f.get('close_gseq')}): {closing}" if closing else
               "Record chain hash: none yet (the record is open)")  # fmt: skip
    out.append(f"The whole record: ionctl records show {name} --json")
    return out
