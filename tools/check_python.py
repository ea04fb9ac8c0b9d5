"""Is the Python running this script one the pinned packages work on?

The Makefile runs ``<candidate> tools/check_python.py <candidate>`` for each
candidate interpreter (``PYTHON`` if given, else ``python3.11``, ``python3``)
before it creates ``.venv``.  Accepted: prints ``<major.minor> <path>`` (the
interpreter's own path) and exits 0.  Refused: prints one line on stderr that
names the version found, the versions that work and how to get one, and
exits 2.

The pins in constraints.txt exist because Chainer 7.8.1 needs NumPy < 2;
NumPy 1.26.4 has no wheels for Python 3.13, and TensorFlow 2.21 none for 3.10.

Standard library only, and syntax that any Python 2.6+ or 3.x parses (no
f-strings, no annotations): an old interpreter must reach the refusal line,
not a SyntaxError.
"""
import sys

# Versions on which ``make setup`` (install and import) has been run.
SUPPORTED = ((3, 11), (3, 12))

HOW_TO_GET = ("get one with 'uv python install 3.11', your distribution's "
              "python3.11 package or 'pyenv install 3.11', then run make "
              "again (or make PYTHON=/path/to/python3.11)")


def _dotted(parts):
    return ".".join([str(p) for p in parts])


def parse_version(text):
    """``"3.11.7"`` or ``"Python 3.13.0rc1"`` -> ``(3, 11)``/``(3, 13)``;
    None if no major.minor can be read."""
    words = text.strip().split()
    if not words:
        return None
    numbers = words[-1].split(".")
    if len(numbers) < 2:
        return None
    digits = ""
    for c in numbers[1]:  # "13rc1" -> "13"
        if not c.isdigit():
            break
        digits += c
    try:
        return (int(numbers[0]), int(digits))
    except ValueError:
        return None


def check(version, name="python"):
    """Decide on one interpreter.  ``version`` is its version string (e.g.
    ``"3.13.0"``), ``name`` how the user called it.  Returns ``(True,
    "3.11")`` if supported, else ``(False, one_line_message)``."""
    found = parse_version(version)
    if found in SUPPORTED:
        return True, _dotted(found)
    works = " and ".join([_dotted(v) for v in SUPPORTED])
    message = ("%s is Python %s; this project's pinned packages (Chainer "
               "7.8.1 needs NumPy < 2) install and import on Python %s "
               "only: %s" % (name, version.strip() or "of unknown version",
                             works, HOW_TO_GET))
    return False, message


def main(argv):
    name = argv[1] if len(argv) > 1 else (sys.executable or "python")
    version = _dotted(sys.version_info[:3])
    ok, text = check(version, name)
    if not ok:
        sys.stderr.write(text + "\n")
        return 2
    sys.stdout.write("%s %s\n" % (text, sys.executable or name))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
