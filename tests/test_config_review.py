"""`ionctl config set` shows the change as a diff of the file and asks before approving it (y/N at a terminal,
`--yes` otherwise); the audit trail is never an output for credentials."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from ionctl.config import approved_sha256
from ionctl.records import Store
from tests.people import PASSWORDS, SUPERVISOR, make_clinic
from tests.sim.endpoints import ROOT
from tests.test_config import ionctl

AS_SAM = ("--as", SUPERVISOR, "--password-stdin")


def approved_site(tmp_path: Path) -> tuple[str, Path]:
    """A clinic's site file (`ionctl config init`'s, naming its administrator), approved by its supervisor."""
    clinic = make_clinic(tmp_path)
    return str(clinic.store), clinic.config


def at_a_terminal(*args: str, typed: str) -> subprocess.CompletedProcess[str]:
    """`python -m ionctl ARGS` with a pseudo-terminal as stdin, on which `typed` has been typed."""
    main, side = os.openpty()
    try:
        os.write(main, typed.encode())
        return subprocess.run([sys.executable, "-m", "ionctl", *args], cwd=ROOT, stdin=side, capture_output=True,
                              text=True, timeout=60)  # fmt: skip
    finally:
        os.close(side)
        os.close(main)


def test_set_shows_a_unified_diff_and_n_at_the_terminal_changes_nothing(tmp_path: Path) -> None:
    db, path = approved_site(tmp_path)
    before = path.read_text(encoding="utf-8")
    with Store(db) as store:
        approved = approved_sha256(store)
    done = at_a_terminal("config", "set", "limits.max_dose_ma_min", "60", "--config", str(path), "--db", db,
                         *AS_SAM, typed="n\n")  # fmt: skip
    assert done.returncode == 2, done.stderr
    diff = done.stdout.splitlines()
    assert f"--- {path} (approved)" in diff and f"+++ {path} (proposed)" in diff
    assert "-max_dose_ma_min = 80.0" in diff and "+max_dose_ma_min = 60" in diff
    assert sum(line.startswith(("-", "+")) and not line.startswith(("---", "+++")) for line in diff) == 2
    assert "[y/N]" in done.stdout and "nothing changed" in done.stdout
    assert path.read_text(encoding="utf-8") == before
    with Store(db) as store:
        assert approved_sha256(store) == approved
        assert not store.audit(action="config-set")


def test_set_y_at_the_terminal_then_the_password_writes_and_approves(tmp_path: Path) -> None:
    db, path = approved_site(tmp_path)
    done = at_a_terminal("config", "set", "limits.max_dose_ma_min", "60", "--config", str(path), "--db", db,
                         *AS_SAM, typed=f"y\n{PASSWORDS[SUPERVISOR]}\n")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "max_dose_ma_min = 60" in path.read_text(encoding="utf-8")
    show = json.loads(ionctl("config", "show", "--config", str(path), "--db", db, "--json").stdout)
    assert show["state"] == "approved"


def test_set_without_a_terminal_needs_yes(tmp_path: Path) -> None:
    db, path = approved_site(tmp_path)
    before = path.read_text(encoding="utf-8")
    done = ionctl("config", "set", "limits.max_dose_ma_min", "60", "--config", str(path), "--db", db, *AS_SAM,
                  input_=PASSWORDS[SUPERVISOR] + "\n")  # fmt: skip
    assert done.returncode == 2 and "pass --yes" in done.stderr
    assert "+max_dose_ma_min = 60" in done.stdout  # shown all the same
    assert path.read_text(encoding="utf-8") == before


def test_no_audit_output_shows_a_credential(tmp_path: Path) -> None:
    db, path = approved_site(tmp_path)
    with Store(db) as store:  # a PIN-era store's PIN hash is hidden the same way
        store.append_audit("pin-set", "supervisor", {"pin": {"scheme": "scrypt", "salt": "5a17" * 8,
                                                             "hash": "ab12" * 16}})  # fmt: skip
        secrets = [str(v) for e in store.audit() for k, v in (e["detail"].get("credential") or {}).items()
                   if k in ("salt", "verifier", "nonce", "sealed")]  # fmt: skip
    secrets += ["5a17" * 8, "ab12" * 16]
    assert len(secrets) > 8
    outputs = [ionctl("config", "audit", "--db", db, *extra) for extra in ((), ("--json",))]
    outputs.append(ionctl("config", "show", "--config", str(path), "--db", db, "--json"))
    outputs.append(ionctl("users", "list", "--config", str(path), "--db", db))
    for done in outputs:
        assert done.returncode == 0, done.stderr
        assert "user-enrol" in done.stdout or "sha256" in done.stdout or "fingerprint" in done.stdout
        for secret in secrets:
            assert secret not in done.stdout and secret not in done.stderr
    lines = [json.loads(line) for line in outputs[1].stdout.splitlines()]
    assert [e["detail"]["pin"] for e in lines if e["action"] == "pin-set"] == ["(not shown)"]
    assert {e["detail"]["credential"] for e in lines if "credential" in e["detail"]} == {"(not shown)"}
