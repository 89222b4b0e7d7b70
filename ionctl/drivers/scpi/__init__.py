"""A Keithley 2400-class SourceMeter as a `CurrentSource` (`ionctl.drivers.scpi.driver`): the instrument's dialect
and VISA link (`dialect`) under a pure host-side device layer (`soft_source`)."""

from ionctl.drivers.scpi.dialect import MODELS, Link, Reading, UnreadableReply, check_errors, parse_identity
from ionctl.drivers.scpi.driver import ScpiSourceMeter
from ionctl.drivers.scpi.soft_source import Port, SoftSource

__all__ = [
    "MODELS",
    "Link",
    "Port",
    "Reading",
    "ScpiSourceMeter",
    "SoftSource",
    "UnreadableReply",
    "check_errors",
    "parse_identity",
]
