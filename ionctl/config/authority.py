"""Who may change what: approvals and changes of the site configuration, by named and signed supervisors.

A technician runs sessions within the limits and presets of an approved configuration; raising a limit or
approving a preset (or a whole hand-edited file) is a supervisor's act (21 CFR 11.10(d),(g): access limited to
authorised people, authority checks). The supervisor logs in (`ionctl.config.people.People.login`) and the act
is an audit entry signed with their key (`People.signed`; a technician's attempt is refused there with
NotAllowed). The audit trail is hash-chained with the session records (21 CFR 11.10(e)), so the store is the
single place that says which configuration is approved: the SHA-256 in the newest `config-approve` or
`config-set` entry. A file whose hash differs (edited by hand, or another file) is refused by
`require_approved` until a supervisor approves it, and so is an approval that does not prove its author (not
signed by a supervisor whose enrolment leads to an administrator the site configuration names: written into
the store by something other than ionctl). The packaged defaults need no approval in a store where nothing was
ever approved (they are the conservative limits the package ships); once a site file was approved they need
one too.

A store from before named accounts holds `pin-set` entries and approvals by the actor "supervisor" without a
signature. That PIN authorises nothing any more: an administrator enrols the supervisor (`ionctl users add`),
and the administrator's enrolment attests the chain up to it, which is what makes the old unsigned approvals
acceptable history (`ionctl.config.proof.check`) while any unsigned approval after it is refused.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from ionctl.config.site import (
    ConfigError,
    SiteConfig,
    default_path,
    load_config,
    packaged_limits_text,
    packaged_text,
    parse_config,
)

if TYPE_CHECKING:
    from ionctl.config.people import Identity, People

APPROVING_ACTIONS = ("config-approve", "config-set")
#: The audit entries that make or change an account's key: what an approval's signer is checked against.
KEY_ACTIONS = ("user-enrol", "user-reset", "user-activate", "user-disable")
#: What a store from before named accounts holds: the supervisor PIN's salted hash.
PIN_ERA_ACTION = "pin-set"


class AuditLog(Protocol):
    """What this module needs of the record store."""

    def append_audit(self, action: str, actor: str, detail: dict[str, Any], *, record_id: int | None = None,
                     course_id: int | None = None, utc: str | None = None) -> int: ...  # fmt: skip

    def audit(self, *, action: str | None = None, record_id: int | None = None,
              course_id: int | None = None) -> list[dict[str, Any]]: ...  # fmt: skip


class ConfigNotApproved(Exception):
    """The configuration in force is not the one a supervisor approved last: no session may start."""


def pin_era(log: AuditLog) -> bool:
    """Does this store come from before named accounts (a supervisor PIN was set in it)?"""
    return bool(log.audit(action=PIN_ERA_ACTION))


def enrol_first_text(log: AuditLog) -> str:
    """What to do when nobody in this store may approve: enrol a supervisor (and, in a PIN-era store, why)."""
    pin = (
        "this record store predates named accounts: its supervisor PIN no longer authorises anything. "
        if pin_era(log)
        else ""
    )
    return (
        f"{pin}An administrator the site configuration names enrols the supervisor (`ionctl users add NAME "
        "--full-name '...' --role supervisor --as ADMIN`), who sets a password of their own at first use"
    )


# -- approval --------------------------------------------------------------------------------------------------


def _latest_approval(log: AuditLog) -> dict[str, Any] | None:
    entries = [e for a in APPROVING_ACTIONS for e in log.audit(action=a)]
    return max(entries, key=lambda e: e["seq"]) if entries else None


def approved_sha256(log: AuditLog) -> str | None:
    """The SHA-256 of the configuration a supervisor approved last (approval or change), or None. Whether that
    approval proves its author is `require_approved`'s question."""
    latest = _latest_approval(log)
    return None if latest is None else str(latest["detail"]["sha256"])


def approval_problem(config: SiteConfig, log: AuditLog, entry: dict[str, Any]) -> str | None:
    """Why the approving audit `entry` does not prove that a supervisor approved it (None: it does). It must be
    signed by a supervisor whose enrolment leads to an administrator `config` names (`[accounts]`), or, unsigned,
    be history from before named accounts that an administrator's enrolment attested (`proof.check`). The
    packaged defaults name no administrator: their approval is checked against those of the site file the
    supervisor was trusted under, recorded in it (an attacker gains nothing there that a new, empty store would
    not give: the packaged defaults need no approval in one)."""
    from ionctl.config.proof import check

    if config.packaged:
        administrators = frozenset(str(a) for a in entry["detail"].get("administrators", ()))
    else:
        administrators = config.accounts.administrators
    earlier = [e for e in log.audit() if e["gseq"] < entry["gseq"]]
    value = (entry["detail"].get("signature") or {}).get("value")
    copied = next((e for e in earlier if value and (e["detail"].get("signature") or {}).get("value") == value), None)
    if copied is not None:  # Ed25519 signs the same bytes the same way: a copy is a replay of that entry
        return f"its signature is a copy of link {copied['gseq']}'s: a replayed entry"
    keyed = [e for e in earlier if e["action"] in KEY_ACTIONS]
    chain_hash: Callable[[int], str | None] | None = None
    link_hashes = getattr(log, "link_hashes", None)
    if "signature" not in entry["detail"] and callable(link_hashes):
        hashes: dict[int, str] = link_hashes()  # only an unsigned (PIN-era) approval needs the chain's hashes
        chain_hash = hashes.get
    checked = check([*keyed, entry], administrators, record_digest=lambda _: None, chain_hash=chain_hash)
    return None if checked.problem is None else str(checked.problem)


def require_approved(config: SiteConfig, log: AuditLog) -> None:
    """Raise ConfigNotApproved unless `config` is the last approved one, and that approval proves a supervisor
    made it (`approval_problem`), or the packaged defaults in a store where nothing was ever approved. Once a
    supervisor approved a site file, the packaged defaults are refused too unless approved themselves: a missing
    site file (unmounted, renamed, another site directory in the environment) must not fall back, silently, to
    limits the supervisor did not choose."""
    latest = _latest_approval(log)
    approved = None if latest is None else str(latest["detail"]["sha256"])
    if latest is not None and approved == config.sha256:
        problem = approval_problem(config, log, latest)
        if problem is None:
            return
        raise ConfigNotApproved(
            f"site configuration {config.source} (SHA-256 {config.sha256[:12]}…) is not approved: its approval "
            f"does not prove who made it ({problem}); see `ionctl records verify`. {enrol_first_text(log)}, and "
            "approves it with `ionctl config approve --as NAME`"
        )
    if config.packaged and approved is None:
        return
    if config.packaged and approved is not None:
        raise ConfigNotApproved(
            f"no site configuration file was found (--config FILE, or {default_path()}), but this record store "
            f"follows the approved site configuration {approved[:12]}… (see `ionctl config audit`): the packaged "
            "defaults are not what the supervisor approved. Restore the site file or give --config FILE; a "
            "supervisor may approve the packaged defaults with `ionctl config approve --packaged --config FILE "
            "--as NAME` (FILE: the site file that names the administrators)"
        )
    last = f"the last approved one is {approved[:12]}…" if approved else "no configuration has been approved yet"
    raise ConfigNotApproved(
        f"site configuration {config.source} (SHA-256 {config.sha256[:12]}…) is not approved: {last}. It was "
        "edited by hand or is another file; a supervisor must review it and run `ionctl config approve --as NAME`"
    )


def approve(people: People, supervisor: Identity, config: SiteConfig, *, note: str = "") -> None:
    """Approve `config` as it is now (its presets and limits included), signed by `supervisor` (NotAllowed for
    any other role). The packaged defaults' approval records the administrators `people` trusts, since the
    packaged defaults name none (`approval_problem`)."""
    detail: dict[str, Any] = {"path": config.source, "sha256": config.sha256, "presets": sorted(config.presets),
                              "note": note}  # fmt: skip
    if config.packaged:
        detail["administrators"] = sorted(people.trust.administrators)
    people.signed(supervisor, "config-approve", detail)


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
    the approved one (so a hand edit cannot ride along). Nothing is written and nobody needs to log in."""
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


def apply_change(people: People, supervisor: Identity, planned: PlannedChange) -> Change:
    """Write the planned change and record it, signed by `supervisor`: the new file is the approved one.
    Refused (NotAllowed) before anything is written if `supervisor` may not approve configurations, and
    refused if the file changed since the change was planned."""
    from ionctl.config.people import Act

    supervisor.require(Act.APPROVE_CONFIG)
    now = load_config(planned.path)
    if now.sha256 != planned.before.sha256:
        raise ConfigError(str(planned.path), planned.key, "the file changed while the change was being reviewed; "
                                                          "nothing written: run the command again")  # fmt: skip
    _write_atomically(planned.path, planned.after.text)
    people.signed(supervisor, "config-set", {"path": str(planned.path), "key": planned.key, "old": planned.old,
                                             "new": planned.new, "previous_sha256": planned.before.sha256,
                                             "sha256": planned.after.sha256})  # fmt: skip
    return Change(planned.key, planned.old, planned.new, planned.after)


def set_value(people: People, supervisor: Identity, path: Path, key: str, raw_value: str) -> Change:
    """`plan_change` then `apply_change`, without review (the command shows the diff and asks in between).
    Nothing changes if anything fails (a technician: NotAllowed before the file is read)."""
    from ionctl.config.people import Act

    supervisor.require(Act.APPROVE_CONFIG)
    return apply_change(people, supervisor, plan_change(people.log, path, key, raw_value))


#: Audit-detail keys that hold credentials (a sealed private key and its verifier; a PIN-era store's PIN hash):
#: never shown or exported.
CREDENTIAL_KEYS = ("credential", "pin")


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
