"""`ionctl console` ends with a non-zero exit code when the console dies (Textual's App.run returns after an
exception in the app as if nothing happened): a screen that raises, a module that cannot be imported."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def console(tmp_path: Path, prelude: str) -> subprocess.CompletedProcess[str]:
    """Run `ionctl console` (through `ionctl.cli.main`) in a child process after `prelude` has broken something."""
    code = f"import sys\n{prelude}\nfrom ionctl.cli import main\nsys.exit(main(['console', '--db', sys.argv[1]]))\n"
    return subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "records.sqlite3")], cwd=ROOT, stdin=subprocess.DEVNULL,
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_a_screen_that_raises_makes_the_console_exit_non_zero(tmp_path: Path) -> None:
    done = console(
        tmp_path,
        """
from ionctl.console.screens.login import LoginScreen
def compose(self):
    raise RuntimeError("the login screen is broken")
LoginScreen.compose = compose
""",
    )
    assert done.returncode == 1, done.stderr
    assert "the login screen is broken" in done.stderr
    assert "ionctl console: the console stopped on an error" in done.stderr


def test_a_console_module_that_cannot_be_imported_makes_the_console_exit_non_zero(tmp_path: Path) -> None:
    done = console(tmp_path, "sys.modules['ionctl.console.screens.setup'] = None  # as if it were not installed")
    assert done.returncode == 1, done.stderr
    assert "ionctl.console.screens.setup" in done.stderr


def test_the_console_app_module_missing_is_one_line_naming_it(tmp_path: Path) -> None:
    done = console(tmp_path, "sys.modules['ionctl.console.app'] = None")
    assert done.returncode == 1
    assert "ionctl console: cannot start, the installation is incomplete" in done.stderr
    assert "ionctl.console.app" in done.stderr and "Traceback" not in done.stderr


def test_a_console_that_ends_normally_exits_zero(tmp_path: Path) -> None:
    # The same path with a clean exit (the app quits as soon as it is mounted): the exit code is the app's.
    done = console(
        tmp_path,
        """
from ionctl.console.app import ConsoleApp
ConsoleApp.on_mount = lambda self: self.exit()
""",
    )
    assert done.returncode == 0, done.stderr
    assert "stopped on an error" not in done.stderr
