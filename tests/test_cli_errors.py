"""No `ionctl` command ends in a traceback or a "Broken pipe" message: a reader that goes away, a file that cannot
be written, a bug, Ctrl-C. Each is made to happen to a real `ionctl` process."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from ionctl.records import Store
from tests.people import TECHNICIAN, make_clinic

ROOT = Path(__file__).resolve().parents[1]


def ionctl(*args: str, env: dict[str, str] | None = None, prelude: str = "",
           input: str | None = None) -> subprocess.CompletedProcess[str]:  # fmt: skip
    """`ionctl ARGS` in a child process (through `ionctl.cli.main`, as the installed command runs it); stdin is
    `input`, else nothing."""
    code = f"import sys\n{prelude}\nfrom ionctl.cli import main\nsys.exit(main(sys.argv[1:]))\n"
    stdin = {"input": input} if input is not None else {"stdin": subprocess.DEVNULL}
    return subprocess.run([sys.executable, "-c", code, *args], cwd=ROOT, capture_output=True, text=True, env=env,
                          timeout=120, **stdin)  # type: ignore[call-overload]  # fmt: skip


def store_with_records(path: Path, count: int) -> None:
    with Store(path) as store:
        for _ in range(count):
            record_id = store.open_record(patient="P-" + "0" * 200, operator="T07", prescription={}, limits={},
                                          limits_sha256="")  # fmt: skip
            store.close_record(record_id, {"outcome": "completed"})


def test_a_reader_that_goes_away_after_one_line_gets_no_broken_pipe_message(tmp_path: Path) -> None:
    db = tmp_path / "records.sqlite3"
    store_with_records(db, 600)  # about 150 kB of listing: more than a pipe holds, so the writer must notice
    process = subprocess.Popen([sys.executable, "-m", "ionctl", "records", "list", "--db", str(db)], cwd=ROOT,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)  # fmt: skip
    assert process.stdout is not None and process.stderr is not None
    assert process.stdout.readline().startswith(b"id\t")
    process.stdout.close()  # as `| head -1` does
    stderr = process.stderr.read().decode()
    assert process.wait(timeout=120) == 141  # 128 + SIGPIPE, what a shell shows for a command SIGPIPE ended
    assert "Broken pipe" not in stderr and "Traceback" not in stderr and "BrokenPipeError" not in stderr, stderr
    assert stderr == ""


def test_records_export_into_a_missing_folder_names_the_path(tmp_path: Path) -> None:
    db = tmp_path / "records.sqlite3"
    store_with_records(db, 1)
    target = tmp_path / "missing" / "dir" / "file.json"
    done = ionctl("records", "export", "1", "--db", str(db), "--format", "json", "-o", str(target))
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert done.stderr.strip() == f"ionctl records: cannot write {str(target)!r}: the folder " \
        f"{str(target.parent)!r} does not exist"  # fmt: skip
    assert not target.exists()


def test_a_pdf_export_into_a_missing_folder_names_the_path(tmp_path: Path) -> None:
    db = tmp_path / "records.sqlite3"
    store_with_records(db, 1)
    target = tmp_path / "missing" / "chart.pdf"
    done = ionctl("records", "export", "1", "--db", str(db), "--format", "pdf", "-o", str(target))
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert f"cannot write {str(target)!r}" in done.stderr


def test_course_export_into_a_missing_folder_names_the_path(tmp_path: Path) -> None:
    clinic = make_clinic(tmp_path)  # the course is started by its technician, who logs in
    db = clinic.store
    started = ionctl("course", "start", "--db", str(db), "--config", str(clinic.config), "--patient", "P1",
                     "--preset", "dexamethasone", "--operator", TECHNICIAN, "--password-stdin", "--electrode",
                     "patch-10cm2", "--sessions", "3", input=clinic.stdin(TECHNICIAN))  # fmt: skip
    assert started.returncode == 0, started.stderr
    target = tmp_path / "nowhere" / "course.json"
    done = ionctl("course", "export", "1", "--db", str(db), "--format", "json", "-o", str(target))
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert f"ionctl course: cannot write {str(target)!r}: the folder {str(target.parent)!r} does not exist" \
        in done.stderr  # fmt: skip


def test_a_bug_is_one_line_naming_a_log_file_that_holds_the_traceback(tmp_path: Path) -> None:
    env = {**os.environ, "XDG_STATE_HOME": str(tmp_path / "state")}  # platformdirs' user log dir on Linux
    done = ionctl(
        "protocol",
        "schema",
        env=env,
        prelude="""
import ionctl.cli.protocol
def broken(args):
    raise ValueError("a bug\\nover two lines")
ionctl.cli.protocol.schema = broken
""",
    )
    assert done.returncode == 1
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    match = re.fullmatch(r"ionctl: internal error: ValueError: a bug over two lines; the details are in (.+\.log)",
                         lines[0])  # fmt: skip
    assert match, lines[0]
    log = Path(match.group(1))
    assert log.is_relative_to(tmp_path / "state")
    text = log.read_text()
    assert "Traceback (most recent call last)" in text and "in broken" in text and "protocol schema" in text


def test_ctrl_c_outside_a_session_exits_130_quietly() -> None:
    done = ionctl(
        "protocol",
        "schema",
        prelude="""
import ionctl.cli.protocol
def interrupted(args):
    raise KeyboardInterrupt
ionctl.cli.protocol.schema = interrupted
""",
    )
    assert done.returncode == 130
    assert done.stderr == ""
