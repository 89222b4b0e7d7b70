"""What crash recovery may read from the device a session is about to use."""

from __future__ import annotations

from ionctl.treatment.recovery import device_counter


def test_the_in_process_simulator_gives_no_counter_for_a_record_a_killed_process_left() -> None:
    # A new process's `sim:` device has the same serial as the one that died with the old process, and a counter
    # at zero: read as the interrupted record's counter, it would settle the record as if nothing had flowed.
    assert device_counter("sim:?seed=5")({"serial": "SIM-000001"}) is None


def test_a_sourcemeter_gives_no_counter() -> None:
    assert device_counter("visa:TCPIP0::127.0.0.1::1::SOCKET")({"serial": "4000001"}) is None
