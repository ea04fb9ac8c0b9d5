"""Time the training iteration of each answer script, per framework.

Runs every selected script as a program (``--train`` only, no samples or
checkpoints until the end, a metrics row every iteration), drops the
warm-up iterations and reports per question x framework:

- seconds per training iteration: the median over the timed iterations
  (``sec_per_iter`` in metrics.csv: the whole step, data included),
- the share of that spent in the shared data pipeline (minibatch
  selection + augmentation, timed separately on the same data and batch
  size),
- the peak resident memory of the process.

    python tools/benchmark.py                          # every script with a default data set here
    python tools/benchmark.py --questions convae --frameworks pytorch keras --iters 50

Timings belong here, not in the tests.  Run it on a quiet machine: other
jobs on the same cores distort the numbers badly (PyTorch's OpenMP threads
suffer most).
"""
import argparse
import csv
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from common import augment, batching, recon, wgan  # noqa: E402

FRAMEWORKS = ("pytorch", "tf_slim", "keras", "chainer")
MNIST = str(ROOT.parent / "shared" / "datasets" / "mnist10k")
# question -> (dataset, data dir or None, batch size of the default run, value range,
#              flags of the timed run beyond the defaults)
QUESTIONS = {
    "ae": ("imori", None, 64, (-1.0, 1.0), []),
    "convae": ("imori", None, 64, (-1.0, 1.0), []),
    "vae": ("mnist", MNIST, 256, (0.0, 1.0), []),
    "gan": ("imori", None, 64, (-1.0, 1.0), []),
    "dcgan": ("imori", None, 64, (-1.0, 1.0), []),
    "cgan": ("mnist", MNIST, 64, (-1.0, 1.0), []),
    # one WGAN iteration = n_critic (5) critic steps + one G step, digits padded to 32x32
    "wgan": ("mnist", MNIST, 64, (-1.0, 1.0), []),
    # the paper's ResNet at width 128 is ~16x the cost of width 32 on a CPU: time the widths to pick one
    "wgan_gp": ("mnist", MNIST, 64, (-1.0, 1.0), ["--width", "32"]),
    "wgan_gp_w16": ("mnist", MNIST, 64, (-1.0, 1.0), ["--width", "16"]),
    # pix2pix on the newt photos' pairs (64x64, batch 16): with D, with L1 alone, with the penalty (5 D steps)
    "pix2pix": ("imori", None, 16, (-1.0, 1.0), []),
    "pix2pix_l1": ("imori", None, 16, (-1.0, 1.0), ["--gan-weight", "0"]),
    "pix2pix_gp": ("imori", None, 16, (-1.0, 1.0), []),
    # one alpha-GAN iteration = E, G twice, D, C on 28x28 digits
    "alpha_gan": ("mnist", MNIST, 64, (-1.0, 1.0), []),
}
# a row name -> the question's script (rows that time one script with other flags)
SCRIPTS = {"wgan_gp_w16": "wgan_gp", "pix2pix_l1": "pix2pix"}


def data_seconds(question, dataset, data_dir, batch_size, value_range, n=50):
    """Median seconds of one minibatch from the shared pipeline."""
    args = argparse.Namespace(dataset=dataset, data_dir=data_dir)
    data = (wgan.load_images(args, "train") if question.startswith("wgan") else
            recon.load_images(args, "train", value_range))
    feed = batching.Feed(data.images, batch_size, 0, augment.for_dataset(dataset, value_range))
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        feed.next()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def script_path(question, framework):
    script = SCRIPTS.get(question, question)
    return ROOT / f"scripts_{framework}" / f"{script}_{framework}.py"


def time_script(question, framework, iters, warmup):
    dataset, data_dir, batch_size, _, flags = QUESTIONS[question]
    script = script_path(question, framework)
    with tempfile.TemporaryDirectory() as out:
        command = [sys.executable, str(script), "--train", "--iters", str(iters + warmup),
                   "--sample-every", "0", "--checkpoint-every", "0", "--log-every", "1",
                   "--out-dir", out, "--dataset", dataset, *flags]
        if data_dir:
            command += ["--data-dir", data_dir]
        with tempfile.TemporaryFile("w+") as err:
            proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=err)
            _, status, usage = os.wait4(proc.pid, 0)   # this child's own peak memory
            proc.returncode = os.waitstatus_to_exitcode(status)
            if proc.returncode:
                err.seek(0)
                raise SystemExit(f"{script.name} failed:\n{err.read()[-2000:]}")
        with open(Path(out) / "metrics.csv", newline="") as f:
            rows = list(csv.DictReader(f))
    seconds = [float(r["sec_per_iter"]) for r in rows[warmup:]]
    return statistics.median(seconds), usage.ru_maxrss / 1024, batch_size


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--questions", nargs="+", default=list(QUESTIONS), choices=list(QUESTIONS))
    parser.add_argument("--frameworks", nargs="+", default=list(FRAMEWORKS), choices=FRAMEWORKS)
    parser.add_argument("--iters", type=int, default=30, help="timed iterations per script")
    parser.add_argument("--warmup", type=int, default=5, help="iterations dropped before timing")
    args = parser.parse_args()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}")
    print(f"{'question':12} {'framework':9} {'batch':>5} {'s/iter':>8} {'data %':>7} {'peak MiB':>9}")
    for question in args.questions:
        dataset, data_dir, batch_size, value_range, _ = QUESTIONS[question]
        if data_dir and not Path(data_dir).exists():
            print(f"{question:12} skipped: {data_dir} not found")
            continue
        data = data_seconds(question, dataset, data_dir, batch_size, value_range)
        for framework in args.frameworks:
            if not script_path(question, framework).exists():
                continue
            step, peak, batch = time_script(question, framework, args.iters, args.warmup)
            print(f"{question:12} {framework:9} {batch:>5} {step:>8.4f} {100 * data / step:>6.1f}% "
                  f"{peak:>9.0f}", flush=True)


if __name__ == "__main__":
    main()
