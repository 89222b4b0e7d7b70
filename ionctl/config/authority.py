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


def set_value(log: AuditLog, path: Path, key: str, raw_value: str, pin: str | None, *, by: str = SUPERVISOR) -> Change:
    """Set `key` (dotted: `limits.max_current_ma`, `presets.lidocaine.current_ma`) in the file at `path` to
    `raw_value` (TOML syntax, or a bare string), keeping its comments. The file must be the approved one
    (so a hand edit cannot ride along), and the result must check; then it is written and recorded, and the
    new file is the approved one. Nothing changes if anything fails."""
    import tomlkit  # style-preserving TOML: keeps the supervisor's comments and sources

    authenticate(log, pin, attempt=f"set {key} in {path}", by=by)
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
    text = tomlkit.dumps(document)
    after = parse_config(text, source=str(path), path=path)  # ConfigError before anything is written
    _write_atomically(path, text)
    log.append_audit("config-set", by, {"path": str(path), "key": key, "old": _plain(old),
                                        "new": _plain(table[keys[-1]]), "previous_sha256": before.sha256,
                                        "sha256": after.sha256})  # fmt: skip
    return Change(key, _plain(old), _plain(table[keys[-1]]), after)


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
