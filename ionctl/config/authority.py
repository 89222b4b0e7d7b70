"""Who may change what: the supervisor PIN, approvals and changes of the site configuration.

A technician runs sessions within the limits and presets of an approved configuration; raising a limit or
approving a preset (or a whole hand-edited file) is a supervisor's act, authenticated by a PIN (21 CFR
11.10(d),(g): access limited to authorised people, authority checks). Every act, and every refused PIN, is
an entry in the records' audit trail (`Store.append_audit`), which is hash-chained with the session records
(21 CFR 11.10(e)). So the store is the single place that says which configuration is approved:

- the PIN: the newest `pin-set` entry holds its salted scrypt hash (RFC 7914; `hashlib.scrypt`), never the PIN;
- the approved configuration: the SHA-256 in the newest `config-approve` or `config-set` entry. A file whose
  hash differs (edited by hand, or another file) is refused by `require_approved` until a supervisor approves
  it. The packaged defaults need no approval in a store where nothing was ever approved (they are the
  conservative limits the package ships); once a site file was approved they need one too.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from ionctl.config.site import (
    ConfigError,
    SiteConfig,
    default_path,
    load_config,
    packaged_limits_text,
    packaged_text,
    parse_config,
)

#: scrypt cost (RFC 7914): n=2**14, r=8, p=1 is the interactive-login setting of the RFC's authors and of
#: `hashlib`'s documentation examples; about 16 MiB and tens of milliseconds per check.
SCRYPT_N, SCRYPT_R, SCRYPT_P, SCRYPT_LEN = 2**14, 8, 1, 32
SALT_BYTES = 16
#: The hash is in a file the bench PC's users can read: at ~50 ms per guess, 8 digits are 10^8 guesses (months
#: on one core) where 6 would be hours. Longer passphrases are better still.
MIN_PIN_LENGTH = 8
SUPERVISOR = "supervisor"

APPROVING_ACTIONS = ("config-approve", "config-set")


class AuditLog(Protocol):
    """What this module needs of the record store."""

    def append_audit(self, action: str, actor: str, detail: dict[str, Any], *, record_id: int | None = None,
                     course_id: int | None = None, utc: str | None = None) -> int: ...  # fmt: skip

    def audit(self, *, action: str | None = None, record_id: int | None = None,
              course_id: int | None = None) -> list[dict[str, Any]]: ...  # fmt: skip


class AuthorityError(Exception):
    """A supervisor act that was refused: no PIN set, a wrong PIN, a PIN too short."""


class ConfigNotApproved(Exception):
    """The configuration in force is not the one a supervisor approved last: no session may start."""


# -- the PIN ---------------------------------------------------------------------------------------------------


def hash_pin(pin: str, salt: bytes | None = None) -> dict[str, Any]:
    """A storable salted scrypt hash of `pin`."""
    salt = os.urandom(SALT_BYTES) if salt is None else salt
    digest = hashlib.scrypt(pin.encode("utf-8"), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, dklen=SCRYPT_LEN)
    return {"scheme": "scrypt", "n": SCRYPT_N, "r": SCRYPT_R, "p": SCRYPT_P, "salt": salt.hex(), "hash": digest.hex()}


def pin_matches(pin: str, stored: dict[str, Any]) -> bool:
    """Does `pin` match a `hash_pin` result (with the cost parameters it was made with)?"""
    if stored.get("scheme") != "scrypt":
        return False
    n, r, p, salt = int(stored["n"]), int(stored["r"]), int(stored["p"]), bytes.fromhex(stored["salt"])
    digest = hashlib.scrypt(pin.encode("utf-8"), salt=salt, n=n, r=r, p=p, dklen=len(bytes.fromhex(stored["hash"])))
    return hmac.compare_digest(digest.hex(), str(stored["hash"]))


def current_pin(log: AuditLog) -> dict[str, Any] | None:
    entries = log.audit(action="pin-set")
    return entries[-1]["detail"]["pin"] if entries else None


def set_pin(log: AuditLog, new_pin: str, *, old_pin: str | None, by: str = SUPERVISOR) -> None:
    """Set the supervisor PIN; once one is set, changing it needs the old one."""
    if current_pin(log) is not None:  # the old PIN first, so that a wrong one is recorded whatever the new one
        authenticate(log, old_pin, attempt="change the supervisor PIN", by=by)
    if len(new_pin) < MIN_PIN_LENGTH:
        raise AuthorityError(f"a supervisor PIN needs at least {MIN_PIN_LENGTH} characters")
    log.append_audit("pin-set", by, {"pin": hash_pin(new_pin)})


def authenticate(log: AuditLog, pin: str | None, *, attempt: str, by: str = SUPERVISOR) -> None:
    """Return if `pin` is the supervisor's; else record the refusal and raise AuthorityError."""
    stored = current_pin(log)
    if stored is None:
        raise AuthorityError("no supervisor PIN is set: a supervisor sets one first with `ionctl config pin`")
    if pin is None or not pin_matches(pin, stored):
        log.append_audit("auth-denied", by, {"attempt": attempt})
        raise AuthorityError(f"wrong supervisor PIN: not allowed to {attempt} (the refusal is in the audit trail)")


# -- approval --------------------------------------------------------------------------------------------------


def approved_sha256(log: AuditLog) -> str | None:
    """The SHA-256 of the configuration a supervisor approved last (approval or change), or None."""
    entries = [e for a in APPROVING_ACTIONS for e in log.audit(action=a)]
    if not entries:
        return None
    return str(max(entries, key=lambda e: e["seq"])["detail"]["sha256"])


def require_approved(config: SiteConfig, log: AuditLog) -> None:
    """Raise ConfigNotApproved unless `config` is the last approved one, or the packaged defaults in a store
    where nothing was ever approved. Once a supervisor approved a site file, the packaged defaults are refused
    too unless approved themselves: a missing site file (unmounted, renamed, another site directory in the
    environment) must not fall back, silently, to limits the supervisor did not choose."""
    approved = approved_sha256(log)
    if approved == config.sha256 or (config.packaged and approved is None):
        return
    if config.packaged and approved is not None:
        raise ConfigNotApproved(
            f"no site configuration file was found (--config FILE, or {default_path()}), but this record store "
            f"follows the approved site configuration {approved[:12]}… (see `ionctl config audit`): the packaged "
            "defaults are not what the supervisor approved. Restore the site file or give --config FILE; a "
            "supervisor may approve the packaged defaults with `ionctl config approve --packaged`"
        )
    last = f"the last approved one is {approved[:12]}…" if approved else "no configuration has been approved yet"
    raise ConfigNotApproved(
        f"site configuration {config.source} (SHA-256 {config.sha256[:12]}…) is not approved: {last}. It was "
        "edited by hand or is another file; a supervisor must review it and run `ionctl config approve`"
    )


def approve(log: AuditLog, config: SiteConfig, pin: str | None, *, by: str = SUPERVISOR, note: str = "") -> None:
    """Approve `config` as it is now (its presets and limits included)."""
    authenticate(log, pin, attempt=f"approve {config.source}", by=by)
    log.append_audit("config-approve", by, {"path": config.source, "sha256": config.sha256,
                                            "presets": sorted(config.presets), "note": note})  # fmt: skip


@dataclass(frozen=True)
class Change:
    key: str
    old: Any
    new: Any
    config: SiteConfig


@dataclass(frozen=True)
class PlannedChange:
    """A change worked out and checked, not yet written: `diff` is what it does to the file."""

    path: Path
    key: str
    old: Any
    new: Any
    before: SiteConfig
    after: SiteConfig

    @property
    def diff(self) -> str:
        """A unified diff of the file (difflib), the lines a supervisor reviews before approving."""
        import difflib

        lines = difflib.unified_diff(self.before.text.splitlines(keepends=True),
                                     self.after.text.splitlines(keepends=True),
                                     fromfile=f"{self.path} (approved)", tofile=f"{self.path} (proposed)")  # fmt: skip
        return "".join(line if line.endswith("\n") else line + "\n" for line in lines)


def plan_change(log: AuditLog, path: Path, key: str, raw_value: str) -> PlannedChange:
    """Work out setting `key` (dotted: `limits.max_current_ma`, `presets.lidocaine.current_ma`) in the file at
    `path` to `raw_value` (TOML syntax, or a bare string), keeping its comments, and check the result (limits
    within the ceilings, presets against the drug table): ConfigError if it does not check. The file must be
    the approved one (so a hand edit cannot ride along). Nothing is written and no PIN is needed."""
    import tomlkit  # style-preserving TOML: keeps the supervisor's comments and sources

    before = load_config(path)
    require_approved(before, log)
    keys = tuple(part for part in key.split(".") if part)
    if len(keys) < 2:
        raise ConfigError(str(path), key, "give a dotted key with its table, e.g. limits.max_current_ma")
    document = tomlkit.parse(before.text)
    table: Any = document
    for part in keys[:-1]:
        if not isinstance(table, dict) or part not in table:
            raise ConfigError(str(path), key, f"there is no table {part!r} to set it in")
        table = table[part]
    if not isinstance(table, dict):
        raise ConfigError(str(path), key, f"{'.'.join(keys[:-1])} is a value, not a table")
    old = table.get(keys[-1])
    table[keys[-1]] = _value(raw_value)
    after = parse_config(tomlkit.dumps(document), source=str(path), path=path)  # ConfigError: nothing written
    return PlannedChange(path, key, _plain(old), _plain(table[keys[-1]]), before, after)


def apply_change(log: AuditLog, planned: PlannedChange, pin: str | None, *, by: str = SUPERVISOR) -> Change:
    """Authenticate, write the planned change and record it: the new file is the approved one. Refused if the
    file changed since the change was planned."""
    authenticate(log, pin, attempt=f"set {planned.key} in {planned.path}", by=by)
    now = load_config(planned.path)
    if now.sha256 != planned.before.sha256:
        raise ConfigError(str(planned.path), planned.key, "the file changed while the change was being reviewed; "
                                                          "nothing written: run the command again")  # fmt: skip
    _write_atomically(planned.path, planned.after.text)
    log.append_audit("config-set", by, {"path": str(planned.path), "key": planned.key, "old": planned.old,
                                        "new": planned.new, "previous_sha256": planned.before.sha256,
                                        "sha256": planned.after.sha256})  # fmt: skip
    return Change(planned.key, planned.old, planned.new, planned.after)


def set_value(log: AuditLog, path: Path, key: str, raw_value: str, pin: str | None, *, by: str = SUPERVISOR) -> Change:
    """`plan_change` then `apply_change`, without review (the command shows the diff and asks in between).
    Nothing changes if anything fails; a wrong PIN is recorded."""
    authenticate(log, pin, attempt=f"set {key} in {path}", by=by)
    return apply_change(log, plan_change(log, path, key, raw_value), pin, by=by)


#: Audit-detail keys that hold credentials (the PIN's salted hash): never shown or exported.
CREDENTIAL_KEYS = ("pin",)


def public_detail(detail: dict[str, Any]) -> dict[str, Any]:
    """An audit entry's detail as it may be shown or exported: credentials removed (their presence noted)."""
    return {k: ("(not shown)" if k in CREDENTIAL_KEYS else v) for k, v in detail.items()}


def _value(raw: str) -> Any:
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw  # a bare word: a string


def _plain(value: Any) -> Any:
    unwrap = getattr(value, "unwrap", None)
    return unwrap() if callable(unwrap) else value


def _write_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def initial_text() -> str:
    """A complete site file to start from: the packaged catalogs and presets, and the packaged limits as its
    `[limits]` table (comments and sources kept)."""
    limits: Sequence[str] = packaged_limits_text().splitlines()
    moved = [f"[limits.{line.strip()[1:]}" if line.startswith("[class.") else line for line in limits]
    return (
        packaged_text().rstrip("\n")
        + "\n\n# -- limits (a complete table; see ionctl/data/limits.toml)\n\n[limits]\n"
        + "\n".join(moved)
        + "\n"
    )
