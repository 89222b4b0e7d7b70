"""Who is at the bench: logging in at the console, the role a session needs, and a session prepared in the
name of the person logged in (with a supervisor's override signed by that supervisor).

Nothing here draws: the login and lock screens (`ionctl.console.screens.login`) call these from a worker
thread, since a password costs a scrypt derivation (about 0.4 s at the production cost, `Cost`) and the screen
must not freeze meanwhile. Each call opens the record store for itself (a thread's own SQLite connection).

The roles are `ionctl.config.people`'s (`ALLOWED`): a technician or a supervisor runs sessions and records
skin checks and addenda; an administrator manages accounts and an auditor reads, and neither runs a session,
so neither may log in here (the console is only for running sessions and what belongs to them).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ionctl.config.people import Act, Identity, LoginRefused, PasswordChangeRequired, PeopleError

if TYPE_CHECKING:
    from ionctl.config import SiteConfig
    from ionctl.console.setup import ConsoleSetup
    from ionctl.records import Store
    from ionctl.treatment import Prepared, TreatmentRequest


@dataclass(frozen=True)
class Outcome:
    """What came of a login: the person (`identity`), or a refusal to show (`refused`), or the news that the
    password is an initial one and the person must set their own first (`must_change`)."""

    identity: Identity | None = None
    refused: str | None = None
    must_change: bool = False


def log_in(setup: ConsoleSetup, name: str, password: str) -> Outcome:
    """Log `name` in with `password` (the store audits a refusal and locks after the site's number of them);
    refused unless the person may run sessions."""
    from ionctl.records import Store

    try:
        with Store(setup.store_path) as store:
            identity = setup.people(store).login(name, password)
    except PasswordChangeRequired:
        return Outcome(must_change=True)
    except PeopleError as exc:
        return Outcome(refused=refusal_text(exc))
    return _at_the_bench(identity)


def set_own_password(setup: ConsoleSetup, name: str, initial: str, new: str, again: str) -> Outcome:
    """First use: `name` proves the initial password and sets their own (typed twice), then is logged in."""
    from ionctl.records import Store

    if new != again:
        return Outcome(refused="The two new passwords differ; type the same one twice.", must_change=True)
    try:
        with Store(setup.store_path) as store:
            identity = setup.people(store).activate(name, initial, new)
    except LoginRefused as exc:  # the initial password was wrong, or the account is locked
        return Outcome(refused=refusal_text(exc))
    except PeopleError as exc:  # a weak password: choose another
        return Outcome(refused=str(exc), must_change=True)
    return _at_the_bench(identity)


def _at_the_bench(identity: Identity) -> Outcome:
    if not identity.may(Act.RUN_SESSION):
        role = _article(identity.role.value)
        return Outcome(refused=f"{identity.name} is {role}: the console is for running sessions, which only a "
                               "technician or a supervisor may do. Log in as one.")  # fmt: skip
    return Outcome(identity=identity)


def _article(word: str) -> str:
    return f"an {word}" if word[:1] in "aeiou" else f"a {word}"


def refusal_text(exc: PeopleError) -> str:
    """Why a login was refused; for a locked account, until when in the clinic's time as well as UTC."""
    text = str(exc)
    until = exc.until if isinstance(exc, LoginRefused) else None
    if until is not None:
        text += f". Locked until {until.astimezone().strftime('%H:%M:%S')} here."
    return text


def supervisor_of(setup: ConsoleSetup, store: Store, name: str, password: str) -> Callable[[], Identity]:
    """The supervisor a course rule's override is signed by: `name` logs in with `password` when asked (once),
    and must be a supervisor (a technician's password does not set a rule aside)."""

    def supervisor() -> Identity:
        identity = setup.people(store).login(name, password)
        identity.require(Act.OVERRIDE_COURSE)
        return identity

    return supervisor


def prepare_as(request: TreatmentRequest, *, store: Store, config: SiteConfig | None, operator: Identity,
               supervisor: Callable[[], Identity] | None) -> Prepared:  # fmt: skip
    """`ionctl.treatment.prepare` for the person logged in (`operator`), a supervisor signing an override."""
    from ionctl.treatment import prepare

    return prepare(request, store=store, config=config, operator=operator, supervisor=supervisor)
