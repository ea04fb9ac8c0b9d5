"""Helpers for running answer scripts in tests (in-process and as programs)."""
import csv
import json
import re
import shutil
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


def stopped_copy(whole, parts, iteration, extra_row):
    """Copy run folder ``whole`` to ``parts`` as a kill right after its
    checkpoint at ``iteration`` would have left it: no later checkpoint
    (``latest.json`` names that one), no later sample or progress row, no
    test folder, and metrics.csv up to ``iteration`` plus ``extra_row`` (a
    row an interrupted run logged past its checkpoint, which the resumed
    run must drop).  Resuming ``parts`` must then give ``whole`` again.
    (tests/test_kills.py kills real runs; this copy saves each resume test
    a run, which for TF-Slim and Keras is mostly graph building.)"""
    shutil.copytree(whole, parts)
    after = re.compile(r"iter_(\d+)")

    def later(path):
        match = after.fullmatch(path.stem if path.is_file() else path.name)
        return match is not None and int(match.group(1)) > iteration
    for path in sorted((parts / "checkpoints").iterdir()):
        if path.is_dir() and later(path):
            shutil.rmtree(path)
    assert (parts / "checkpoints" / f"iter_{iteration:06d}").is_dir(), f"{whole} has no checkpoint {iteration}"
    (parts / "checkpoints" / "latest.json").write_text(
        json.dumps({"checkpoint": f"iter_{iteration:06d}", "iteration": iteration}))
    for path in (parts / "samples").rglob("iter_*.png") if (parts / "samples").is_dir() else ():
        if later(path):
            path.unlink()
    shutil.rmtree(parts / "test", ignore_errors=True)
    lines = (parts / "metrics.csv").read_text().splitlines(keepends=True)
    kept = [lines[0]] + [line for line in lines[1:] if int(line.split(",")[0]) <= iteration]
    (parts / "metrics.csv").write_text("".join(kept) + extra_row + "\n")
    return parts
