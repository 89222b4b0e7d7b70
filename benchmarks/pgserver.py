"""A throwaway PostgreSQL server for the clinic store's tests and benchmarks: a cluster in a temporary folder,
started from the server binaries on the machine (`pg_config --bindir`, else Debian's /usr/lib/postgresql/*/bin),
listening only on a Unix socket in that folder (no TCP port, nothing reachable from another machine).

It lives here, in `benchmarks/`, so that both the benchmarks (`benchmarks.clinic`) and the tests (through
`tests/pg.py`, which re-exports it) start the same server; the tests already import `benchmarks`, the benchmarks
import nothing from `tests/`.

`initdb` and the server refuse to run as root: as root they run as the `postgres` system account (`runuser`), in
a folder that account owns. Where no server binaries exist, `PostgresUnavailable` says why: the tests skip with
that reason, `.ci/run` (which sets IONCTL_REQUIRE_POSTGRES=1) makes the absence a failure, and a benchmark
reports its figure as not measured, with the reason.

    with PostgresServer.started(tmp_path) as server:
        with psycopg.connect(server.conninfo()) as db: ...
        server.stop("immediate")   # as a crash would (the clinic store's outage tests)
        server.start()
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

REQUIRE = "IONCTL_REQUIRE_POSTGRES"
SERVICE_ACCOUNT = "postgres"


class PostgresUnavailable(Exception):
    """No PostgreSQL server can be started here, and why."""


def bindir() -> Path:
    """The folder of `initdb`, `pg_ctl` and `postgres`: `pg_config --bindir`, else the newest Debian one."""
    candidates: list[Path] = []
    pg_config = shutil.which("pg_config")
    if pg_config is not None:
        done = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False)
        if done.returncode == 0:
            candidates.append(Path(done.stdout.strip()))
    candidates += [Path(p) for p in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)]
    for folder in candidates:
        if (folder / "initdb").is_file() and (folder / "pg_ctl").is_file():
            return folder
    raise PostgresUnavailable("no PostgreSQL server binaries (initdb, pg_ctl) on this machine: install the server "
                              "(Debian: postgresql) to run the clinic store's tests")  # fmt: skip


@dataclass
class PostgresServer:
    """One throwaway cluster: its data folder, its socket folder, the account it runs as (None: this one)."""

    folder: Path
    bin: Path
    run_as: str | None

    @property
    def data(self) -> Path:
        return self.folder / "data"

    @property
    def socket_dir(self) -> Path:
        return self.folder

    def conninfo(self, dbname: str = "postgres", user: str = SERVICE_ACCOUNT) -> str:
        """A libpq connection string to the server over its Unix socket."""
        return f"host={self.socket_dir} port=5432 dbname={dbname} user={user}"

    def _run(self, *args: str, timeout_s: float = 60.0) -> subprocess.CompletedProcess[str]:
        command = [*(["runuser", "-u", self.run_as, "--"] if self.run_as else []), *args]
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s, check=False)
        if done.returncode != 0:
            raise PostgresUnavailable(f"{' '.join(args[:2])} failed ({done.returncode}): "
                                      f"{(done.stderr or done.stdout).strip()[-1500:]}")  # fmt: skip
        return done

    def initdb(self) -> None:
        # trust on the Unix socket only: the folder is the owner's alone (0700), so only this machine's root and
        # the service account reach it; --no-sync: a throwaway cluster needs no fsync of its files
        self._run(str(self.bin / "initdb"), "-D", str(self.data), "-U", SERVICE_ACCOUNT, "-A", "trust", "-E", "UTF8",
                  "--no-sync", "--no-instructions")  # fmt: skip

    def start(self) -> None:
        # fsync off: the machine does not crash in these tests, the server does (an immediate stop keeps what the
        # kernel was given); synchronous_commit stays on, so a commit the client saw survives that stop
        options = f"-k {self.socket_dir} -c listen_addresses='' -c port=5432 -c fsync=off -c full_page_writes=off"
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-o", options, "-l", str(self.folder / "server.log"),
                  "-w", "-t", "60", "start")  # fmt: skip

    def stop(self, mode: str = "fast") -> None:
        """`fast` (a clean shutdown) or `immediate` (as a crash: recovery on the next start)."""
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop")

    def running(self) -> bool:
        command = [*(["runuser", "-u", self.run_as, "--"] if self.run_as else []),
                   str(self.bin / "pg_ctl"), "-D", str(self.data), "status"]  # fmt: skip
        return subprocess.run(command, capture_output=True, check=False).returncode == 0

    @classmethod
    @contextmanager
    def started(cls, parent: Path) -> Iterator[PostgresServer]:
        """A new cluster in a folder of its own under `parent`, started; stopped and removed afterwards."""
        run_as = SERVICE_ACCOUNT if os.geteuid() == 0 else None
        if run_as is not None and shutil.which("runuser") is None:
            raise PostgresUnavailable("running as root without runuser: initdb refuses root")
        folder = parent / "pg"
        folder.mkdir(mode=0o700)
        if run_as is not None:
            try:
                account = pwd.getpwnam(run_as)
            except KeyError:
                raise PostgresUnavailable(f"running as root and there is no {run_as!r} account to run the "
                                          "server as (initdb refuses root)") from None  # fmt: skip
            os.chown(folder, account.pw_uid, account.pw_gid)
            _traversable(parent)
        server = cls(folder, bindir(), run_as)
        server.initdb()
        server.start()
        try:
            yield server
        finally:
            if server.running():
                server.stop("immediate")
            shutil.rmtree(folder, ignore_errors=True)


def _traversable(folder: Path) -> None:
    """Let the service account reach its folder under `folder` (pytest's temporary folders are root's, 0700)."""
    for part in (folder, *folder.parents):
        mode = part.stat().st_mode
        if not mode & 0o001:
            os.chmod(part, mode | 0o001)  # search only: nothing in them becomes listable or readable
        if part == Path(part.anchor):
            break
