"""Re-make the committed answer pictures and the README's results table.

Runs each answer script with its default settings (``--train --test``) into
``out/<question>/<framework>/``, copies its pictures into
``answers_image/<question>_<framework>_<picture>.png`` and records the printed
test numbers, the run time and the command in ``answers_image/results.json``.

    python tools/make_answers.py                  # every question x framework
    python tools/make_answers.py --questions ae convae --frameworks pytorch
    python tools/make_answers.py --questions dcgan --resume   # continue an interrupted long run

``gan_digits`` and ``dcgan_digits`` are the GAN and the DCGAN on 28x28 digits
(the class-API document's configuration; the MNIST subset offline,
Fashion-MNIST with internet); the DCGAN for 1000 iterations.
"""
import argparse
import csv
import json
import os
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
# The GAN runs publish the test pictures and the training pictures of the run folder.
GAN_PICTURES = ["test/samples.png", "test/interpolation.png", "test/morph.gif", "progress.png", "losses.png",
                "d_accuracy.png", "d_probabilities.png"]
DIGITS = ["--dataset", "mnist", *MNIST] if MNIST else ["--dataset", "fashion_mnist"]
# answer -> (pictures to publish, relative to the run folder, flags of the answer run,
#            the question's script if the answer's name is not the question)
ANSWERS = {
    "ae": (["test/reconstructions.png"], ["--train", "--test"]),
    "convae": (["test/reconstructions.png"], ["--train", "--test"]),
    "vae": (["test/reconstructions.png", "test/samples.png"], ["--train", "--test", *MNIST]),
    "vae_latent_show": (["test/latent_scatter.png"], ["--test", *MNIST]),
    "vae_latent_change": (["test/latent_line.png", "test/latent_grid.png"], ["--test", *MNIST]),
    # (a 64x64 morph.gif is 2.5 MB of fine texture: it stays in the run folder, not published)
    "gan": ([name for name in GAN_PICTURES if not name.endswith(".gif")], ["--train", "--test"]),
    "dcgan": ([name for name in GAN_PICTURES if not name.endswith(".gif")], ["--train", "--test"]),
    "gan_digits": (["test/samples.png", "progress.png"], ["--train", "--test", *DIGITS], "gan"),
    "dcgan_digits": (["test/samples.png", "progress.png", "losses.png"],
                     ["--train", "--test", "--iters", "1000", *DIGITS], "dcgan"),
}


def train_seconds(path):
    """The training time in metrics.csv (each row's seconds per iteration times
    the iterations since the row before), which spans a resumed run's parts."""
    if not path.exists():
        return None
    total, last = 0.0, 0
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            iteration = int(row["iteration"])
            total += float(row["sec_per_iter"]) * (iteration - last)
            last = iteration
    return round(total, 1)


def answer_command(answer, framework, *, resume=False, checkpoint_every=None, out_root=None):
    """(script, run folder, command to run, command to show) of one answer.

    ``--resume`` (added only where the run folder has a checkpoint) and
    ``--checkpoint-every`` change when a run is saved, not what it computes
    (resume is bit-for-bit: tests/test_answers_gan.py), so the command shown
    in results.json leaves them out: it is the one that remakes the answer."""
    _, flags, *script_question = ANSWERS[answer]
    question = script_question[0] if script_question else answer
    script = f"scripts_{framework}/{question}_{framework}.py"
    run_dir = Path(out_root or ROOT / "out") / answer / framework
    command = [sys.executable, script, *flags, "--out-dir", os.path.relpath(run_dir, ROOT)]
    shown = " ".join(["python", *command[1:]]).replace(str(ROOT.parent), "..")
    if resume and (run_dir / "checkpoints" / "latest.json").exists():
        command.append("--resume")
    if checkpoint_every:
        command += ["--checkpoint-every", str(checkpoint_every)]
    return script, run_dir, command, shown


def run_one(answer, framework, results, resume=False, checkpoint_every=None):
    pictures = ANSWERS[answer][0]
    script, run_dir, command, shown = answer_command(answer, framework, resume=resume,
                                                     checkpoint_every=checkpoint_every)
    print("$", " ".join(["python", *command[1:]]), flush=True)
    t0 = time.time()
    proc = subprocess.run(command, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    seconds = time.time() - t0
    if proc.returncode:
        raise SystemExit(f"{script} failed with status {proc.returncode}")
    print(proc.stdout.strip())
    for name in pictures:
        source = run_dir / name
        target = ROOT / "answers_image" / f"{answer}_{framework}_{Path(name).stem}{Path(name).suffix}"
        shutil.copyfile(source, target)
    metrics = json.loads((run_dir / "test" / "metrics.json").read_text())
    for key in ("per_image", "class_names", "grid", "line", "scatter"):
        metrics.pop(key, None)
    results[f"{answer}/{framework}"] = {
        "command": shown, "seconds": round(seconds, 1),
        "train_seconds": train_seconds(run_dir / "metrics.csv"),
        "test": metrics, "machine": f"{platform.machine()}, {platform.python_version()}, "
                                    f"{len(os.sched_getaffinity(0))} cores"}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--questions", nargs="+", default=list(ANSWERS), choices=list(ANSWERS))
    parser.add_argument("--frameworks", nargs="+", default=list(FRAMEWORKS), choices=FRAMEWORKS)
    parser.add_argument("--resume", action="store_true",
                        help="continue a run from its last checkpoint where there is one (long GAN runs)")
    parser.add_argument("--checkpoint-every", type=int, metavar="N",
                        help="checkpoint every N iterations instead of the script's default, so that an "
                             "interrupted long run loses less (GAN questions only)")
    args = parser.parse_args()
    (ROOT / "answers_image").mkdir(exist_ok=True)
    path = ROOT / "answers_image" / "results.json"
    for question in args.questions:
        for framework in args.frameworks:
            done = {}
            run_one(question, framework, done, args.resume, args.checkpoint_every)
            # re-read before writing: another make_answers may have added its runs meanwhile
            results = json.loads(path.read_text()) if path.exists() else {}
            results.update(done)
            path.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    print("\nquestion | framework | test numbers | seconds")
    for key, value in sorted(results.items()):
        q, f = key.split("/")
        numbers = {k: v for k, v in value["test"].items() if isinstance(v, float)}
        print(f"{q} | {f} | {numbers} | {value['seconds']}")


if __name__ == "__main__":
    main()
