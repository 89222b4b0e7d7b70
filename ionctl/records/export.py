"""Exports of a stored record: JSON (the whole record, schema-versioned; `Record.from_dict` reads it back)
and CSV (one row per telemetry sample); FHIR R4 (a Bundle, `ionctl.records.fhir`); PDF (one page for the chart,
`ionctl.records.pdf`, matplotlib imported only then). Formats not built yet: `FORMATS_NOT_BUILT`."""

from __future__ import annotations

import csv
import io
import json
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ionctl.records.store import Record

#: The audit action of a record sign-off (`ionctl.config.people.SIGNED_ACTIONS`): shown as a signature, not an
#: addendum, on every page and export that lists a record's addenda.
SIGN_ACTION = "record-sign"
FORMATS = ("json", "csv", "fhir", "pdf")
FORMATS_NOT_BUILT: tuple[str, ...] = ()
CSV_HEADER = ("device_time_s", "current_ma", "voltage_v", "impedance_ohm", "dose_ma_min", "state")


def signature_text(entry: Mapping[str, Any], when: Callable[[Any], str] | None = None) -> str | None:
    """A record sign-off (an audit entry `SIGN_ACTION`) as a reader sees it: printed name, login name and role,
    date and time (`when(utc)`, default the stored UTC), meaning (21 CFR 11.50(a), as
    `ionctl.config.people.Signature.manifestation` says it); None for any other entry."""
    detail = entry.get("detail")
    if isinstance(detail, str):
        try:
            detail = json.loads(detail)
        except ValueError:
            return None
    sig = detail.get("signature") if isinstance(detail, Mapping) else None
    if entry.get("action") != SIGN_ACTION or not isinstance(sig, Mapping):
        return None
    at = when(sig.get("utc")) if when is not None else str(sig.get("utc", "-"))
    who = f"{sig.get('full_name', '-')} ({sig.get('signer', '-')}, {sig.get('role', '-')})"
    return f"{who}, {at}: {sig.get('meaning', '-')}"


def to_json(record: Record) -> str:
    return json.dumps(record.to_dict(), indent=2, ensure_ascii=False) + "\n"


def to_csv(record: Record) -> str:
    """One row per sample: device time s, measured current mA, voltage V, impedance Ω (empty when the
    device could not measure it), host-integrated dose mA·min so far, session state."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_HEADER)
    for s in record.telemetry:
        writer.writerow([s["t_s"], s["current_ma"], s["voltage_v"], "" if s["impedance_ohm"] is None
                         else s["impedance_ohm"], s["dose_ma_min"], s["state"]])  # fmt: skip
    return out.getvalue()


def to_fhir(record: Record, *, pdf: bytes | None = None, clinic_name: str | None = None,
            bench: str | None = None) -> str:  # fmt: skip
    """The FHIR R4 Bundle (type collection) of the record, as JSON text: see `ionctl.records.fhir`. `pdf`: the
    chart PDF's bytes, which the bundle carries in a DocumentReference; `clinic_name` the site's; `bench` the
    record's bench in the clinic (it names the record's course clinic-wide)."""
    from ionctl.records.fhir import to_fhir as build

    return build(record, pdf=pdf, clinic_name=clinic_name, bench=bench)


def to_pdf(record: Record, *, head: tuple[int, str] | None = None, clinic_name: str | None = None,
           visit: Sequence[Sequence[str]] = ()) -> bytes:  # fmt: skip
    """The A4 chart PDF (bytes): see `ionctl.records.pdf` (imports matplotlib). `head`: the store's chain head
    now (`Store.chain_head`), printed beside the record's own chain hash; `clinic_name` the site's, heading it;
    `visit` the channels of the record's visit (`ionctl.records.narrative.visit_channels_in`)."""
    from ionctl.records.pdf import to_pdf as build

    return build(record, head=head, clinic_name=clinic_name, visit=visit)


class ExportError(OSError):
    """An export's file could not be written; the message names the path and the reason."""


def deliver(content: str | bytes, output: str | None, *, pdf_name: str, command: str) -> None:
    """Where an export goes: a PDF (bytes) to `output` or `pdf_name` (always a file, said on stderr); text to
    `output` if given, else stdout. Shared by `ionctl records export` and `ionctl course export`. A file that
    cannot be written (a missing folder, no permission, a full disk) raises `ExportError`."""
    if isinstance(content, bytes):
        path = output or pdf_name
        _write(path, content)
        print(f"{command}: wrote {path}", file=sys.stderr)
    elif output:
        _write(output, content)
    else:
        sys.stdout.write(content)


def _write(path: str, content: str | bytes) -> None:
    try:
        if isinstance(content, bytes):
            with open(path, "wb") as f:
                f.write(content)
        else:
            with open(path, "w", encoding="utf-8", newline="") as f:
                f.write(content)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        if isinstance(exc, FileNotFoundError) and not os.path.isdir(os.path.dirname(path) or "."):
            reason = f"the folder {os.path.dirname(path)!r} does not exist"
        raise ExportError(f"cannot write {path!r}: {reason}") from exc
