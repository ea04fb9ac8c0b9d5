"""Re-make the committed answer pictures and the README's results table.

Runs each answer script with its default settings (``--train --test``) into
``out/<question>/<framework>/``, copies the test picture into
``answers_image/<question>_<framework>.png`` and records the printed test
numbers, the run time and the command in ``answers_image/results.json``.

    python tools/make_answers.py                  # every question x framework
    python tools/make_answers.py --questions ae convae --frameworks pytorch
"""
import argparse
import json
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FRAMEWORKS = ("pytorch", "tf_slim", "keras", "chainer")
# Offline, the VAE answers use the real 10,000-digit MNIST subset beside the
# repository (8,000 train / 2,000 test); with internet, drop --data-dir and
# the full MNIST is downloaded.
_SUBSET = ROOT.parent / "shared" / "datasets" / "mnist10k"
MNIST = ["--data-dir", str(_SUBSET)] if _SUBSET.is_dir() else []
# question -> (pictures under test/ to publish, flags of the answer run)
ANSWERS = {
    "ae": (["reconstructions.png"], ["--train", "--test"]),
    "convae": (["reconstructions.png"], ["--train", "--test"]),
    "vae": (["reconstructions.png", "samples.png"], ["--train", "--test", *MNIST]),
    "vae_latent_show": (["latent_scatter.png"], ["--test", *MNIST]),
    "vae_latent_change": (["latent_line.png", "latent_grid.png"], ["--test", *MNIST]),
}


def run_one(question, framework, results):
    pictures, flags = ANSWERS[question]
    script = f"scripts_{framework}/{question}_{framework}.py"
    command = [sys.executable, script, *flags]
    print("$", " ".join(["python", *command[1:]]), flush=True)
    t0 = time.time()
    proc = subprocess.run(command, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    seconds = time.time() - t0
    if proc.returncode:
        raise SystemExit(f"{script} failed with status {proc.returncode}")
    print(proc.stdout.strip())
    run_dir = ROOT / "out" / question / framework
    for name in pictures:
        target = ROOT / "answers_image" / f"{question}_{framework}_{Path(name).stem}.png"
        shutil.copyfile(run_dir / "test" / name, target)
    metrics = json.loads((run_dir / "test" / "metrics.json").read_text())
    for key in ("per_image", "class_names", "grid", "line", "scatter"):
        metrics.pop(key, None)
    results[f"{question}/{framework}"] = {
        "command": " ".join(["python", *command[1:]]).replace(str(ROOT.parent), ".."), "seconds": round(seconds, 1),
        "test": metrics, "machine": f"{platform.machine()}, {platform.python_version()}, "
                                    f"{len(__import__('os').sched_getaffinity(0))} cores"}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--questions", nargs="+", default=list(ANSWERS), choices=list(ANSWERS))
    parser.add_argument("--frameworks", nargs="+", default=list(FRAMEWORKS), choices=FRAMEWORKS)
    args = parser.parse_args()
    (ROOT / "answers_image").mkdir(exist_ok=True)
    path = ROOT / "answers_image" / "results.json"
    results = json.loads(path.read_text()) if path.exists() else {}
    for question in args.questions:
        for framework in args.frameworks:
            run_one(question, framework, results)
            path.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    print("\nquestion | framework | test numbers | seconds")
    for key, value in sorted(results.items()):
        q, f = key.split("/")
        numbers = {k: v for k, v in value["test"].items() if isinstance(v, float)}
        print(f"{q} | {f} | {numbers} | {value['seconds']}")


if __name__ == "__main__":
    main()
