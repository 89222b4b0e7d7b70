"""Proof of authorship: every signed audit entry checked against the key its signer held at that point of the
chain, each key against its enrolment, each enrolment against an administrator the site configuration names,
each signer's role against the act, and each record sign-off against the record's content now.

`ionctl records verify` runs it over the whole audit trail (`ionctl.config.verification`); `People.login` runs
it over the key entries, so an account written into the store by anything but an administrator's signed
enrolment cannot log in.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ionctl.config.people import (
    ADMIN_ACTIONS,
    ALLOWED,
    PEOPLE_ACTIONS,
    UNSIGNED_ACTIONS,
    Role,
    Signature,
    act_of,
    fingerprint,
    subject_of,
    valid_signature,
)
from ionctl.records.chain import GENESIS


@dataclass(frozen=True)
class Problem:
    """A signed entry that does not prove what it says (or an act with no proof at all)."""

    gseq: int | None
    what: str
    reason: str

    def __str__(self) -> str:
        return (
            f"link {self.gseq}: {self.what}: {self.reason}" if self.gseq is not None else f"{self.what}: {self.reason}"
        )


@dataclass(frozen=True)
class Checked:
    """What `check` found: the first problem (None: every signature proves its act), the signatures it checked,
    and the unsigned acts a trusted enrolment attests as older than named accounts (a PIN-era store)."""

    problem: Problem | None
    signatures: int
    legacy: int
    trusted: frozenset[str] = frozenset()


def check(
    entries: Sequence[Mapping[str, Any]],
    administrators: frozenset[str],
    *,
    record_digest: Callable[[int], str | None],
    chain_hash: Callable[[int], str | None] | None,
) -> Checked:
    """Verify every signed entry (oldest first, each with its `gseq`): the signature against the key its signer
    had at that point of the chain, that key against its enrolment, each enrolment against an administrator the
    site names, the signer's role against the act, and a record sign-off against the record's content now.
    An act that needs a signature and has none is accepted only before a trusted enrolment that attests the chain
    up to it (the history of a store that predates accounts); `chain_hash(gseq)` gives a link's hash."""
    keys: dict[str, list[bytes]] = {}  # the keys each account had, newest last
    roles: dict[str, Role] = {}
    trusted: dict[str, bool] = {}
    disabled: set[str] = set()
    attested, legacy_seen, signatures = 0, 0, 0
    unsigned: list[Mapping[str, Any]] = []

    def what(e: Mapping[str, Any]) -> str:
        return f"audit entry {e['seq']} ({e['action']} by {e['actor']})"

    for e in entries:
        action, d = str(e["action"]), e["detail"]
        act = act_of(action, d)
        if action in UNSIGNED_ACTIONS or (act is None and action not in PEOPLE_ACTIONS):
            continue
        raw = d.get("signature") if isinstance(d, Mapping) else None
        if raw is None:
            if action in PEOPLE_ACTIONS:
                return Checked(Problem(e["gseq"], what(e), "not signed: nobody proved this change of an account"),
                               signatures, legacy_seen, _names(trusted, disabled))  # fmt: skip
            unsigned.append(e)
            continue
        try:
            sig = Signature.from_dict(raw)
        except (KeyError, TypeError):
            return Checked(
                Problem(e["gseq"], what(e), "its signature is malformed"),
                signatures,
                legacy_seen,
                _names(trusted, disabled),
            )
        problem = _check_one(e, sig, keys, roles, trusted, disabled, administrators, record_digest)
        if problem is not None:
            return Checked(Problem(e["gseq"], what(e), problem), signatures, legacy_seen, _names(trusted, disabled))
        signatures += 1
        name = str(d.get("name", ""))
        if action in ("user-enrol", "user-reset"):
            keys.setdefault(name, []).append(bytes.fromhex(d["public_key"]))
            roles[name] = Role(d["role"])
            trusted[name] = trusted.get(e["actor"], False) or (
                e["actor"] == name and roles[name] is Role.ADMINISTRATOR
                and fingerprint(keys[name][-1]) in administrators)  # fmt: skip
            claim = d.get("attests") or {}
            if (
                chain_hash is not None
                and trusted[name]
                and isinstance(claim, Mapping)
                and claim.get("gseq") is not None
            ):
                at = int(claim["gseq"])
                if (GENESIS if at == 0 else chain_hash(at)) != claim.get("hash"):
                    return Checked(Problem(e["gseq"], what(e), f"the chain up to link {claim['gseq']} is not the one "
                                           "this enrolment attested: older links were rewritten"),
                                   signatures, legacy_seen, _names(trusted, disabled))  # fmt: skip
                attested = max(attested, int(claim["gseq"]))
        elif action == "user-activate":
            keys[name].append(bytes.fromhex(d["public_key"]))
        elif action == "user-disable":
            disabled.add(name)
    for e in unsigned:
        if int(e["gseq"]) > attested:
            return Checked(Problem(e["gseq"], what(e), "not signed: an approval or override needs its actor's "
                                   "signature (it was written by something other than ionctl, or before "
                                   "named accounts and never attested by an administrator's enrolment)"),
                           signatures, legacy_seen, _names(trusted, disabled))  # fmt: skip
        legacy_seen += 1
    return Checked(None, signatures, legacy_seen, _names(trusted, disabled))


def _check_one(e: Mapping[str, Any], sig: Signature, keys: dict[str, list[bytes]], roles: dict[str, Role],
               trusted: dict[str, bool], disabled: set[str], administrators: frozenset[str],
               record_digest: Callable[[int], str | None]) -> str | None:  # fmt: skip
    action, d, actor = str(e["action"]), e["detail"], str(e["actor"])
    if sig.signer != actor:
        return f"signed by {sig.signer!r} but written as {actor!r}'s"
    if sig.subject != subject_of(action, actor, d, e.get("record_id"), e.get("course_id"), str(e["utc"])):
        return "the signature is not over this entry (its content was changed, or the signature was copied)"
    name = str(d.get("name", ""))
    self_enrolment = action == "user-enrol" and actor == name and name not in keys
    if self_enrolment:
        candidates = [bytes.fromhex(d["public_key"])]
        if d.get("role") != Role.ADMINISTRATOR or fingerprint(candidates[0]) not in administrators:
            return (
                f"{name!r} enrolled themselves, but the site configuration does not name the key "
                f"{fingerprint(candidates[0])} as an administrator's"
            )
    elif actor not in keys:
        return f"{actor!r} has no enrolment before this point of the chain"
    else:
        candidates = keys[actor][-1:]  # the key the account holds at this point (an activation: the initial one)
    if not any(fingerprint(k) == sig.key for k in candidates):
        return f"signed with the key {sig.key}, not the one {actor!r} held then"
    key = next(k for k in candidates if fingerprint(k) == sig.key)
    try:
        value = bytes.fromhex(sig.value)
    except ValueError:
        return "its signature is malformed"
    if not valid_signature(key, sig.payload(), value):
        return f"the signature does not verify with {actor!r}'s key {sig.key}"
    if action in ADMIN_ACTIONS and not self_enrolment:
        if roles.get(actor) is not Role.ADMINISTRATOR or fingerprint(keys[actor][-1]) not in administrators:
            return f"{actor!r} is not an administrator the site configuration names"
    elif action in PEOPLE_ACTIONS and not self_enrolment and name != actor:
        return f"{actor!r} changed {name!r}'s account, which only its owner or an administrator may"
    if not self_enrolment and actor in disabled:
        return f"{actor!r}'s account was disabled before this point of the chain"
    if action not in PEOPLE_ACTIONS:
        if not trusted.get(actor, False):
            return f"{actor!r}'s enrolment does not lead to an administrator the site configuration names"
        act = act_of(action, d)
        role = roles.get(actor)
        if act is not None and role not in ALLOWED[act]:
            return f"{actor!r} is a {role}, who may not {act}"
    if sig.role != (roles.get(actor) or d.get("role")):
        return f"the signature says {sig.role!r}, but {actor!r} was enrolled as {roles.get(actor)}"
    if action == "record-sign":
        digest = record_digest(int(e["record_id"])) if e.get("record_id") is not None else None
        if digest is None or digest != d.get("record_sha256"):
            return f"record {e.get('record_id')}'s content is no longer what was signed"
    return None


def _names(trusted: Mapping[str, bool], disabled: set[str]) -> frozenset[str]:
    return frozenset(name for name, ok in trusted.items() if ok and name not in disabled)
