"""`sim.process`: the simulator started as a process of its own, as the demo, the tests and the benchmarks start
it: it announces its endpoints, stops cleanly, and a failed start says why in the simulator's own words."""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sim.process import SimulatorError, running_sim, start


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[subprocess.Popen[str]]]:
    """Every process `sim.process` starts in the test, to check it was reaped."""
    made: list[subprocess.Popen[str]] = []
    real = subprocess.Popen

    def recording(*args: Any, **kwargs: Any) -> subprocess.Popen[str]:
        process: subprocess.Popen[str] = real(*args, **kwargs)
        made.append(process)
        return process

    monkeypatch.setattr(subprocess, "Popen", recording)  # the module sim.process uses
    yield made
    for process in made:
        if process.poll() is None:  # a failing test leaves nothing behind either
            process.kill()
            process.wait()


def test_the_endpoints_it_announces_are_where_it_serves(tmp_path: Path) -> None:
    link = tmp_path / "dev"
    with running_sim("--serial-link", str(link), "--tcp", "0") as sim:
        assert sim.process.poll() is None
        assert os.readlink(link) == sim.endpoints["serial"]
        host, port = sim.endpoints["tcp"].removeprefix("socket://").split(":")
        assert host == "127.0.0.1"
        socket.create_connection((host, int(port)), timeout=5).close()


def test_it_is_stopped_and_reaped_after_the_block_and_leaves_no_link(tmp_path: Path) -> None:
    link = tmp_path / "dev"
    with running_sim("--serial-link", str(link)) as sim:
        pass
    assert sim.process.returncode == 0  # SIGTERM: a clean shutdown
    assert not os.path.lexists(link)
    assert sim.stop() == 0  # stopping it again only says how it ended
    assert sim.process.stdout is not None and sim.process.stdout.closed


def test_it_is_stopped_when_the_block_raises(tmp_path: Path) -> None:
    with pytest.raises(KeyError), running_sim("--tcp", "0") as sim:
        raise KeyError("the caller's own failure")
    assert sim.process.returncode == 0


def test_a_bad_argument_is_refused_with_the_simulators_message(started: list[subprocess.Popen[str]]) -> None:
    with pytest.raises(SimulatorError) as error:
        start("--tcp", "0", "--fault", "melt@3")
    message = str(error.value)
    assert message.startswith("the simulator exited (2): ") and "unknown kind 'melt'" in message
    assert [p.returncode for p in started] == [2]


def test_the_simulators_stderr_goes_to_the_log_given(tmp_path: Path) -> None:
    log = tmp_path / "sim.log"
    with pytest.raises(SimulatorError, match="give at least one endpoint"):
        start("--seed", "1", log=log)
    assert "give at least one endpoint" in log.read_text()


def test_a_simulator_not_ready_in_time_is_stopped_and_reaped(started: list[subprocess.Popen[str]]) -> None:
    with pytest.raises(SimulatorError, match="did not say ready within 0.001 s"):
        start("--tcp", "0", timeout_s=0.001)
    assert len(started) == 1 and started[0].returncode is not None


def test_an_unclean_exit_is_an_error_unless_not_checked() -> None:
    with pytest.raises(SimulatorError, match=r"exited \(-9\) when stopped"), running_sim("--tcp", "0") as sim:
        sim.process.kill()
        sim.process.wait()
    with running_sim("--tcp", "0", check=False) as sim:
        sim.process.kill()
    assert sim.process.returncode == -9


def test_in_a_session_of_its_own_a_terminals_ctrl_c_does_not_reach_it() -> None:
    with running_sim("--tcp", "0", new_session=True) as sim:
        assert os.getsid(sim.process.pid) == sim.process.pid != os.getsid(0)
    with running_sim("--tcp", "0") as sim:
        assert os.getsid(sim.process.pid) == os.getsid(0)
