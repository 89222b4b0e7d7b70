"""Start `ionctl records sync` in a detached process of its own once a record has closed.

A session never waits on the network (docs/ARCHITECTURE.md, "The clinic store"): the push to the clinic store
runs in a new session of its own (`start_new_session`), its stdin and stdout on /dev/null and what it has to say
appended to `sync.log` in the user's log directory; it is never waited for. If it cannot be started the caller
gets a note to show, and the next sync (`ionctl records sync`, or the next record's close) sends the backlog.
"""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path
from typing import IO, Any


def sync_command(db: Path, config: Path | None) -> list[str]:
    """The command line of the detached sync: this Python, quiet, the store and the site file named."""
    command = [sys.executable, "-m", "ionctl", "records", "sync", "--quiet", "--db", str(db)]
    return command + (["--config", str(config)] if config is not None else [])


def log_path() -> Path:
    """Where a detached sync's messages go: `sync.log` in the user's log directory."""
    import platformdirs

    return Path(platformdirs.user_log_dir("ionctl", appauthor=False)) / "sync.log"


def start_sync(db: Path, config: Path | None) -> str | None:
    """Start the detached sync of the store `db` to the clinic store the site file `config` names (None: the site
    file in force). Returns at once: None if it started, else why not (a note for the operator; nothing is
    raised, and the session's outcome is not touched)."""
    log: IO[Any] | int = subprocess.DEVNULL
    try:
        path = log_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        log = open(path, "ab")  # noqa: SIM115 - handed to the child, closed here once it has its own copy
    except OSError:
        log = subprocess.DEVNULL  # no log directory: the sync still runs, its messages go nowhere
    try:
        child = subprocess.Popen(sync_command(db.resolve(), config), stdin=subprocess.DEVNULL,
                                 stdout=subprocess.DEVNULL, stderr=log, start_new_session=True,
                                 close_fds=True)  # fmt: skip
    except (OSError, ValueError, subprocess.SubprocessError) as exc:
        return f"the clinic store sync could not be started ({exc}); `ionctl records sync` sends this record later"
    finally:
        if not isinstance(log, int):
            log.close()
    # reaped by a daemon thread in a process that lives on (the console): never waited for by the caller, and no
    # zombie left behind; a process that exits first (`ionctl run`) leaves the child to init
    threading.Thread(target=child.wait, name="ionctl sync reaper", daemon=True).start()
    return None
