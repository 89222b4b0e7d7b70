"""`ionctl records verify`: what a record store proves, checked in one place.

Three checks, each naming the first link that fails it (docs/SAFETY.md, "tampered records", "record forgery",
"truncation"):

1. The hash chain (`Store.verify`): every link's hash over the one before it, so an edited, inserted or removed
   link in the middle of the chain shows.
2. The people (`ionctl.config.proof.check`): every signed act's signature against the key its signer held at
   that point of the chain, every key against its enrolment, every enrolment against an administrator the site
   configuration names (`[accounts] administrators`), every signer's role against the act, and every record
   sign-off against the record's content now (21 CFR 11.10(e), 11.50, 11.70; docs/SOURCES.md, "Part 11"). An
   approval written into the file with the chain recomputed has no valid signature, so it fails here even
   though the chain verifies.
3. The anchor: a chain from which the newest links were cut is still a valid chain. So every signed checkpoint
   of the chain head kept outside the store (`ionctl.config.anchor`, the directory `[accounts] anchor` names)
   must be signed by a key enrolled in this store, and its (link, hash) must still be a link of the chain; once
   a record is closed there must be checkpoints, the newest not older than the newest record's close (an anchor
   file removed or cut along with the newest records); a line that does not parse fails, unless it is a torn
   last one. The checkpoints are found by the store's identity (its first link), not its path, so a copy of the
   store is held to them too. A hash printed on a chart page (`--anchor HASH`) must be one of the chain's links.

Besides, the closed records no one has signed as "performed" are listed (a record closed by crash recovery
waits for its operator's `ionctl records sign`): they are not a broken proof, but a reader should know.

`sign_record` is the sign-off itself (`ionctl records sign`): "performed" by the record's own operator,
"reviewed" (a countersignature) by a supervisor; the signature covers the record's content digest
(`Store.record_digest`), so `check` refuses it on any other record.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ionctl.config.anchor import AnchorError, Checkpoint, anchor_file, read_checkpoints
from ionctl.config.people import (
    PERFORMED,
    REVIEWED,
    Act,
    Identity,
    NotAllowed,
    People,
    PeopleError,
    Signature,
    fingerprint,
)
from ionctl.config.proof import Checked, check
from ionctl.config.site import SiteConfig

if TYPE_CHECKING:
    from ionctl.records.chain import BrokenLink
    from ionctl.records.store import Store

#: The audit action of a record sign-off (`ionctl.config.people.SIGNED_ACTIONS`).
SIGN_ACTION = "record-sign"
#: The audit actions that give an account a key (the keys a checkpoint may be signed with).
KEY_ACTIONS = ("user-enrol", "user-reset", "user-activate")


@dataclass(frozen=True)
class AnchorCheck:
    """What the anchor showed: the directory checked (None: the site names none), the checkpoints read and
    found still in the chain, whether a printed hash (`--anchor`) was checked, and the first problem."""

    directory: Path | None
    checkpoints: int = 0
    given: str | None = None
    problem: str | None = None


@dataclass(frozen=True)
class Verification:
    """The result of `verify_store`. `ok`: the chain, every signature and the anchor prove what they say."""

    store: Path
    links: int
    head: tuple[int, str]
    broken: BrokenLink | None
    people: Checked
    anchor: AnchorCheck
    unsigned: tuple[int, ...] = field(default=())  # closed records with no "performed" sign-off

    @property
    def problems(self) -> list[str]:
        """Each failed check's first problem, in the order checked: chain, people, anchor."""
        found = []
        if self.broken is not None:
            found.append(f"chain: {self.broken}")
        if self.people.problem is not None:
            found.append(f"signatures: {self.people.problem}")
        if self.anchor.problem is not None:
            found.append(f"anchor: {self.anchor.problem}")
        return found

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_store(store: Store, config: SiteConfig, *, anchor_hash: str | None = None) -> Verification:
    """Check `store` under the trust of `config` (its `[accounts]`): the chain, the people, the anchor (the
    checkpoints in `config.accounts.anchor`, and `anchor_hash` if given)."""
    entries = store.audit()
    hashes = store.link_hashes()
    people = check(
        entries,
        config.accounts.administrators,
        record_digest=store.record_digest,
        chain_hash=hashes.get,
    )
    anchor = check_anchor(store, hashes, entries, config.accounts.administrators,
                          directory=config.accounts.anchor, given=anchor_hash)  # fmt: skip
    return Verification(store.path, len(hashes), store.chain_head(), store.verify(), people, anchor,
                        unsigned_records(store, entries))  # fmt: skip


def unsigned_records(store: Store, entries: Sequence[Mapping[str, Any]]) -> tuple[int, ...]:
    """The closed records with no "performed" sign-off in the audit trail."""
    signed = {int(e["record_id"]) for e in entries if e["action"] == SIGN_ACTION and e.get("record_id") is not None
              and isinstance(e["detail"], Mapping) and e["detail"].get("meaning") == PERFORMED}  # fmt: skip
    return tuple(r["id"] for r in store.list_records() if r["outcome"] is not None and r["id"] not in signed)


def enrolled_keys(entries: Sequence[Mapping[str, Any]], administrators: frozenset[str]) -> dict[str, list[bytes]]:
    """Every key each account has held whose enrolment (and every change of key since) is signed and leads to
    an administrator the site names: the keys a checkpoint may be signed with. A later disabled account's
    checkpoints stay valid (they were signed while it was enabled), so disabling is left out here."""
    keyed = [e for e in entries if e["action"] in KEY_ACTIONS]
    proven = check(keyed, administrators, record_digest=lambda _: None, chain_hash=None)
    keys: dict[str, list[bytes]] = {}
    for e in keyed:
        name = str(e["detail"].get("name", ""))
        if name in proven.trusted:
            keys.setdefault(name, []).append(bytes.fromhex(str(e["detail"]["public_key"])))
    return keys


def check_anchor(store: Store, hashes: Mapping[int, str], entries: Sequence[Mapping[str, Any]],
                 administrators: frozenset[str], *, directory: Path | None,
                 given: str | None = None) -> AnchorCheck:  # fmt: skip
    """Every checkpoint of `store` in `directory` is signed by an enrolled key and is still a link of the chain
    (`hashes`: gseq -> hash), and the newest one is not older than the newest record's close; `given` (a hash
    printed on a chart page) is one of the chain's links. The checkpoints are found by the store's identity
    (`Store.first_link`), so a copy of the store at another path is held to the same ones."""
    problem: str | None = None
    count = 0
    last = max(hashes, default=0)
    if given is not None:
        wanted = given.strip().lower()
        if wanted not in set(hashes.values()):
            problem = (f"no link of the chain has the hash {wanted} (printed on a chart page): the links after "
                       "it were deleted, or the chain was rewritten")  # fmt: skip
    identity = store.first_link()
    if directory is not None and problem is None and identity is not None:
        path = anchor_file(directory, identity)
        if not directory.is_dir():
            problem = (f"the anchor directory {directory} ([accounts] anchor) is not there (is the share "
                       "mounted?): the newest links cannot be checked")  # fmt: skip
        else:
            keys = enrolled_keys(entries, administrators)
            try:
                checkpoints = read_checkpoints(directory, identity)
            except AnchorError as exc:
                checkpoints, problem = [], f"{path}: {exc}"
            for checkpoint in checkpoints:
                problem = _checkpoint_problem(checkpoint, identity, hashes, keys, last)
                if problem is not None:
                    problem = f"{path}: {problem}"
                    break
                count += 1
            if problem is None:
                problem = _coverage_problem(store, checkpoints, path)
    return AnchorCheck(directory, count, given, problem)


def _coverage_problem(store: Store, checkpoints: Sequence[Checkpoint], path: Path) -> str | None:
    """Why the checkpoints do not reach the newest record's close (None if they do, or no record is closed):
    the anchor missed checkpoints (a close while the share was away, a record closed by crash recovery), or it
    was cut (lines or the file removed, along with the newest records)."""
    closes = [gseq for r in store.list_records() if (gseq := r.get("close_gseq")) is not None]
    if not closes:
        return None
    closed = max(closes)
    after = ("the anchor missed checkpoints (a close while it could not be written), or it was cut along "
             "with the newest records; the next record closed with the anchor written covers the whole chain "
             "again")  # fmt: skip
    if not checkpoints:
        return f"{path}: no checkpoint of this store, though its records are closed up to link {closed}: {after}"
    newest = max(c.gseq for c in checkpoints)
    if newest < closed:
        return (f"{path}: the newest checkpoint is of link {newest}, older than the newest record's close (link "
                f"{closed}): {after}")  # fmt: skip
    return None


def _checkpoint_problem(checkpoint: Checkpoint, identity: str, hashes: Mapping[int, str],
                        keys: Mapping[str, list[bytes]], last: int) -> str | None:  # fmt: skip
    at = f"line {checkpoint.line}, the checkpoint of link {checkpoint.gseq}"
    sig = checkpoint.signature
    if checkpoint.store != identity:
        return f"{at} is of another store ({checkpoint.store}), not this one ({identity})"
    if sig is None:
        return f"{at} is not signed"
    by = f"{at} (signed by {sig.signer} at {sig.utc})"
    if sig.subject != checkpoint.subject:
        return f"{by}: its signature is not over this checkpoint"
    key = next((k for k in keys.get(sig.signer, []) if fingerprint(k) == sig.key), None)
    if key is None:
        return f"{by}: signed with the key {sig.key}, which no enrolment in this store gives {sig.signer!r}"
    if not _valid(key, sig.payload(), sig.value):
        return f"{by}: the signature does not verify with {sig.signer!r}'s key {sig.key}"
    stored = hashes.get(checkpoint.gseq)
    if stored is None:
        return (f"{by}: the chain ends at link {last}, so links {last + 1} to {checkpoint.gseq} (at least) are "
                "missing: the newest records were deleted")  # fmt: skip
    if stored != checkpoint.hash:
        return f"{by}: link {checkpoint.gseq}'s hash is {stored}, not {checkpoint.hash}: the chain was rewritten"
    return None


def _valid(public_key: bytes, message: bytes, value: str) -> bool:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(bytes.fromhex(value), message)
    except (InvalidSignature, ValueError):
        return False
    return True


# -- record sign-offs ----------------------------------------------------------------------------------------


class SignRefused(PeopleError):
    """A sign-off refused: the record is open, or this person already signed it with this meaning."""


def record_signatures(entries: Sequence[Mapping[str, Any]]) -> list[Signature]:
    """The sign-offs among a record's audit entries, oldest first (what `records show` and the chart list)."""
    found = []
    for e in entries:
        raw = e["detail"].get("signature") if isinstance(e["detail"], Mapping) else None
        if e["action"] == SIGN_ACTION and isinstance(raw, Mapping):
            try:
                found.append(Signature.from_dict(raw))
            except (KeyError, TypeError):
                continue  # shown by `records verify` as malformed; never on a chart as a signature
    return found


def signable(store: Store, record_id: int) -> str:
    """The record's content digest (what a sign-off signs); SignRefused for an open record, StoreError for none."""
    store.get(record_id)
    digest = store.record_digest(record_id)
    if digest is None:
        raise SignRefused(
            f"record {record_id} is still open: a session is signed once it has ended (a record a "
            "killed session left open is closed as interrupted by the next `ionctl records` command)"
        )
    return digest


def sign_record(people: People, identity: Identity, store: Store, record_id: int,
                meaning: str | None = None) -> Signature:  # fmt: skip
    """Sign record `record_id` as `identity`: "performed" by the record's own operator, "reviewed" (a
    countersignature) by a supervisor who is not its operator; `meaning` None: performed for the record's
    operator, else reviewed. NotAllowed for a role that may not, SignRefused for an open record or a second
    signature of the same meaning by the same person."""
    digest = signable(store, record_id)
    operator = str(store.get(record_id).fields.get("operator") or "")
    meaning = meaning or (PERFORMED if identity.name == operator else REVIEWED)
    if meaning not in (PERFORMED, REVIEWED):
        raise SignRefused(f"a record is signed as {PERFORMED!r} or {REVIEWED!r}, not {meaning!r}")
    identity.require(Act.COUNTERSIGN if meaning == REVIEWED else Act.SIGN_PERFORMED)
    if meaning == PERFORMED and identity.name != operator:
        raise NotAllowed(f"record {record_id}'s session was run by {operator!r}: only they sign it as performed "
                         f"({identity.name} may countersign it as reviewed if a supervisor)")  # fmt: skip
    if meaning == REVIEWED and identity.name == operator:
        raise NotAllowed(f"{identity.name} ran record {record_id}'s session: another supervisor reviews it")
    entries = store.audit(action=SIGN_ACTION, record_id=record_id)
    for signature in record_signatures(entries):
        if signature.signer == identity.name and signature.meaning == meaning:
            raise SignRefused(f"{identity.name} already signed record {record_id} as {meaning} "
                              f"({signature.utc})")  # fmt: skip
    people.signed(identity, SIGN_ACTION, {"meaning": meaning, "record_sha256": digest}, record_id=record_id,
                  meaning=meaning)  # fmt: skip
    return record_signatures(store.audit(action=SIGN_ACTION, record_id=record_id))[-1]
