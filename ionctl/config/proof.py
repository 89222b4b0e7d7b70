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
    PERFORMED,
    REVIEWED,
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
    """What `check` found: the first problem (None: every signature proves its act; `problems` has them all when
    `check` was asked to keep going), the signatures it checked, the unsigned acts the first trusted enrolment
    attests as older than named accounts (a PIN-era store), the accounts whose enrolment leads to a named
    administrator, and the places (`gseq`) of the signed entries that verified."""

    problem: Problem | None
    signatures: int
    legacy: int
    trusted: frozenset[str] = frozenset()
    accepted: frozenset[int] = frozenset()
    problems: tuple[Problem, ...] = ()


def check(
    entries: Sequence[Mapping[str, Any]],
    administrators: frozenset[str],
    *,
    record_digest: Callable[[int], str | None],
    chain_hash: Callable[[int], str | None] | None,
    record_operator: Callable[[int], str | None] | None = None,
    keep_going: bool = False,
) -> Checked:
    """Verify every signed entry (oldest first, each with its `gseq`): the signature against the key its signer
    had at that point of the chain, that key against its enrolment, each enrolment against an administrator the
    site names, the signer's role, printed name and meaning against the act, each signature used once (a copied
    entry is a replay), and a record sign-off against the record's content now and its operator
    (`record_operator`: "performed" by them, "reviewed" by someone else). An act that needs a signature and has
    none is accepted only before the first trusted enrolment, which attests the chain up to it (the history of
    a store that predates accounts); `chain_hash(gseq)` gives a link's hash. An entry that fails changes no
    account; with `keep_going` the walk goes on past it (what `People.accounts` uses)."""
    walk = _Walk(administrators, record_digest, record_operator)
    unsigned: list[Mapping[str, Any]] = []
    attested: int | None = None
    for e in entries:
        action, d = str(e["action"]), e["detail"]
        act = act_of(action, d)
        if action in UNSIGNED_ACTIONS or (act is None and action not in PEOPLE_ACTIONS):
            continue
        raw = d.get("signature") if isinstance(d, Mapping) else None
        if raw is None:
            if action in PEOPLE_ACTIONS:
                walk.fail(e, "not signed: nobody proved this change of an account")
            else:
                unsigned.append(e)
        else:
            try:
                sig = Signature.from_dict(raw)
            except (KeyError, TypeError):
                walk.fail(e, "its signature is malformed")
            else:
                first_trusted = walk.accept(e, sig)
                claim = d.get("attests")
                if first_trusted and attested is None and isinstance(claim, Mapping) and claim.get("gseq") is not None:
                    at = int(claim["gseq"])
                    attested = at
                    if chain_hash is not None and (GENESIS if at == 0 else chain_hash(at)) != claim.get("hash"):
                        walk.fail(e, f"the chain up to link {at} is not the one this enrolment attested: older "
                                     "links were rewritten")  # fmt: skip
        if walk.problems and not keep_going:
            return walk.result(0)
    legacy = 0
    for e in unsigned:
        if attested is None or int(e["gseq"]) > attested:
            walk.fail(e, "not signed: an approval or override needs its actor's signature (it was written by "
                         "something other than ionctl, or before named accounts and never attested by the first "
                         "administrator's enrolment)")  # fmt: skip
            if not keep_going:
                break
        else:
            legacy += 1
    return walk.result(legacy)


class _Walk:
    """The accounts as the verified entries so far make them."""

    def __init__(self, administrators: frozenset[str], record_digest: Callable[[int], str | None],
                 record_operator: Callable[[int], str | None] | None) -> None:  # fmt: skip
        self.administrators, self.record_digest, self.record_operator = administrators, record_digest, record_operator
        self.keys: dict[str, list[bytes]] = {}  # the keys each account had, newest last
        self.roles: dict[str, Role] = {}
        self.full_names: dict[str, str] = {}
        self.trusted: dict[str, bool] = {}
        self.disabled: set[str] = set()
        self.seen: dict[str, int] = {}  # signature value -> the gseq of the entry that carried it first
        self.accepted: set[int] = set()
        self.problems: list[Problem] = []
        self.signatures = 0
        self.any_trusted_enrolment = False

    def fail(self, e: Mapping[str, Any], reason: str) -> None:
        self.accepted.discard(int(e["gseq"]))
        self.problems.append(Problem(e["gseq"], f"audit entry {e['seq']} ({e['action']} by {e['actor']})", reason))

    def result(self, legacy: int) -> Checked:
        trusted = frozenset(n for n, ok in self.trusted.items() if ok and n not in self.disabled)
        first = self.problems[0] if self.problems else None
        return Checked(first, self.signatures, legacy, trusted, frozenset(self.accepted), tuple(self.problems))

    def accept(self, e: Mapping[str, Any], sig: Signature) -> bool:
        """Check one signed entry; if it verifies, apply it. True for the first enrolment a named administrator
        signed (the one whose `attests` seals the history before accounts)."""
        problem = _check_one(e, sig, self)
        if problem is None and sig.value in self.seen:
            problem = f"its signature is a copy of link {self.seen[sig.value]}'s: a replayed entry"
        if problem is not None:
            self.fail(e, problem)
            return False
        self.seen[sig.value] = int(e["gseq"])
        self.signatures += 1
        self.accepted.add(int(e["gseq"]))
        action, d = str(e["action"]), e["detail"]
        name = str(d.get("name", ""))
        first = False
        if action in ("user-enrol", "user-reset"):
            self.keys.setdefault(name, []).append(bytes.fromhex(d["public_key"]))
            self.roles[name] = Role(d["role"])
            self.full_names[name] = str(d.get("full_name", ""))
            self.trusted[name] = True  # `_check_one` let only a named administrator's enrolments through
            first, self.any_trusted_enrolment = not self.any_trusted_enrolment, True
        elif action == "user-activate":
            self.keys[name].append(bytes.fromhex(d["public_key"]))
        elif action == "user-disable":
            self.disabled.add(name)
        return first


def _check_one(e: Mapping[str, Any], sig: Signature, walk: _Walk) -> str | None:
    action, d, actor = str(e["action"]), e["detail"], str(e["actor"])
    keys, roles, administrators = walk.keys, walk.roles, walk.administrators
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
        if action == "user-enrol" and name in keys:
            return f"{name!r} is enrolled already: a second enrolment of the name would replace its key"
    elif action in PEOPLE_ACTIONS and not self_enrolment and name != actor:
        return f"{actor!r} changed {name!r}'s account, which only its owner or an administrator may"
    if not self_enrolment and actor in walk.disabled:
        return f"{actor!r}'s account was disabled before this point of the chain"
    if action not in PEOPLE_ACTIONS:
        if not walk.trusted.get(actor, False):
            return f"{actor!r}'s enrolment does not lead to an administrator the site configuration names"
        act = act_of(action, d)
        role = roles.get(actor)
        if act is not None and role not in ALLOWED[act]:
            return f"{actor!r} is a {role}, who may not {act}"
    if sig.role != (roles.get(actor) or d.get("role")):
        return f"the signature says {sig.role!r}, but {actor!r} was enrolled as {roles.get(actor)}"
    enrolled_as = walk.full_names.get(actor) if not self_enrolment else str(d.get("full_name", ""))
    if sig.full_name != enrolled_as:
        return f"the signature prints the name {sig.full_name!r}, but {actor!r} was enrolled as {enrolled_as!r}"
    meaning = str(d.get("meaning") or action) if action == "record-sign" else None
    if meaning is not None and sig.meaning != meaning:
        return f"the signature means {sig.meaning!r}, but the entry says {meaning!r}"
    if action == "record-sign":
        return _sign_off_problem(e, actor, walk)
    return None


def _sign_off_problem(e: Mapping[str, Any], actor: str, walk: _Walk) -> str | None:
    d = e["detail"]
    record_id = int(e["record_id"]) if e.get("record_id") is not None else None
    digest = walk.record_digest(record_id) if record_id is not None else None
    if digest is None or digest != d.get("record_sha256"):
        return f"record {record_id}'s content is no longer what was signed"
    if d.get("meaning") not in (PERFORMED, REVIEWED):
        return f"a record sign-off means {PERFORMED!r} or {REVIEWED!r}, not {d.get('meaning')!r}"
    operator = walk.record_operator(record_id) if walk.record_operator is not None and record_id is not None else None
    if operator is not None and d["meaning"] == PERFORMED and actor != operator:
        return f"{actor!r} signed record {record_id} as performed, but {operator!r} performed it"
    if operator is not None and d["meaning"] == REVIEWED and actor == operator:
        return f"{actor!r} countersigned their own session (record {record_id}) as reviewed"
    return None
