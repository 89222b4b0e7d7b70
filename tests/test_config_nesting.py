"""A site file nested deeper than the TOML reader can follow is a configuration error like any other: it names
the file, and every command that reads it says so in one line (no RecursionError, no traceback)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ionctl.config import ConfigError, load_config

ROOT = Path(__file__).resolve().parents[1]
DEPTH = 100_000

NESTED = {
    "arrays": "a = " + "[" * DEPTH + "]" * DEPTH + "\n",
    "inline tables": "a = " + "{b = " * DEPTH + "1" + "}" * DEPTH + "\n",
    "arrays under limits": "[limits]\nmax_current_ma = " + "[" * DEPTH + "]" * DEPTH + "\n",
}


@pytest.mark.parametrize("kind", sorted(NESTED))
def test_a_deeply_nested_site_file_is_a_configuration_error_naming_the_file(tmp_path: Path, kind: str) -> None:
    site = tmp_path / "site.toml"
    site.write_text(NESTED[kind], encoding="utf-8")
    with pytest.raises(ConfigError, match="nested too deeply") as refused:
        load_config(site)
    assert refused.value.source == str(site) and str(site) in str(refused.value)


def test_ionctl_config_show_reports_the_nested_file_in_one_line(tmp_path: Path) -> None:
    site = tmp_path / "site.toml"
    site.write_text(NESTED["arrays"], encoding="utf-8")
    done = subprocess.run([sys.executable, "-m", "ionctl", "config", "show", "--config", str(site)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.strip() == f"ionctl config: site configuration {site}: not usable: arrays or inline tables " \
        "nested too deeply to read"  # fmt: skip
