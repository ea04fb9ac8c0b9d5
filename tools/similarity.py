"""How alike are the four versions of each answer?  Prints, per question,
the identical-line share of every framework pair.

Both files are read as lists of lines with whitespace folded (leading and
repeated spaces, blank lines dropped) and the framework's own name replaced
by a placeholder (``pytorch``/``PyTorch``, ``tf_slim``/``TF-Slim``,
``keras``/``Keras``, ``chainer``/``Chainer`` -> ``FW``), so that
``QUESTION = "ae"``-style lines and the title line count as equal.  The
share is difflib's ratio over those lines: 2 x (lines in matching blocks) /
(lines of A + lines of B), 100% for identical files.

    python tools/similarity.py                 # every question, a Markdown table
    python tools/similarity.py --questions dcgan
    python tools/similarity.py --check         # exit 1 if a pair is below its aim

The aim (issue 10): at least 75% between PyTorch and Chainer (two eager
frameworks with the same layouts) and at least 60% for every other pair.
"""
import argparse
import difflib
import itertools
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FRAMEWORKS = ("pytorch", "tf_slim", "keras", "chainer")
NAMES = {"pytorch": ("pytorch", "PyTorch", "torch"), "tf_slim": ("tf_slim", "TF-Slim", "tf-slim"),
         "keras": ("keras", "Keras 3", "Keras"), "chainer": ("chainer", "Chainer")}
AIM = {("pytorch", "chainer"): 75}
DEFAULT_AIM = 60


def questions():
    """The questions that have a script in every framework, in README order."""
    stems = [p.name[:-len("_pytorch.py")] for p in sorted((ROOT / "scripts_pytorch").glob("*_pytorch.py"))]
    order = ["ae", "convae", "vae", "vae_latent_show", "vae_latent_change", "gan", "dcgan", "cgan", "wgan",
             "wgan_gp", "pix2pix", "pix2pix_gp", "alpha_gan"]
    stems = [q for q in stems if all((ROOT / f"scripts_{f}" / f"{q}_{f}.py").exists() for f in FRAMEWORKS)]
    return sorted(stems, key=lambda q: (order.index(q) if q in order else len(order), q))


def folded_lines(path, framework):
    """The file's non-blank lines, whitespace folded, the framework named FW."""
    lines = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        line = " ".join(line.split())
        if not line:
            continue
        for name in NAMES[framework]:
            line = re.sub(rf"(?<![A-Za-z0-9]){re.escape(name)}(?![A-Za-z0-9])", "FW", line)
        lines.append(line)
    return lines


def share(question, a, b):
    """Identical-line share (0-100) of ``question``'s versions in frameworks a and b."""
    return line_share(folded_lines(ROOT / f"scripts_{a}" / f"{question}_{a}.py", a),
                      folded_lines(ROOT / f"scripts_{b}" / f"{question}_{b}.py", b))


def line_share(lines_a, lines_b):
    """2 x lines in matching blocks / all lines, in percent."""
    return 100.0 * difflib.SequenceMatcher(None, lines_a, lines_b, autojunk=False).ratio()


def aim(a, b):
    return AIM.get((a, b), AIM.get((b, a), DEFAULT_AIM))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--questions", nargs="+", default=None, help="questions to compare (default: all)")
    parser.add_argument("--check", action="store_true", help="exit status 1 if a pair is below its aim")
    args = parser.parse_args(argv)
    chosen = args.questions or questions()
    unknown = [q for q in chosen if q not in questions()]
    if unknown:
        parser.exit(2, f"similarity.py: error: no script in every framework for {', '.join(unknown)}\n")
    pairs = list(itertools.combinations(FRAMEWORKS, 2))
    short = {"pytorch": "PT", "tf_slim": "TF", "keras": "K", "chainer": "CH"}
    print("| question | lines (PT / TF / K / CH) | " + " | ".join(f"{short[a]}-{short[b]}" for a, b in pairs) + " |")
    print("|---|---|" + "---:|" * len(pairs))
    below = []
    for question in chosen:
        sizes = [len(folded_lines(ROOT / f"scripts_{f}" / f"{question}_{f}.py", f)) for f in FRAMEWORKS]
        cells = []
        for a, b in pairs:
            value = share(question, a, b)
            low = value < aim(a, b)
            if low:
                below.append(f"{question} {a}-{b} {value:.0f}% < {aim(a, b)}%")
            cells.append(f"{value:.0f}%" + (" *" if low else ""))
        print(f"| {question} | {' / '.join(map(str, sizes))} | " + " | ".join(cells) + " |")
    print(f"\nAim: {AIM[('pytorch', 'chainer')]}% PT-CH, {DEFAULT_AIM}% every other pair (* below it).")
    if args.check and below:
        print("below the aim: " + "; ".join(below), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
