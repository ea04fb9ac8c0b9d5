"""Which Python builds .venv: tools/check_python.py (fed fake version
strings, then run by real interpreters), the Makefile's choice of
interpreter and its rebuild of a .venv of another version (in a temporary
copy, with fake interpreters on a temporary PATH), and the shim that lets
Chainer import on Python 3.12."""
import glob
import os
import shutil
import subprocess
import sys
import textwrap

import pytest

from tests.conftest import ROOT

sys.path.insert(0, str(ROOT / "tools"))
import check_python  # noqa: E402

SCRIPT = ROOT / "tools" / "check_python.py"


@pytest.mark.parametrize("version", ["3.11.0", "3.11.7", "3.11.12", "3.11.0rc1", "Python 3.11.2\n"])
def test_python_3_11_is_accepted(version):
    assert check_python.check(version, "python3") == (True, "3.11")


def test_python_3_12_is_accepted():
    assert check_python.check("3.12.1", "python3") == (True, "3.12")


def test_python_3_13_is_refused_in_one_line():
    ok, message = check_python.check("3.13.0", "python3")
    assert not ok
    assert "\n" not in message
    assert message.startswith("python3 is Python 3.13.0;")
    assert "Python 3.11 and 3.12 only" in message          # the versions that work
    assert "NumPy < 2" in message                         # why
    for how in ("uv python install 3.11", "python3.11 package", "pyenv install 3.11", "PYTHON="):
        assert how in message


@pytest.mark.parametrize("version", ["2.7.18", "3.6.15", "3.10.13", "3.13.0", "3.14.0a1", "4.0", "", "garbage"])
def test_other_versions_are_refused(version):
    ok, message = check_python.check(version, "python")
    assert not ok and "\n" not in message and "3.11" in message


@pytest.mark.parametrize("text, expected", [
    ("3.11.7", (3, 11)), ("Python 3.13.0", (3, 13)), ("3.13rc1", (3, 13)), ("3", None), ("", None), ("x.y", None)])
def test_parse_version(text, expected):
    assert check_python.parse_version(text) == expected


def test_script_prints_version_and_path_of_a_supported_interpreter():
    proc = subprocess.run([sys.executable, str(SCRIPT), "python3"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "%d.%d %s\n" % (sys.version_info[0], sys.version_info[1], sys.executable)


def _real_interpreters():
    """Interpreters of other versions that happen to be installed (pyenv, the
    distribution's): each must reach the check, not a SyntaxError."""
    found = set(glob.glob(os.path.expanduser("~/.pyenv/versions/*/bin/python")))
    for name in ("python2", "python2.7", "python3.6", "python3.8", "python3.10", "python3.12", "python3.13"):
        path = shutil.which(name)
        if path:
            found.add(path)
    return sorted(found)


def test_script_runs_on_every_installed_interpreter():
    checked = 0
    for python in _real_interpreters():
        try:
            version = subprocess.run([python, "-c", "import sys; print('%d.%d.%d' % sys.version_info[:3])"],
                                     capture_output=True, text=True, timeout=30)
        except OSError:
            continue
        if version.returncode != 0:
            continue  # e.g. a pyenv shim with no such version behind it
        proc = subprocess.run([python, str(SCRIPT), python], capture_output=True, text=True, timeout=30)
        expected_ok, _ = check_python.check(version.stdout, python)
        if expected_ok:
            assert proc.returncode == 0 and proc.stdout.startswith(version.stdout.strip()[:4]), proc
        else:
            assert proc.returncode == 2 and proc.stdout == "", proc
            assert proc.stderr.count("\n") == 1 and "is Python " + version.stdout.strip() in proc.stderr
        checked += 1
    if checked == 0:
        pytest.skip("no interpreter found to run the script with")


# --- the Makefile: a temporary copy, PATH holding only fake interpreters ---

FAKE_PYTHON = """#!/bin/sh
exec "{real}" "{wrapper}" {version} "$@"
"""

# Runs `python SCRIPT ARGS` (the only way the Makefile calls a candidate)
# with sys.version_info pretending to be another version.
WRAPPER = textwrap.dedent("""
    import runpy, sys
    fake = tuple(int(x) for x in sys.argv[1].split("."))
    sys.version_info = fake + ("final", 0)
    sys.argv = sys.argv[2:]
    runpy.run_path(sys.argv[0], run_name="__main__")
    """)


@pytest.fixture
def make_dir(tmp_path):
    make = shutil.which("make")
    if make is None:
        pytest.skip("no make")
    work = tmp_path / "work"
    (work / "tools").mkdir(parents=True)
    for name in ("Makefile", "requirements.txt", "constraints.txt", "build-constraints.txt"):
        shutil.copy(ROOT / name, work / name)
    shutil.copy(SCRIPT, work / "tools" / "check_python.py")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (tmp_path / "wrapper.py").write_text(WRAPPER)

    def fake(name, version):
        path = bin_dir / name
        path.write_text(FAKE_PYTHON.format(real=sys.executable, wrapper=tmp_path / "wrapper.py", version=version))
        path.chmod(0o755)

    def run(*args):
        env = {"PATH": str(bin_dir), "HOME": str(tmp_path)}
        return subprocess.run([make, *args], cwd=work, env=env, capture_output=True, text=True, timeout=60)

    return work, fake, run


def test_make_refuses_python_3_13_in_one_line_before_creating_venv(make_dir):
    work, fake, run = make_dir
    fake("python3", "3.13.0")                      # no python3.11 on PATH
    for target in ("setup", "run", "test"):
        proc = run(target)
        assert proc.returncode == 2
        assert proc.stdout == ""
        assert proc.stderr.count("\n") == 1, proc.stderr
        assert "python3 is Python 3.13.0;" in proc.stderr and "uv python install 3.11" in proc.stderr
        assert not (work / ".venv").exists()
    proc = run("-n", "clean")                         # targets without .venv do not ask
    assert proc.returncode == 0 and proc.stdout == "rm -rf out\n", proc


def test_make_says_so_when_no_python_runs(make_dir):
    work, fake, run = make_dir
    proc = run("setup")
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
    assert "found no python3.11 or python3 that runs" in proc.stderr
    versions = " and ".join("%d.%d" % v for v in check_python.SUPPORTED)
    assert versions.replace(" and ", " or ") in proc.stderr    # the Makefile's line agrees with the script
    assert not (work / ".venv").exists()


def test_make_prefers_python3_11_and_honours_python(make_dir):
    work, fake, run = make_dir
    fake("python3", "3.13.0")
    fake("python3.11", "3.11.9")
    proc = run("-n", "setup")
    assert proc.returncode == 0, proc.stderr
    assert '"%s" -m venv .venv' % sys.executable in proc.stdout
    assert "rm -rf" not in proc.stdout
    proc = run("-n", "setup", "PYTHON=python3")          # PYTHON given: no fallback
    assert proc.returncode == 2 and "python3 is Python 3.13.0;" in proc.stderr


def _fake_venv(work, version):
    bin_dir = work / ".venv" / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    python = bin_dir / "python"
    python.write_text("#!/bin/sh\necho %s\n" % version)
    python.chmod(0o755)
    (work / ".venv" / ".installed").touch()            # newer than the requirement files


def test_make_rebuilds_a_venv_of_another_python_version(make_dir):
    work, fake, run = make_dir
    fake("python3.11", "3.11.9")
    _fake_venv(work, "3.11")
    proc = run("-n", "setup")                          # same version, stamp up to date
    assert proc.returncode == 0 and "venv" not in proc.stdout, proc.stdout
    _fake_venv(work, "3.10")
    proc = run("-n", "setup")
    lines = proc.stdout.splitlines()
    assert lines[:2] == ["rm -rf .venv", '"%s" -m venv .venv' % sys.executable], proc.stdout
    (work / ".venv" / "bin" / "python").write_text("#!/bin/sh\nexit 1\n")   # its interpreter is gone
    assert run("-n", "setup").stdout.startswith("rm -rf .venv\n")


# --- common/compat.py: Chainer on a NumPy without numpy.distutils (Python 3.12) ---

def _python(code):
    env = {"PATH": "/usr/bin:/bin", "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.run([sys.executable, "-c", "import sys; sys.path.insert(0, '.');" + code], cwd=ROOT,
                          capture_output=True, text=True, timeout=300, env=env)
    return proc.returncode, proc.stdout + proc.stderr


HIDE = "sys.modules['numpy.distutils'] = None;"   # as NumPy 1.26 on Python 3.12: no such package


def test_chainer_needs_and_gets_the_numpy_distutils_stub():
    code, out = _python(HIDE + "import chainer")
    assert code != 0 and "numpy.distutils" in out   # the break the stub works around
    code, out = _python(HIDE + "from common import compat; ch = compat.import_chainer(); "
                        "import chainer.functions as F, numpy as np; "
                        "print(ch.__version__, F.relu(np.array([-1.0, 2.0], 'f')).array.tolist(), "
                        "sys.modules['numpy.distutils.system_info'].get_info('blas_opt'))")
    assert code == 0, out
    assert "7.8.1 [0.0, 2.0] {}" in out


def test_numpy_distutils_stub_only_where_numpy_has_none():
    code, out = _python("from common import compat; print('stubbed', compat.stub_numpy_distutils())")
    assert code == 0, out
    assert "stubbed %s" % (sys.version_info >= (3, 12)) in out
