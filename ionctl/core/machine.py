"""The session's state machine as data: its states, every transition in one table, and the diagram drawn
from that table (docs/ARCHITECTURE.md, the state diagram; `ionctl.core.session.Session` is the model).

The names are `SessionState` values as plain strings: `transitions` would name an enum member's state by the
member's name, and the diagram and the records show the values."""

from __future__ import annotations

from typing import Any

from ionctl.core.vocabulary import Outcome
from ionctl.core.vocabulary import SessionState as S

PREPARING = [s.value for s in (S.DISCONNECTED, S.CONNECTED, S.CONFIGURED, S.CONTACT_CHECKED, S.ARMED)]
ENERGISED = [s.value for s in (S.RAMPING_UP, S.DELIVERING, S.PAUSED, S.REVERSING, S.RAMPING_DOWN)]
TERMINAL = [s.value for s in (S.COMPLETED, S.STOPPED, S.ABORTED, S.FAULT, S.REFUSED)]
STATES = PREPARING + ENERGISED + TERMINAL
#: Session states in which the host expects the device to be delivering (its output on, energised): a device that
#: is not (a front-panel stop, the firmware ending the delivery, another program's STOP) is the fault
#: `device_stopped`. In `ramping_down` the device ending is the plan; in `reversing` it is too.
EXPECTS_DELIVERY = tuple(s.value for s in (S.RAMPING_UP, S.DELIVERING, S.PAUSED))
#: The terminal states and the outcome each ends the session with.
OUTCOMES = {s: Outcome(s).value for s in TERMINAL}

_DELIVERING = [S.RAMPING_UP.value, S.DELIVERING.value]

# trigger, source(s), destination, and what runs first (a device command, or a condition)
TRANSITIONS: list[dict[str, Any]] = [
    {"trigger": "connect", "source": S.DISCONNECTED.value, "dest": S.CONNECTED.value, "before": "_do_connect"},
    {"trigger": "configure", "source": S.CONNECTED.value, "dest": S.CONFIGURED.value, "before": "_do_configure"},
    {"trigger": "check_contact", "source": S.CONFIGURED.value, "dest": S.CONTACT_CHECKED.value,
     "before": "_do_check_contact"},
    {"trigger": "arm", "source": S.CONTACT_CHECKED.value, "dest": S.ARMED.value, "before": "_do_arm"},
    {"trigger": "start", "source": S.ARMED.value, "dest": S.RAMPING_UP.value, "before": "_do_start"},
    {"trigger": "reach_target", "source": S.RAMPING_UP.value, "dest": S.DELIVERING.value},
    {"trigger": "pause", "source": _DELIVERING, "dest": S.PAUSED.value, "before": "_do_pause"},
    {"trigger": "resume", "source": S.PAUSED.value, "dest": S.RAMPING_UP.value, "before": "_do_resume"},
    {"trigger": "reverse", "source": _DELIVERING, "dest": S.REVERSING.value, "before": "_do_ramp_down"},
    {"trigger": "restart_reversed", "source": S.REVERSING.value, "dest": S.RAMPING_UP.value,
     "before": "_do_restart_reversed"},
    {"trigger": "dose_reached", "source": list(EXPECTS_DELIVERY), "dest": S.RAMPING_DOWN.value,
     "before": "_do_ramp_down"},
    {"trigger": "stop", "source": [*EXPECTS_DELIVERY, S.REVERSING.value], "dest": S.RAMPING_DOWN.value,
     "before": "_do_operator_stop"},
    {"trigger": "finish", "source": S.RAMPING_DOWN.value, "dest": S.STOPPED.value,
     "conditions": "_stopped_by_operator"},
    {"trigger": "finish", "source": S.RAMPING_DOWN.value, "dest": S.COMPLETED.value},
    {"trigger": "abort", "source": ENERGISED, "dest": S.ABORTED.value, "before": "_do_abort"},
    {"trigger": "fail", "source": PREPARING + ENERGISED, "dest": S.FAULT.value},
    {"trigger": "refuse", "source": PREPARING, "dest": S.REFUSED.value},
    {"trigger": "cancel", "source": PREPARING, "dest": S.STOPPED.value},
]  # fmt: skip


def mermaid() -> str:
    """The session state diagram in mermaid, drawn by `transitions` from `TRANSITIONS` itself."""
    from transitions.extensions import GraphMachine

    class _Model:
        pass

    model = _Model()
    GraphMachine(model=model, states=STATES, transitions=TRANSITIONS, initial=S.DISCONNECTED.value,
                 auto_transitions=False, graph_engine="mermaid", title="ionctl session")  # fmt: skip
    return str(model.get_graph().draw(None))  # type: ignore[attr-defined]
