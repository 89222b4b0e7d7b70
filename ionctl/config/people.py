"""People: named accounts with roles, passwords, Ed25519 signatures, lockout, and the checks that prove authorship.

Everything here is kept in the record store's hash-chained audit trail (`AuditLog`), so the list of accounts is
the fold of its entries and nothing about a person can change without a link of the chain saying who did it:

- `user-enrol` / `user-reset`: an administrator enrols an account (or gives it a new initial password), signing
  its name, role and public key. An administrator's own enrolment is signed by itself; it is trusted only while
  the approved site configuration (`[accounts] administrators`) names its key's fingerprint, which IT keeps
  where technicians cannot write. So a store of one's own (`--db` elsewhere) can enrol nobody the site trusts.
- `user-activate`: at first use the person sets a password of their own, and a new key pair replaces the one the
  administrator made (the old key signs the new one): the administrator who knew the initial password cannot
  sign as them after that.
- `user-passwd`, `user-disable`, `user-unlock`, `login`: signed by their actor; `login-denied` and `user-locked`
  are written without a signature (nobody proved who they were), which is the point of them.

A password is never stored: one scrypt derivation (RFC 7914) gives a verifier (stored) and the key that seals
the account's private key (AES-256-GCM, `cryptography`). Each signed act carries a `Signature`: the signer's
printed name, role, the UTC time, the meaning, and the SHA-256 of exactly what it signs (21 CFR 11.50, 11.70;
docs/SOURCES.md, "Part 11"). `ionctl.config.proof.check` verifies every signature, key and enrolment against
the administrators the site configuration names.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import unicodedata
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, NoReturn, Protocol

from ionctl.config.site import SiteConfig
from ionctl.records.chain import canonical


class Role(StrEnum):
    TECHNICIAN = "technician"
    SUPERVISOR = "supervisor"
    ADMINISTRATOR = "administrator"
    AUDITOR = "auditor"


class Act(StrEnum):
    """What a person may be allowed to do; `ALLOWED` says who may (21 CFR 11.10(g), authority checks)."""

    RUN_SESSION = "run sessions"
    RECORD_ADDENDUM = "record skin checks and addenda"
    SIGN_PERFORMED = "sign a session as performed"
    APPROVE_CONFIG = "approve or change the site configuration"
    OVERRIDE_COURSE = "override a course rule"
    COUNTERSIGN = "countersign a record as reviewed"
    MANAGE_USERS = "manage user accounts"
    READ_RECORDS = "read records and the audit trail"


T, S, A, U = Role.TECHNICIAN, Role.SUPERVISOR, Role.ADMINISTRATOR, Role.AUDITOR
ALLOWED: Mapping[Act, frozenset[Role]] = {
    Act.RUN_SESSION: frozenset({T, S}),
    Act.RECORD_ADDENDUM: frozenset({T, S}),
    Act.SIGN_PERFORMED: frozenset({T, S}),
    Act.APPROVE_CONFIG: frozenset({S}),
    Act.OVERRIDE_COURSE: frozenset({S}),
    Act.COUNTERSIGN: frozenset({S}),
    Act.MANAGE_USERS: frozenset({A}),
    Act.READ_RECORDS: frozenset({T, S, A, U}),
}

#: The audit actions and the act each proves: such an entry must be signed by someone whose role allows it
#: (`check`). A signature's meaning (21 CFR 11.50(a)(3)) is the act's.
SIGNED_ACTIONS: Mapping[str, Act] = {
    "config-approve": Act.APPROVE_CONFIG,
    "config-set": Act.APPROVE_CONFIG,
    "course-override": Act.OVERRIDE_COURSE,
    "course-start-override": Act.OVERRIDE_COURSE,
    "record-sign": Act.SIGN_PERFORMED,  # "reviewed" needs Act.COUNTERSIGN (`check` looks at the meaning)
}
ADMIN_ACTIONS = ("user-enrol", "user-reset", "user-disable", "user-unlock")
PEOPLE_ACTIONS = ("user-enrol", "user-reset", "user-activate", "user-passwd", "user-disable", "user-unlock", "login")
UNSIGNED_ACTIONS = ("login-attempt", "login-denied", "user-locked")
#: What a record sign-off means (21 CFR 11.50(a)(3)).
PERFORMED, REVIEWED = "performed", "reviewed"


#: scrypt cost: N=2**17, r=8, p=1 (128 MiB, about 0.4 s on a bench PC) is the OWASP Password Storage Cheat
#: Sheet's minimum for scrypt (docs/SOURCES.md, "Passwords"): an offline guess costs 0.4 core-seconds and 128
#: MiB, so even a common 8-character password list takes days per account, not minutes.
@dataclass(frozen=True)
class Cost:
    n: int = 2**17
    r: int = 8
    p: int = 1


PRODUCTION_COST = Cost()
MIN_PASSWORD_LENGTH = 8
MIN_DISTINCT = 4  # "aaaaaabc", "abababab": refused
#: Lockout defaults (the site's `[accounts]` may change them): 5 wrong passwords lock for 15 minutes.
LOCKOUT_ATTEMPTS, LOCKOUT_MINUTES = 5, 15.0
#: A few of the passwords every list of leaked passwords starts with (and their like): refused outright.
COMMON_PASSWORDS = frozenset(
    """
password password1 password12 password123 passw0rd p@ssw0rd p@ssword qwertyui qwerty123 qwertyuiop asdfghjk
iloveyou sunshine princess football baseball welcome welcome1 letmein1 trustno1 starwars dragon12 monkey12
superman michael1 jennifer abcdefgh abcd1234 abc12345 1q2w3e4r 1qaz2wsx zaq12wsx aa123456 changeme secret12
administrator supervisor technician ionctl12 iontophoresis hospital clinic12 patient1 nurse123 doctor12
qwerty asdfgh zxcvbn qwertz azerty
""".split()
)
#: Passwords whose letters alone are one of these (`qwerty12`, `Password!1`) are common too.
COMMON_WORDS = frozenset({"password", "passw", "qwerty", "qwertyuiop", "asdfgh", "asdfghjk", "abcdef", "abcdefgh",
                          "abc", "abcd", "letmein", "welcome", "changeme", "iloveyou", "admin", "secret", "q", "qw",
                          "qwe", "qwer", "zaq", "qaz", "qazwsx", "a", "aa", "aaa"})  # fmt: skip


class PeopleError(Exception):
    """A refused act about people: the message says why and what to do."""


class WeakPassword(PeopleError):
    pass


class LoginRefused(PeopleError):
    """Unknown name, wrong password, locked or disabled account. `until`: the end of a lockout."""

    def __init__(self, message: str, *, until: datetime | None = None) -> None:
        super().__init__(message)
        self.until = until


class PasswordChangeRequired(LoginRefused):
    """The password was right, but it is an initial one: the person sets their own (`People.activate`)."""


class NotAllowed(PeopleError):
    """The authenticated person's role does not allow the act."""


class AuditLog(Protocol):
    """What this module needs of the record store."""

    def append_audit(self, action: str, actor: str, detail: dict[str, Any], *, record_id: int | None = None,
                     course_id: int | None = None, utc: str | None = None,
                     guard: Callable[[], None] | None = None) -> int: ...  # fmt: skip

    def audit(self, *, action: str | None = None, record_id: int | None = None,
              course_id: int | None = None) -> list[dict[str, Any]]: ...  # fmt: skip

    def chain_head(self) -> tuple[int, str]: ...


# -- passwords and keys ----------------------------------------------------------------------------------------


def check_password(password: str, name: str = "", full_name: str = "") -> None:
    """WeakPassword unless `password` is long enough, not blank, not all digits, not common, not the name
    (21 CFR 11.300; docs/SOURCES.md, "Passwords")."""
    password = unicodedata.normalize("NFKC", password)
    if len(password) < MIN_PASSWORD_LENGTH:
        raise WeakPassword(f"a password needs at least {MIN_PASSWORD_LENGTH} characters")
    if not password.strip() or len(set(password)) < MIN_DISTINCT:
        raise WeakPassword(f"a password of blanks or repeated characters (under {MIN_DISTINCT} different) is refused")
    if not any(c.isalpha() for c in password):
        raise WeakPassword("an all-digit password, or digits and separators (a date), is refused: add letters")
    folded = password.casefold()
    letters = "".join(c for c in folded if c.isalpha())
    if folded in COMMON_PASSWORDS or folded.strip("0123456789!.?-_ ") in COMMON_PASSWORDS or letters in COMMON_WORDS:
        raise WeakPassword("that password is on every list of common passwords: choose another")
    for part in (name, *full_name.replace("-", " ").split()):
        if len(part) >= 3 and part.casefold() in folded:
            raise WeakPassword("a password may not contain the account's name or the person's name")


def fingerprint(public_key: bytes) -> str:
    """`SHA256:` and the unpadded base64 of the SHA-256 of the raw Ed25519 public key (as OpenSSH prints)."""
    return "SHA256:" + base64.b64encode(hashlib.sha256(public_key).digest()).decode().rstrip("=")


def _derive(password: str, salt: bytes, cost: Cost) -> tuple[bytes, bytes]:
    """(verifier, sealing key): two independent halves of one scrypt output."""
    secret = unicodedata.normalize("NFKC", password).encode("utf-8")
    out = hashlib.scrypt(secret, salt=salt, n=cost.n, r=cost.r, p=cost.p, dklen=64,
                         maxmem=256 * cost.n * cost.r + 2**20)  # fmt: skip
    return out[:32], out[32:]


def seal(private: bytes, password: str, public_key: bytes, cost: Cost) -> dict[str, Any]:
    """A credential: the password's verifier and the private key sealed by it (never the password)."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    salt, nonce = os.urandom(16), os.urandom(12)
    verifier, key = _derive(password, salt, cost)
    sealed = AESGCM(key).encrypt(nonce, private, public_key)
    return {"scheme": "scrypt+aes-256-gcm", "n": cost.n, "r": cost.r, "p": cost.p, "salt": salt.hex(),
            "verifier": verifier.hex(), "nonce": nonce.hex(), "sealed": sealed.hex()}  # fmt: skip


def unseal(credential: Mapping[str, Any], password: str, public_key: bytes) -> bytes | None:
    """The private key if `password` is the credential's, else None."""
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    if credential.get("scheme") != "scrypt+aes-256-gcm":
        return None
    cost = Cost(int(credential["n"]), int(credential["r"]), int(credential["p"]))
    verifier, key = _derive(password, bytes.fromhex(credential["salt"]), cost)
    if not hmac.compare_digest(verifier.hex(), str(credential["verifier"])):
        return None
    try:
        private = AESGCM(key).decrypt(bytes.fromhex(credential["nonce"]), bytes.fromhex(credential["sealed"]),
                                      public_key)  # fmt: skip
    except InvalidTag:
        return None
    return private if public_of(private) == public_key else None  # a key sealed under another's public key


def public_of(private: bytes) -> bytes | None:
    """The raw Ed25519 public key of a raw private key (None for bytes that are not one)."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    try:
        return Ed25519PrivateKey.from_private_bytes(private).public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    except ValueError:
        return None


def new_key() -> tuple[bytes, bytes]:
    """(private, public) raw bytes of a new Ed25519 key pair."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat

    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    return private, key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def _sign_bytes(private: bytes, message: bytes) -> bytes:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    return Ed25519PrivateKey.from_private_bytes(private).sign(message)


def valid_signature(public_key: bytes, message: bytes, signature: bytes) -> bool:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, message)
    except (InvalidSignature, ValueError):
        return False
    return True


# -- signatures ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Signature:
    """An electronic signature (21 CFR 11.50): who (login name, printed name, role), when (UTC), what it means,
    and the SHA-256 of what it signs (11.70: it cannot be moved to other content), by the key `key`."""

    signer: str
    full_name: str
    role: str
    utc: str
    meaning: str
    subject: str
    key: str
    value: str = ""

    def payload(self) -> bytes:
        fields = {k: v for k, v in self.to_dict().items() if k != "value"}
        return canonical(fields).encode()

    def to_dict(self) -> dict[str, str]:
        return {"signer": self.signer, "full_name": self.full_name, "role": self.role, "utc": self.utc,
                "meaning": self.meaning, "subject": self.subject, "key": self.key, "value": self.value}  # fmt: skip

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Signature:
        return cls(**{k: str(data[k]) for k in ("signer", "full_name", "role", "utc", "meaning", "subject", "key",
                                                 "value")})  # fmt: skip

    def manifestation(self) -> str:
        """What a reader sees: name, date and time (in the clinic's time zone), meaning (21 CFR 11.50(a))."""
        from ionctl.records.timefmt import local_text

        return f"{self.full_name} ({self.signer}, {self.role}), {local_text(self.utc)}: {self.meaning}"


def subject_of(action: str, actor: str, detail: Mapping[str, Any], record_id: int | None,
               course_id: int | None, utc: str) -> str:  # fmt: skip
    """The SHA-256 a signed audit entry's signature covers: everything the entry says but the signature."""
    content = {"action": action, "actor": actor, "detail": {k: v for k, v in detail.items() if k != "signature"},
               "record_id": record_id, "course_id": course_id, "utc": utc}  # fmt: skip
    return hashlib.sha256(canonical(content).encode()).hexdigest()


# -- accounts ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Account:
    """An account as the audit trail makes it, at some point of the chain."""

    name: str
    full_name: str
    role: Role
    public_key: bytes
    credential: Mapping[str, Any] = field(repr=False)
    must_change: bool = False
    disabled: bool = False
    failures: int = 0
    locked_until: datetime | None = None
    enrolled_by: str = ""

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.public_key)


def _utc(text: str) -> datetime:
    when = datetime.fromisoformat(text)
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def _stamp(when: datetime) -> str:
    return when.astimezone(UTC).isoformat(timespec="milliseconds")


def fold(entries: Iterable[Mapping[str, Any]], *, attempts: int = LOCKOUT_ATTEMPTS,
         minutes: float = LOCKOUT_MINUTES) -> dict[str, Account]:  # fmt: skip
    """The accounts the audit entries (oldest first) make. Signatures are not checked here (`check` does)."""
    accounts: dict[str, Account] = {}
    for e in entries:
        action, d = e["action"], e["detail"]
        name = d.get("name") if isinstance(d, Mapping) else None
        if action in ("user-enrol", "user-reset") and name:
            accounts[name] = Account(name, str(d["full_name"]), Role(d["role"]), bytes.fromhex(d["public_key"]),
                                     d["credential"], must_change=bool(d.get("must_change")),
                                     enrolled_by=str(e["actor"]))  # fmt: skip
        elif name not in accounts:
            continue
        elif action == "user-activate":
            accounts[name] = replace(accounts[name], public_key=bytes.fromhex(d["public_key"]),
                                     credential=d["credential"], must_change=False, failures=0,
                                     locked_until=None)  # fmt: skip
        elif action == "user-passwd":
            accounts[name] = replace(accounts[name], credential=d["credential"], failures=0, locked_until=None)
        elif action == "user-disable":
            accounts[name] = replace(accounts[name], disabled=True)
        elif action in ("user-unlock", "login"):
            accounts[name] = replace(accounts[name], failures=0, locked_until=None)
        elif action == "login-attempt":  # counted before the password is checked; a `login` after it clears it
            a, at = accounts[name], _utc(e["utc"])
            if a.locked_until is not None and at >= a.locked_until:
                a = replace(a, failures=0, locked_until=None)
            failures = a.failures + 1
            until = at + timedelta(minutes=minutes) if failures >= attempts else a.locked_until
            accounts[name] = replace(a, failures=failures, locked_until=until)
    return accounts


@dataclass(frozen=True)
class Trust:
    """What the approved site configuration says about people (`[accounts]`)."""

    administrators: frozenset[str] = frozenset()
    lockout_attempts: int = LOCKOUT_ATTEMPTS
    lockout_minutes: float = LOCKOUT_MINUTES

    @classmethod
    def of(cls, config: SiteConfig) -> Trust:
        """The trust the site configuration in force gives (its `[accounts]` table)."""
        a = config.accounts
        return cls(a.administrators, a.lockout_attempts, a.lockout_minutes)


class Identity:
    """A person who proved who they are: their account and, while they are at the bench, their private key."""

    def __init__(self, account: Account, private: bytes) -> None:
        self.account, self._private = account, private

    @property
    def name(self) -> str:
        return self.account.name

    @property
    def role(self) -> Role:
        return self.account.role

    def may(self, act: Act) -> bool:
        return self.account.role in ALLOWED[act]

    def require(self, act: Act) -> None:
        if not self.may(act):
            roles = " or ".join(sorted(ALLOWED[act]))
            raise NotAllowed(f"{self.name} is a {self.role}: only a {roles} may {act}")

    def sign(self, meaning: str, subject: str, utc: str) -> Signature:
        unsigned = Signature(self.name, self.account.full_name, self.role.value, utc, meaning, subject,
                             self.account.fingerprint)  # fmt: skip
        return replace(unsigned, value=_sign_bytes(self._private, unsigned.payload()).hex())

    def __repr__(self) -> str:  # never the key
        return f"Identity({self.name!r}, {self.role.value})"


class People:
    """The accounts of one record store, under the trust of one site configuration. `clock` gives the UTC time
    (tests move it); `cost` is the scrypt cost of credentials made here (each keeps its own)."""

    def __init__(self, log: AuditLog, trust: Trust = Trust(), *, clock: Callable[[], datetime] | None = None,
                 cost: Cost = PRODUCTION_COST) -> None:  # fmt: skip
        self.log, self.trust, self.cost = log, trust, cost
        self.clock = clock or (lambda: datetime.now(UTC))

    def accounts(self) -> dict[str, Account]:
        """The accounts as the entries that verify make them: an enrolment signed by an administrator the site
        names (or such an administrator's own), and every change of an account since signed by whoever may make
        it, each signature used once. An entry written into the store without the signer's key (a forged
        password change, a replayed login) changes nothing here, and `ionctl records verify` names it."""
        from ionctl.config.proof import check

        entries = self.log.audit()
        keyed = [e for e in entries if e["action"] in PEOPLE_ACTIONS]
        accepted = check(keyed, self.trust.administrators, record_digest=lambda _: None, chain_hash=None,
                         keep_going=True).accepted  # fmt: skip
        kept = [e for e in entries if e["action"] not in PEOPLE_ACTIONS or e["gseq"] in accepted]
        return fold(kept, attempts=self.trust.lockout_attempts, minutes=self.trust.lockout_minutes)

    def all_accounts(self) -> dict[str, Account]:
        """Every account the store's entries name, verified or not (what `ionctl users list` shows, marking the
        ones `accounts` does not hold as not trusted)."""
        return fold(self.log.audit(), attempts=self.trust.lockout_attempts, minutes=self.trust.lockout_minutes)

    def account(self, name: str) -> Account:
        found = self.accounts().get(name)
        if found is None:
            raise PeopleError(f"no account {name!r} in this record store (`ionctl users list`)")
        return found

    def trusted_administrator(self, account: Account) -> bool:
        return account.role is Role.ADMINISTRATOR and account.fingerprint in self.trust.administrators

    # -- logging in --------------------------------------------------------------------------------------------

    def login(self, name: str, password: str) -> Identity:
        """The person `name` if `password` is theirs; else LoginRefused, the refusal in the audit trail (and a
        lockout, at the site's number of wrong passwords). An initial password gives PasswordChangeRequired. The
        name is matched whatever its case (Caps Lock); the password exactly."""
        now = self.clock()
        name = self.named(name)
        account = self.accounts().get(name)
        if account is None:
            self._denied(name, "unknown account", now)
            unproven = self.all_accounts().get(name)
            if unproven is not None and unproven.role is Role.ADMINISTRATOR:
                raise LoginRefused(f"{name!r}'s key {unproven.fingerprint} is not one the site configuration "
                                   "names in [accounts] administrators: IT adds it there first")  # fmt: skip
            if unproven is not None:
                raise LoginRefused(f"{name!r} was not enrolled by an administrator the site configuration names, "
                                   "or its account was changed without its key (`ionctl records verify`)")  # fmt: skip
            raise LoginRefused(f"{name!r}: unknown account or wrong password")
        if account.disabled:
            self._denied(name, "disabled", now)
            raise LoginRefused(f"{name!r}: the account is disabled (an administrator enables a new one)")
        account = self._attempt(name, now)
        private = unseal(account.credential, password, account.public_key)
        if private is None:
            self._wrong(name, now, f"{name!r}: unknown account or wrong password")
        identity = Identity(account, private)
        self.signed(identity, "login", {"name": name})  # the attempt was theirs: the count starts again
        if account.must_change:
            raise PasswordChangeRequired(f"{name!r} has an initial password: set a password of your own first")
        return identity

    def _attempt(self, name: str, now: datetime) -> Account:
        """Count an attempt at `name`'s password before it is checked, in one write transaction with the lockout
        check (`Store.append_audit`'s guard): however many processes try at once, no more than the site's number
        of wrong passwords is ever checked before the lock. The account as it stands; LoginRefused if locked."""
        found: list[Account] = []

        def not_locked() -> None:
            account = self.accounts()[name]
            if account.locked_until is not None and now < account.locked_until:
                raise LoginRefused(self._locked_text(name, account.locked_until), until=account.locked_until)
            found.append(account)

        try:
            self.log.append_audit("login-attempt", name, {"name": name}, utc=_stamp(now), guard=not_locked)
        except LoginRefused:
            self._denied(name, "locked", now)
            raise
        return found[0]

    def _wrong(self, name: str, now: datetime, refusal: str) -> NoReturn:
        """A wrong password for `name` (its attempt already counted): recorded, and the lockout if this was the
        last try; LoginRefused saying how many tries are left, or until when the account is locked."""
        self._denied(name, "wrong password", now)
        after = self.account(name)
        if after.locked_until is not None and now < after.locked_until:
            self.log.append_audit("user-locked", name, {"name": name, "until": _stamp(after.locked_until),
                                                        "failures": after.failures}, utc=_stamp(now))  # fmt: skip
            raise LoginRefused(self._locked_text(name, after.locked_until), until=after.locked_until)
        left = self.trust.lockout_attempts - after.failures
        tries = "1 try" if left == 1 else f"{left} tries"
        raise LoginRefused(f"{refusal} ({tries} before a lockout)")

    def named(self, typed: str) -> str:
        """The account name `typed` means: itself if there is such an account, else the one account whose name
        differs only in case (a name typed with Caps Lock on), else `typed`."""
        known = self.all_accounts()
        if typed in known:
            return typed
        folded = [name for name in known if name.casefold() == typed.casefold()]
        return folded[0] if len(folded) == 1 else typed

    def proven(self) -> frozenset[str]:
        """The accounts that verify (`accounts`) and are not disabled."""
        return frozenset(name for name, account in self.accounts().items() if not account.disabled)

    def _locked_text(self, name: str, until: datetime) -> str:
        return (f"{name!r} is locked after {self.trust.lockout_attempts} wrong passwords until {_stamp(until)} "
                "(UTC); an administrator may unlock it (`ionctl users unlock`)")  # fmt: skip

    def _denied(self, name: str, reason: str, now: datetime) -> None:
        self.log.append_audit("login-denied", name or "(no name)", {"name": name, "reason": reason}, utc=_stamp(now))

    def activate(self, name: str, initial_password: str, new_password: str) -> Identity:
        """First use: the person proves the initial password, sets their own, and gets a new key pair (signed by
        the one the administrator made, which signs nothing after)."""
        now = self.clock()
        name = self.named(name)
        account = self.accounts().get(name)
        if account is None or account.disabled:
            self._denied(name, "unknown account" if account is None else "disabled", now)
            raise LoginRefused(f"{name!r}: unknown or disabled account")
        account = self._attempt(name, now)
        old = unseal(account.credential, initial_password, account.public_key)
        if old is None:
            self._wrong(name, now, f"{name!r}: wrong initial password")
        check_password(new_password, name, account.full_name)
        if new_password == initial_password:
            raise WeakPassword("choose a password other than the initial one")
        private, public = new_key()
        credential = seal(private, new_password, public, self.cost)
        self.signed(Identity(account, old), "user-activate",
                    {"name": name, "public_key": public.hex(), "credential": credential})  # fmt: skip
        identity = Identity(replace(account, public_key=public, credential=credential, must_change=False), private)
        self.signed(identity, "login", {"name": name})
        return identity

    def change_password(self, identity: Identity, old_password: str, new_password: str) -> None:
        """The person changes their own password (their key stays; it is sealed anew)."""
        private = unseal(self.account(identity.name).credential, old_password, identity.account.public_key)
        if private is None:
            self._denied(identity.name, "wrong password", self.clock())
            raise LoginRefused("wrong current password")
        check_password(new_password, identity.name, identity.account.full_name)
        credential = seal(private, new_password, identity.account.public_key, self.cost)
        self.signed(identity, "user-passwd", {"name": identity.name, "credential": credential})

    # -- administration ----------------------------------------------------------------------------------------

    def bootstrap(self, name: str, full_name: str, password: str) -> Account:
        """An administrator account enrolled by itself. It can do nothing until the site configuration names its
        fingerprint (`[accounts] administrators`), which only IT can write."""
        if name in self.all_accounts():
            raise PeopleError(f"there is already an account {name!r}")
        _check_name(name, full_name)
        check_password(password, name, full_name)
        private, public = new_key()
        account = Account(name, full_name, Role.ADMINISTRATOR, public, seal(private, password, public, self.cost))
        self._enrol(Identity(account, private), "user-enrol", account)
        return account

    def add(self, admin: Identity, name: str, full_name: str, role: Role, initial_password: str) -> Account:
        """Enrol `name` with an initial password they change at first use."""
        self._administering(admin)
        if name in self.all_accounts():
            raise PeopleError(f"there is already an account {name!r} (`ionctl users list`)")
        _check_name(name, full_name)
        check_password(initial_password, name, full_name)
        private, public = new_key()
        account = Account(name, full_name, Role(role), public, seal(private, initial_password, public, self.cost),
                          must_change=True)  # fmt: skip
        self._enrol(admin, "user-enrol", account)
        return account

    def reset(self, admin: Identity, name: str, initial_password: str) -> Account:
        """A forgotten password: a new key and an initial password (the old key's signatures stay valid)."""
        self._administering(admin)
        old = self.account(name)
        check_password(initial_password, name, old.full_name)
        private, public = new_key()
        account = replace(old, public_key=public, credential=seal(private, initial_password, public, self.cost),
                          must_change=True, failures=0, locked_until=None)  # fmt: skip
        self._enrol(admin, "user-reset", account)
        return account

    def disable(self, admin: Identity, name: str) -> None:
        self._administering(admin)
        if self.account(name).name == admin.name:
            raise PeopleError("an administrator cannot disable their own account")
        self.signed(admin, "user-disable", {"name": name})

    def unlock(self, admin: Identity, name: str) -> None:
        self._administering(admin)
        self.account(name)
        self.signed(admin, "user-unlock", {"name": name})

    def _administering(self, admin: Identity) -> None:
        admin.require(Act.MANAGE_USERS)
        if not self.trusted_administrator(admin.account):
            raise NotAllowed(f"{admin.name}'s key ({admin.account.fingerprint}) is not one the site configuration "
                             "names in [accounts] administrators: IT adds it there")  # fmt: skip

    def _enrol(self, by: Identity, action: str, account: Account) -> None:
        gseq, head = self.log.chain_head()
        detail = {"name": account.name, "full_name": account.full_name, "role": account.role.value,
                  "public_key": account.public_key.hex(), "credential": dict(account.credential),
                  "must_change": account.must_change, "attests": {"gseq": gseq, "hash": head}}  # fmt: skip
        self.signed(by, action, detail)

    # -- signed acts -------------------------------------------------------------------------------------------

    def signed(self, identity: Identity, action: str, detail: Mapping[str, Any], *, record_id: int | None = None,
               course_id: int | None = None, meaning: str | None = None) -> int:  # fmt: skip
        """Append an audit entry signed by `identity`; its number. Acts of `SIGNED_ACTIONS` need the role."""
        act = act_of(action, detail)
        if act is not None:
            identity.require(act)
        utc = _stamp(self.clock())
        subject = subject_of(action, identity.name, detail, record_id, course_id, utc)
        signature = identity.sign(meaning or str(detail.get("meaning") or action), subject, utc)
        return self.log.append_audit(action, identity.name, {**detail, "signature": signature.to_dict()},
                                     record_id=record_id, course_id=course_id, utc=utc)  # fmt: skip


def act_of(action: str, detail: Mapping[str, Any]) -> Act | None:
    if action == "record-sign" and detail.get("meaning") == REVIEWED:
        return Act.COUNTERSIGN
    return SIGNED_ACTIONS.get(action)


def _check_name(name: str, full_name: str) -> None:
    if not name or not name.replace("-", "").replace("_", "").replace(".", "").isalnum() or len(name) > 32:
        raise PeopleError(f"login name {name!r}: letters, digits, '.', '-' and '_', at most 32 characters")
    if not full_name.strip():
        raise PeopleError("give the person's full name (it is printed with each of their signatures)")
