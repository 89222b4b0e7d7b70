"""The use cases both front ends (`ionctl run`, `ionctl console`) call: a `TreatmentRequest` is prepared
(`prepare`: approval, course rules and a supervisor's override, the prescription, validation; it prints
nothing), run (`SessionRunner`: the device, the `Session`, the record written as it runs) and reported
(`Report`). docs/ARCHITECTURE.md places this layer between the front ends and the domain core."""

from ionctl.treatment.prepare import (
    OVERRIDE_ACTION,
    CourseRuleRefused,
    Override,
    Prepared,
    Refused,
    authorise_override,
    opening_check,
    prepare,
)
from ionctl.treatment.recorder import Recorder, record_refusal
from ionctl.treatment.report import (
    ALARM_TEXT,
    RECORD_FAILED,
    Interrupts,
    Report,
    not_started,
    report_of,
    result_text,
    summary,
)
from ionctl.treatment.request import TreatmentRequest, build_prescription
from ionctl.treatment.runner import Display, SessionRunner

__all__ = [
    "ALARM_TEXT",
    "OVERRIDE_ACTION",
    "RECORD_FAILED",
    "CourseRuleRefused",
    "Display",
    "Interrupts",
    "Override",
    "Prepared",
    "Recorder",
    "Refused",
    "Report",
    "SessionRunner",
    "TreatmentRequest",
    "authorise_override",
    "build_prescription",
    "not_started",
    "opening_check",
    "prepare",
    "record_refusal",
    "report_of",
    "result_text",
    "summary",
]
