"""`ionctl records sync [--watch]`: push this bench's chain to the clinic store `[clinic]` names.

Once: send what the clinic store does not have yet, say what was sent and where the clinic's head for this bench
now is. `--watch`: do that every `--interval` seconds until SIGINT, SIGTERM or SIGHUP (exit 0), through outages
(one "clinic unreachable, retrying" per outage, one line when it is back). The push itself is
`ionctl.records.clinic.sync.push`: idempotent and resumable, so a sync killed at any instant and started again
loses nothing and sends nothing twice.

The bench's store is only read: no record is recovered or written here (`ionctl run` starts this command
detached right after a record closes, while the next session may already be writing).

Exit codes (`ionctl.core.vocabulary.ExitCode` numbers, with this command's meaning): 0 up to date (or stopped by a
signal under --watch); 1 the bench's store cannot be read; 2 no usable `[clinic]` in the site file (or no schema
in the clinic store); 3 the clinic store could not be reached; 4 a conflict or a refused link (reported, nothing
overwritten; --watch stops there rather than retrying it).
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from ionctl.core.vocabulary import ExitCode

if TYPE_CHECKING:
    from ionctl.config.site import ClinicSettings
    from ionctl.records import Store
    from ionctl.records.clinic.sync import Pushed

#: This command's exit codes beyond 0, 1 and 2 (documented in the module docstring and `--help`).
UNREACHABLE = 3
CONFLICT = 4
INTERVAL_S = 2.0
NO_CLINIC = ("this bench has no clinic store: add to the site file\n  [clinic]\n  store = \"host=... dbname=...\"  "
             "# a libpq connection string, no password\n  bench = \"bench-a\"  # this bench's name in it\n"
             "(or name another site file with --config FILE)")  # fmt: skip


def add_action(actions: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `sync` to `ionctl records`' actions (its own handler: it opens the store itself, read-only)."""
    sync = actions.add_parser(
        "sync", help="push this bench's records to the clinic store ([clinic] in the site file)",
        description="Push this bench's hash chain (records, telemetry, events, audit entries, courses) to the "
        "clinic's PostgreSQL store named by [clinic] in the site file. Idempotent and resumable. Exit 0 up to "
        "date; 1 this bench's store cannot be read; 2 no [clinic]; 3 the clinic store cannot be reached; 4 a "
        "conflict or a refused link (reported in the clinic store, nothing overwritten).",
    )  # fmt: skip
    sync.add_argument("--db", metavar="PATH", help="this bench's record store (default: the site configuration's "
                      "[records] store, else records.sqlite3 in the user data dir)")  # fmt: skip
    sync.add_argument("--config", metavar="FILE", help="site configuration naming the clinic store ([clinic]) "
                      "(default: the site's)")  # fmt: skip
    sync.add_argument("--watch", action="store_true", help="keep pushing until SIGINT or SIGTERM, through outages")
    sync.add_argument("--interval", type=_seconds, default=INTERVAL_S, metavar="S",
                      help=f"with --watch: seconds between pushes (default {INTERVAL_S:g})")  # fmt: skip
    sync.add_argument("--batch", type=int, default=None, metavar="N", help=argparse.SUPPRESS)  # tests: small rounds
    sync.add_argument("--quiet", action="store_true", help="print nothing but problems (stderr)")
    sync.set_defaults(handler=main)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not 0.05 <= value <= 3600:
        raise argparse.ArgumentTypeError(f"must be from 0.05 to 3600 seconds, got {text!r}")
    return value


def _say(text: str) -> None:
    print(f"ionctl records sync: {text}", file=sys.stderr, flush=True)


def clinic_of(args: argparse.Namespace, say: Callable[[str], None]) -> tuple[ClinicSettings, Path] | int:
    """The site file's `[clinic]` and this bench's store path (`--config`, `--db`), or the exit code after saying
    why there are none (a site file that does not read, no `[clinic]` in it)."""
    from ionctl.config import ConfigError
    from ionctl.config.bench import clinic_settings, store_path

    try:
        settings = clinic_settings(args.config)
        path = store_path(args.db, args.config)
    except ConfigError as exc:
        say(str(exc))
        return ExitCode.REFUSED
    if settings is None:
        say(NO_CLINIC)
        return ExitCode.REFUSED
    return settings, path


def main(args: argparse.Namespace) -> int:
    from ionctl.records import Store, StoreError

    found = clinic_of(args, _say)
    if isinstance(found, int):
        return found
    settings, path = found
    try:
        store = Store(path, create=False)
    except (StoreError, OSError) as exc:
        _say(str(exc))
        return ExitCode.FAILED
    with store:
        if args.watch:
            return Watcher(store, settings, args).run()
        return _once(store, settings, args)


def _once(store: Store, settings: ClinicSettings, args: argparse.Namespace) -> int:
    from ionctl.records.clinic.schema import ClinicError
    from ionctl.records.clinic.sync import ClinicUnreachable, connect

    try:
        clinic = connect(settings.store, timeout_s=settings.timeout_s)
    except ClinicUnreachable as exc:
        _say(str(exc))
        return UNREACHABLE
    with clinic:
        try:
            pushed = _push(store, clinic, settings, args)
        except ClinicError as exc:
            return _failed(exc)
    if not args.quiet:
        print(_sent_text(pushed, settings.store))
    return ExitCode.OK


def _push(store: Store, clinic: Any, settings: ClinicSettings, args: argparse.Namespace,
          progress: Any = None) -> Pushed:  # fmt: skip
    from ionctl.records.clinic.sync import BATCH, push

    return push(store.db, clinic, settings.bench, batch=args.batch or BATCH, progress=progress)


def _failed(exc: Exception) -> int:
    from ionctl.records.clinic.sync import ClinicUnreachable, LinkRefused, NotSetUp, SyncConflict

    _say(str(exc))
    if isinstance(exc, ClinicUnreachable):
        return UNREACHABLE
    if isinstance(exc, SyncConflict | LinkRefused):
        return CONFLICT
    return ExitCode.REFUSED if isinstance(exc, NotSetUp) else ExitCode.FAILED


def _sent_text(pushed: Pushed, where: str) -> str:
    if pushed.links == 0:
        return f"up to date: the clinic store ({where}) has bench {pushed.bench} up to link {pushed.head}"
    kinds = ", ".join(f"{count} {kind}" for kind, count in sorted(pushed.kinds.items()))
    return (f"sent {pushed.links} links ({kinds}), {pushed.closings} closings with {pushed.samples} telemetry "
            f"samples, in {pushed.rounds} rounds; the clinic store ({where}) has bench {pushed.bench} up to link "
            f"{pushed.head}")  # fmt: skip


class _Stopped(Exception):
    """A signal asked --watch to stop: raised between rounds (what was committed stays)."""


class Watcher:
    """`--watch`: push every interval until a signal; one message per outage; stop at a conflict."""

    def __init__(self, store: Store, settings: ClinicSettings, args: argparse.Namespace) -> None:
        self.store, self.settings, self.args = store, settings, args
        self.stop = threading.Event()
        self.clinic: Any = None
        self.outage = False

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.stop.set()

    def _between_rounds(self, pushed: Pushed) -> None:
        if self.stop.is_set():
            raise _Stopped

    def run(self) -> int:
        handled = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
        previous = {s: signal.signal(s, self._on_signal) for s in handled}
        try:
            return self._loop()
        finally:
            if self.clinic is not None:
                self.clinic.close()
            for s, handler in previous.items():
                signal.signal(s, handler)

    def _loop(self) -> int:
        from ionctl.records.clinic.schema import ClinicError
        from ionctl.records.clinic.sync import ClinicUnreachable, LinkRefused, NotSetUp, SyncConflict, connect

        while not self.stop.is_set():
            try:
                if self.clinic is None or self.clinic.closed:
                    self.clinic = connect(self.settings.store, timeout_s=self.settings.timeout_s)
                pushed = _push(self.store, self.clinic, self.settings, self.args, progress=self._between_rounds)
            except _Stopped:
                break
            except ClinicUnreachable as exc:
                self._lost(exc)
            except (SyncConflict, LinkRefused, NotSetUp) as exc:
                return _failed(exc)  # a conflict, a refused link, a store not set up: retrying changes nothing
            except ClinicError as exc:  # anything else the server said (a deadlock, a cancelled query): retried
                self._lost(exc)
            else:
                if self.outage:
                    self.outage = False
                    _say(f"the clinic store is reachable again; bench {pushed.bench} at link {pushed.head}")
                if pushed.links and not self.args.quiet:
                    print(_sent_text(pushed, self.settings.store), flush=True)
            self.stop.wait(self.args.interval)
        return ExitCode.OK

    def _lost(self, exc: Exception) -> None:
        if self.clinic is not None:
            try:
                self.clinic.close()
            except Exception:  # noqa: BLE001 - a connection already gone closes as it can
                pass
            self.clinic = None
        if not self.outage:
            self.outage = True
            _say(f"clinic unreachable, retrying every {self.args.interval:g} s ({exc})")
