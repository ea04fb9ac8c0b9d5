"""Helpers for running answer scripts in tests (in-process and as programs)."""
import csv
import subprocess
import sys

import pytest

from tests.conftest import ROOT, load_script, script_path


def run_in_process(question, framework, argv):
    """``main(argv)`` of a script through ``cli.run_main``; returns its
    result.  Bad input surfaces as SystemExit, as for a user."""
    from common import cli
    module = load_script(question, framework)
    return cli.run_main(module.main, list(map(str, argv)))


def run_program(question, framework, argv, timeout=600):
    """Run a script as a user does; returns the CompletedProcess."""
    return subprocess.run([sys.executable, str(script_path(question, framework)), *map(str, argv)],
                          cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def read_rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def expect_usage_error(capsys, question, framework, argv, *fragments):
    """The script must stop with exit status 2 and one stderr line that
    contains every fragment."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as info:
        run_in_process(question, framework, argv)
    err = capsys.readouterr().err.strip()
    assert info.value.code == 2, err
    lines = err.splitlines()
    assert len(lines) == 1, f"expected one line, got:\n{err}"
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]
