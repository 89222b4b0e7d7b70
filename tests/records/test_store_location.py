"""Which record store a command uses, and that reading never creates one.

A command that only reads (records list/show/export/verify, config show/audit, course show/list/export) refuses
a store that is not there, naming the path, and leaves no file behind: a mistyped --db must not become a new,
empty store that then "verifies". A site configuration may name one shared store for every account on the PC
(`[records] store`), which every command then uses when --db is not given."""

from __future__ import annotations

import io
import json
import re
import sys
from pathlib import Path

import platformdirs
import pytest

from ionctl.cli import main as cli
from ionctl.config import ConfigError, parse_config
from ionctl.config.site import packaged_text
from ionctl.records import Store
from tests.people import ADMIN, FULL_NAMES, PASSWORDS, SUPERVISOR, TECHNICIAN, accounts_table

INITIAL = "Initial-lark-77"  # the initial password the administrator gives each new person

READ_COMMANDS = [
    ("records", "list"),
    ("records", "list", "--json"),
    ("records", "show", "1"),
    ("records", "export", "1", "--format", "json"),
    ("records", "verify"),
    ("config", "show"),
    ("config", "audit"),
    ("course", "show", "1"),
    ("course", "list"),
    ("course", "export", "1", "--format", "json"),
]


@pytest.mark.parametrize("command", READ_COMMANDS, ids=" ".join)
def test_a_read_command_refuses_a_store_that_does_not_exist_and_creates_nothing(
    command: tuple[str, ...], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "typo" / "recrods.sqlite3"
    assert cli([*command, "--db", str(missing)]) == 1
    err = capsys.readouterr().err
    assert f"no record store at {missing}" in err and "only a session" in err
    assert not missing.exists() and not missing.parent.exists()
    assert list(tmp_path.iterdir()) == []  # no file, no directory, no -wal/-shm


def test_records_verify_of_a_missing_default_store_does_not_create_it(capsys: pytest.CaptureFixture[str]) -> None:
    default = Path(platformdirs.user_data_dir("ionctl")) / "records.sqlite3"
    assert cli(["records", "verify"]) == 1
    assert f"no record store at {default}" in capsys.readouterr().err
    assert not default.exists()


def test_a_read_command_still_reads_an_existing_store(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "records.sqlite3"
    Store(db).close()
    assert cli(["records", "verify", "--db", str(db)]) == 0
    assert "ok" in capsys.readouterr().out


def _site_file(text: str) -> Path:
    """Write the site configuration where `ionctl` looks for it (the test's own XDG_CONFIG_DIRS)."""
    path = Path(platformdirs.site_config_dir("ionctl", appauthor=False)) / "config.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_a_store_named_by_the_site_file_is_used_by_config_course_run_and_records(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    shared = tmp_path / "shared" / "records.sqlite3"
    shared.parent.mkdir()
    _site_file(packaged_text() + f'\n[records]\nstore = "{shared}"\n')
    user_default = Path(platformdirs.user_data_dir("ionctl")) / "records.sqlite3"

    def with_stdin(*lines: str) -> None:
        monkeypatch.setattr(sys, "stdin", io.StringIO("".join(f"{line}\n" for line in lines)))

    # The clinic's people, made through `ionctl users` with no --db: explicit writes, they create the site's store.
    with_stdin(PASSWORDS[ADMIN])
    assert cli(["users", "bootstrap", ADMIN, "--full-name", FULL_NAMES[ADMIN], "--password-stdin"]) == 0
    assert shared.is_file()
    fingerprint = re.search(r"key fingerprint (SHA256:\S+)", capsys.readouterr().out)
    assert fingerprint is not None
    _site_file(packaged_text() + f'\n[records]\nstore = "{shared}"\n' + accounts_table(fingerprint[1]))  # IT
    for name, role in ((SUPERVISOR, "supervisor"), (TECHNICIAN, "technician")):
        with_stdin(PASSWORDS[ADMIN], INITIAL)
        assert cli(["users", "add", name, "--full-name", FULL_NAMES[name], "--role", role, "--as", ADMIN,
                    "--password-stdin"]) == 0  # fmt: skip
    with_stdin(INITIAL, PASSWORDS[SUPERVISOR])  # first use: the supervisor sets a password of their own
    assert cli(["config", "approve", "--as", SUPERVISOR, "--password-stdin", "--note", "site store"]) == 0
    capsys.readouterr()

    with_stdin(PASSWORDS[SUPERVISOR])  # the supervisor starts the course, logging in
    assert cli(["course", "start", "--patient", "P-SITE", "--preset", "dexamethasone", "--operator", SUPERVISOR,
                "--password-stdin", "--electrode", "patch-10cm2", "--sessions", "2"]) == 0  # fmt: skip
    # refused by the limits before any device is opened: a record of the refusal, in the site's store
    with_stdin(INITIAL, PASSWORDS[TECHNICIAN])  # the technician's first use, then the session's check
    assert cli(["run", "--preset", "dexamethasone", "--electrode", "patch-10cm2", "--current", "9", "--patient",
                "P-SITE", "--operator", TECHNICIAN, "--password-stdin",
                "--site", "left forearm", "--device", str(tmp_path / "no-device"),
                "--yes"]) == 2  # fmt: skip
    capsys.readouterr()

    assert cli(["records", "list", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["patient"], r["outcome"]) for r in rows] == [("P-SITE", "refused")]
    assert cli(["config", "audit", "--json"]) == 0
    entries = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert ("config-approve", SUPERVISOR) in [(e["action"], e["actor"]) for e in entries]
    assert {"user-enrol", "user-activate"} <= {e["action"] for e in entries}
    assert cli(["records", "verify"]) == 0  # the site file names the store and its administrator
    capsys.readouterr()
    assert cli(["course", "list", "--json"]) == 0
    assert [c["patient"] for c in json.loads(capsys.readouterr().out)] == ["P-SITE"]
    with Store(shared, create=False) as store:
        assert len(store.list_records()) == 1 and len(store.courses()) == 1
    assert not user_default.exists()  # nothing went to the per-user default

    other = tmp_path / "other.sqlite3"  # --db still wins over the site's store
    assert cli(["records", "list", "--db", str(other)]) == 1
    assert not other.exists()


@pytest.mark.parametrize(
    ("addition", "key", "problem"),
    [
        ('[records]\nstore = "records.sqlite3"\n', "records.store", "absolute path"),
        ("[records]\nstore = 5\n", "records.store", "absolute path"),
        ('[records]\nstor = "/var/lib/ionctl/records.sqlite3"\n', "records.stor", "unknown key"),
    ],
)
def test_a_bad_records_table_is_refused_naming_the_key_and_line(addition: str, key: str, problem: str) -> None:
    text = packaged_text() + "\n" + addition
    with pytest.raises(ConfigError) as caught:
        parse_config(text, source="site.toml")
    assert caught.value.key == key and problem in caught.value.problem
    assert caught.value.line == len(packaged_text().splitlines()) + 3  # the key's own line


def test_records_written_as_a_key_is_refused() -> None:
    with pytest.raises(ConfigError) as caught:  # a top-level key must come before the first table
        parse_config('records = "/var/lib/ionctl/records.sqlite3"\n' + packaged_text(), source="site.toml")
    assert caught.value.key == "records" and "must be a table" in caught.value.problem and caught.value.line == 1


def test_a_bad_time_zone_is_refused_naming_the_key_the_value_and_the_line() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config('time_zone = "Europe/Berlln"\n' + packaged_text(), source="site.toml")
    assert caught.value.key == "time_zone" and caught.value.line == 1 and "Europe/Berlln" in caught.value.problem
    assert parse_config('time_zone = "Europe/Berlin"\n' + packaged_text()).bench.time_zone == "Europe/Berlin"


def test_records_commands_report_a_broken_site_records_table_without_a_traceback(
    capsys: pytest.CaptureFixture[str],
) -> None:
    _site_file('[records]\nstore = "relative.sqlite3"\n')
    assert cli(["records", "list"]) == 1
    err = capsys.readouterr().err
    assert "records.store" in err and "absolute path" in err and "Traceback" not in err


def test_records_verify_with_config_reads_that_files_store_and_administrators(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.people import make_clinic

    clinic = make_clinic(tmp_path / "clinic")
    site = tmp_path / "site-with-store.toml"
    site.write_text(clinic.config.read_text(encoding="utf-8") + f'\n[records]\nstore = "{clinic.store}"\n',
                    encoding="utf-8")  # fmt: skip
    assert cli(["records", "verify", "--config", str(site)]) == 0
    out = capsys.readouterr().out
    assert f"store: {clinic.store}" in out and f"administrators {site} names (1)" in out
    bare = tmp_path / "no-administrators.toml"  # the same store under a site file that trusts nobody
    bare.write_text(packaged_text() + f'\n[records]\nstore = "{clinic.store}"\n', encoding="utf-8")
    assert cli(["records", "verify", "--config", str(bare)]) == 1
    assert "not name the key" in capsys.readouterr().out
