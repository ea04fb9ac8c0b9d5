"""Re-make the committed answer pictures and the README's results table.

An answer run (one answer in one framework) lives in
<runs-dir>/<answer>/<framework>/ (default out/; a folder outside the work
tree, such as ~/answer-runs, keeps runs of many hours from one session to the
next).  For each selected run the tool does what is left: it starts the
answer script with the answer's settings (--train --test), or continues the
run from its last checkpoint (resuming is bit-for-bit), or tests a trained
run.  Only a run that has reached its iterations and been tested is recorded:
its pictures are copied to answers_image/<answer>_<framework>_<picture>.png
and its test numbers, times and command go into answers_image/results.json.
A finished, recorded run is left alone; --fresh trains it again.

    python tools/make_answers.py                       # every answer x framework, in out/
    python tools/make_answers.py --questions ae convae --frameworks pytorch
    python tools/make_answers.py --runs-dir ~/answer-runs --questions dcgan --frameworks chainer --background
    python tools/make_answers.py --runs-dir ~/answer-runs --status

One runner works in a runs folder at a time (<runs-dir>/.lock); the others
stop at once.  A run folder that a training process is writing (started by
hand, say) is skipped.  Runs checkpoint every ~10 minutes of their measured
speed, so a kill loses little.  gan_digits and dcgan_digits are the GAN and
the DCGAN on 28x28 digits (the class-API document's configuration; the
MNIST subset offline, Fashion-MNIST with internet), both for the
questions' 5000 iterations.
"""
import argparse
import json
import os
import platform
import re
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import answer_runs  # noqa: E402  (run folders, the lock, the background launch)
from answer_runs import train_seconds  # noqa: E402,F401  (results.json's train_seconds)

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
                     ["--train", "--test", *DIGITS], "dcgan"),
    # The Conditional GAN on digits, for 5000 of the question's 20000 iterations (README: why)
    "cgan": (["test/grid.png", "test/style.png", "test/interpolation.png", "progress.png", "losses.png"],
             ["--train", "--test", *DIGITS, "--iters", "5000"]),
    # The WGANs on digits padded to 32x32: the clipped WGAN for 5000 iterations (at 2000 its samples
    # were strokes, FD 256), WGAN-GP for 1000 at width 32
    # (tools/benchmark.py; README: the GPU defaults are CIFAR-10 and 100,000 iterations)
    "wgan": (["test/samples.png", "test/interpolation.png", "progress.png", "wasserstein.png", "critic.png",
              "clip_fraction.png", "losses.png"],
             ["--train", "--test", *DIGITS, "--iters", "5000"]),
    "wgan_gp": (["test/samples.png", "test/interpolation.png", "progress.png", "wasserstein.png", "critic.png",
                 "gradient_norm.png", "losses.png"],
                ["--train", "--test", *DIGITS, "--iters", "1000", "--width", "32"]),
    # pix2pix on the newt photos (photo -> mask), the L1-only U-Net (the paper's ablation) and
    # pix2pix-GP, for 1000 of the question's 5000 iterations (1000 passes over the 16 training pairs;
    # README: why)
    "pix2pix": (["test/predictions.png", "losses.png", "l1.png", "d_probabilities.png"],
                ["--train", "--test", "--iters", "1000"]),
    "pix2pix_l1": (["test/predictions.png", "l1.png"], ["--train", "--test", "--gan-weight", "0", "--iters", "1000"],
                   "pix2pix"),
    "pix2pix_gp": (["test/predictions.png", "losses.png", "l1.png", "d_probabilities.png", "gradient_norm.png"],
                   ["--train", "--test", "--iters", "1000"]),
    # alpha-GAN on digits, for 2000 of the original's 100000 iterations (README: why)
    "alpha_gan": (["test/reconstructions.png", "test/samples.png", "test/interpolation.png", "test/codes.png",
                   "progress.png", "losses.png", "d_probabilities.png", "c_probabilities.png"],
                  ["--train", "--test", *DIGITS, "--iters", "2000"]),
}
# Where one framework's run is shorter than the answer's (its step is slower than a
# session allows; the README says so): (answer, framework) -> flags that replace the
# answer's flags of the same name.  Empty: every answer run has its answer's flags.
FRAMEWORK_FLAGS = {}
# Test-only answers (no --train) load the checkpoint of another answer's run (--vae-dir).
NEEDS = {"vae_latent_show": "vae", "vae_latent_change": "vae"}


def answer_flags(answer, framework):
    """The flags of one answer run: the answer's, with FRAMEWORK_FLAGS' values in place."""
    flags = list(ANSWERS[answer][1])
    extra = FRAMEWORK_FLAGS.get((answer, framework), [])
    for flag, value in zip(extra[::2], extra[1::2]):
        if flag in flags:
            flags[flags.index(flag) + 1] = value
        else:
            flags += [flag, value]
    return flags


def _answer_arg(text):
    """``answer`` or ``answer/framework`` -> (answer, framework or None)."""
    answer, _, framework = text.partition("/")
    if answer not in ANSWERS or (framework and framework not in FRAMEWORKS):
        raise argparse.ArgumentTypeError(f"{text!r} is not an answer ({', '.join(ANSWERS)}), optionally "
                                         f"followed by /framework ({', '.join(FRAMEWORKS)})")
    return answer, framework or None


def _out_dir_arg(path):
    """A run folder as a script argument: relative inside the repository."""
    path = Path(os.path.abspath(path))
    return os.path.relpath(path, ROOT) if path.is_relative_to(ROOT) else str(path)


def answer_command(answer, framework, *, resume=False, checkpoint_every=None, out_root=None, test_only=False):
    """(script, run folder, command to run, command to show) of one answer.

    ``--resume`` (added only where the run folder has a checkpoint) and
    ``--checkpoint-every`` change when a run is saved, not what it computes
    (resume is bit-for-bit: tests/test_answers_gan.py), so the command shown
    in results.json leaves them out, and shows the run folder as
    ``out/<answer>/<framework>`` wherever the runs folder is: it is the one
    that remakes the answer.  ``test_only``: test the trained run (no --train)."""
    _, _, *script_question = ANSWERS[answer]
    flags = answer_flags(answer, framework)
    question = script_question[0] if script_question else answer
    script = f"scripts_{framework}/{question}_{framework}.py"
    out_root = Path(out_root or ROOT / "out")
    run_dir = out_root / answer / framework
    shown = " ".join(["python", script, *flags, "--out-dir", f"out/{answer}/{framework}"])
    shown = shown.replace(str(ROOT.parent), "..")
    if test_only:
        flags = [flag for flag in flags if flag != "--train"]
    command = [sys.executable, script, *flags, "--out-dir", _out_dir_arg(run_dir)]
    if answer in NEEDS:
        command += ["--vae-dir", _out_dir_arg(out_root / NEEDS[answer] / framework)]
    if resume and not test_only and (run_dir / "checkpoints" / "latest.json").exists():
        command.append("--resume")
    if checkpoint_every and not test_only:
        command += ["--checkpoint-every", str(checkpoint_every)]
    return script, run_dir, command, shown


def _script_default(script, pattern):
    """A default of the script's build_parser call, read from its source or
    from the answer it builds on (dcgan_<fw> imports gan_<fw>)."""
    path = ROOT / script
    text = path.read_text()
    sources = [text] + [(path.parent / f"{name}.py").read_text() for name in re.findall(r"^import (\w+)", text, re.M)
                        if (path.parent / f"{name}.py").is_file()]
    return next((m.group(1) for m in map(lambda s: re.search(pattern, s), sources) if m), None)


def expected_settings(answer, framework):
    """The settings of the answer's run that config.json must show: its
    flags' values (but --data-dir, which moves with the machine), and the
    script's default --iters and --dataset where the flags leave them."""
    script, *_ = answer_command(answer, framework)
    flags = answer_flags(answer, framework)
    settings = {flag[2:].replace("-", "_"): value for flag, value in zip(flags, flags[1:])
                if flag.startswith("--") and not value.startswith("--") and flag != "--data-dir"}
    settings.setdefault("iters", _script_default(script, r"\biters=(\d+)"))
    settings.setdefault("dataset", _script_default(script, r'\bdataset="(\w+)"'))
    return {name: value for name, value in settings.items() if value is not None}


def picture_paths(answer, framework, run_dir, answers_dir):
    """{picture in the run folder: its copy in the answers folder}"""
    return {Path(run_dir) / name: Path(answers_dir) / f"{answer}_{framework}_{Path(name).stem}{Path(name).suffix}"
            for name in ANSWERS[answer][0]}


def read_results(answers_dir):
    return answer_runs.read_json(Path(answers_dir) / "results.json") or {}


def inspect(answer, framework, runs_dir, answers_dir):
    """The RunState of one answer run (see tools/answer_runs.py)."""
    _, run_dir, _, _ = answer_command(answer, framework, out_root=runs_dir)
    settings = expected_settings(answer, framework)
    test_only = "--train" not in answer_flags(answer, framework)
    state = answer_runs.RunState(answer, framework, run_dir, target=None if test_only else int(settings["iters"]))
    needed = inspect(NEEDS[answer], framework, runs_dir, answers_dir) if answer in NEEDS else None
    answer_runs.inspect_run(state, picture_paths(answer, framework, run_dir, answers_dir),
                            read_results(answers_dir).get(state.key), needed)
    if not test_only:
        state.settings = answer_runs.compare_settings(answer_runs.read_json(run_dir / "config.json"), settings)
    return state


def _cores():
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def digits_score(answer, run_dir, framework=None):
    """tools/score_digits.py's numbers for an answer on digits (--dataset, or
    the script's default, mnist or fashion_mnist): of its test/samples.npy (a
    GAN's samples) and, under "reconstructions", of its
    test/reconstructions.npy with their classes (alpha-GAN's and the VAE's:
    do the reconstructions keep the digit?); floats rounded.  None for other
    answers, without either file, or where the scorer cannot run (no
    PyTorch, the data missing: one line says why)."""
    flags = answer_flags(answer, framework)
    value = {flag: next_ for flag, next_ in zip(flags, flags[1:])}
    dataset = value.get("--dataset") or expected_settings(answer, framework or FRAMEWORKS[0]).get("dataset")
    test_dir = Path(run_dir) / "test"
    samples, reconstructions = test_dir / "samples.npy", test_dir / "reconstructions.npy"
    labels = test_dir / "reconstruction_labels.npy"
    has_reconstructions = reconstructions.is_file() and labels.is_file()
    if dataset not in ("mnist", "fashion_mnist") or not (samples.is_file() or has_reconstructions):
        return None
    import score_digits   # NumPy and common/ only; PyTorch is imported when the classifier is needed

    def rounded(numbers):
        return {key: round(v, 4) if isinstance(v, float) else v for key, v in numbers.items()}
    try:
        score = (rounded(score_digits.score_run(run_dir, dataset, value.get("--data-dir"), download=False))
                 if samples.is_file() else {})
        if has_reconstructions:
            score["reconstructions"] = rounded(score_digits.score_images(
                score_digits.load_npy(reconstructions), score_digits.load_npy(labels, "labels file"), dataset,
                value.get("--data-dir"), where=str(reconstructions), download=False))
    except (ImportError, score_digits.UsageError) as err:
        print(f"{answer}: no score: {err}")
        return None
    return score


def record(answer, framework, run_dir, answers_dir, seconds):
    """Copy the run's pictures and write its results.json entry (with the
    digits score of a GAN answer on digits)."""
    for source, target in picture_paths(answer, framework, run_dir, answers_dir).items():
        shutil.copyfile(source, target)
    metrics = json.loads((Path(run_dir) / "test" / "metrics.json").read_text())
    for key in ("per_image", "class_names", "grid", "line", "scatter"):
        metrics.pop(key, None)
    score = digits_score(answer, run_dir, framework)
    path = Path(answers_dir) / "results.json"
    results = read_results(answers_dir)   # re-read: another make_answers may have added its runs meanwhile
    results[f"{answer}/{framework}"] = {
        "command": answer_command(answer, framework)[3],
        "seconds": None if seconds is None else round(seconds, 1),
        "train_seconds": train_seconds(Path(run_dir) / "metrics.csv"),
        "test": metrics, "machine": f"{platform.machine()}, {platform.python_version()}, "
                                    f"{_cores()} cores"}
    if score:
        results[f"{answer}/{framework}"]["score"] = score
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)


def _recorded_speed(state, answers_dir):
    """Seconds per iteration of the answer's last recorded run, if any."""
    entry = read_results(answers_dir).get(state.key) or {}
    seconds = entry.get("train_seconds") or entry.get("seconds")
    return seconds / state.target if seconds and state.target else None


def advance(answer, framework, runs_dir, answers_dir, *, checkpoint_every=None, fresh=False, env=None,
            lock_fd=None):
    """Take one answer run as far as it goes: start, resume or test it, then
    record it once it is finished.  Returns the exit status (0 also when the
    run waits or is skipped)."""
    state = inspect(answer, framework, runs_dir, answers_dir)
    if state.busy:
        print(f"{state.key}: skipped: pid {', '.join(map(str, state.busy))} is training in {state.run_dir}")
        return 0
    if state.waits_for:
        print(f"{state.key}: waits for {state.waits_for}")
        return 0
    if state.settings and not fresh:
        print(f"{state.key}: {state.run_dir} was started with other settings ({state.settings}); "
              "move it away, or --fresh trains it again", file=sys.stderr)
        return 2
    command = None
    if state.target is not None and (fresh or not state.trained):
        answer_runs.clean_cut_short(state.run_dir)
        every = checkpoint_every or answer_runs.checkpoint_interval(state.sec_per_iter or
                                                                    _recorded_speed(state, answers_dir))
        command = answer_command(answer, framework, resume=not fresh, checkpoint_every=every, out_root=runs_dir)[2]
    elif fresh or not state.tested:
        command = answer_command(answer, framework, out_root=runs_dir, test_only=True)[2]
    seconds = None
    if command:
        print("$", " ".join(["python", *command[1:]]), flush=True)
        t0 = time.time()
        status, message = answer_runs.run_script(command, ROOT, env=env, pass_fds=(lock_fd,) if lock_fd else ())
        seconds = time.time() - t0
        if status == 2 and message:       # bad input, e.g. a checkpoint of another model shape
            print(f"{state.key}: {message}", file=sys.stderr)
            return 2
        if status:
            after = inspect(answer, framework, runs_dir, answers_dir)
            how = f"killed by signal {-status}" if status < 0 else f"failed with status {status}"
            print(f"{state.key}: {how}{': ' + message if message else ''}; the next run resumes from "
                  f"checkpoint {after.checkpoint or 'none'}", file=sys.stderr)
            return 1
    state = inspect(answer, framework, runs_dir, answers_dir)
    if not (state.trained and state.tested):
        print(f"{state.key}: not finished: {state.describe()}", file=sys.stderr)
        return 1
    if state.recorded and command is None:
        print(f"{state.key}: done and recorded")
        return 0
    record(answer, framework, state.run_dir, answers_dir, seconds)
    print(f"{state.key}: recorded into {answers_dir}")
    return 0


def run_answers(selection, runs_dir, answers_dir, *, checkpoint_every=None, fresh=False, env=None):
    """Advance the selected (answer, framework) runs one after the other,
    holding the runs folder's lock; stops at the first failure."""
    runs_dir, answers_dir = Path(runs_dir), Path(answers_dir)
    runs_dir.mkdir(parents=True, exist_ok=True)
    answers_dir.mkdir(parents=True, exist_ok=True)
    lock = answer_runs.RunnerLock(runs_dir)
    if not lock.acquire():
        print(f"make_answers: another runner works in {runs_dir} (pid {lock.holder() or 'unknown'}); "
              "see --status", file=sys.stderr)
        return 1
    try:
        # test-only answers last: they test the checkpoint of a run made before them
        for answer, framework in sorted(selection, key=lambda run: run[0] in NEEDS):
            status = advance(answer, framework, runs_dir, answers_dir, checkpoint_every=checkpoint_every,
                             fresh=fresh, env=env, lock_fd=lock.fd)
            if status:
                return status
    finally:
        lock.release()
    return 0


def status(selection, runs_dir, answers_dir, everything):
    """The --status lines: the selected runs whose folder exists (all of the
    selection when ``everything``), and the runner working there, if any."""
    states = [inspect(a, f, runs_dir, answers_dir) for a, f in selection]
    states = [s for s in states if everything or s.run_dir.is_dir()]
    lines = answer_runs.status_lines(states) if states else [f"no answer runs in {runs_dir}"]
    holder = answer_runs.RunnerLock(runs_dir).holder()
    if holder:
        lines.append(f"runner: pid {holder}, log {Path(runs_dir) / answer_runs.LOG_NAME}")
    return lines


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = argparse.ArgumentParser(prog="make_answers.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--questions", nargs="+", type=_answer_arg, metavar="ANSWER",
                        help=f"answers to make (default: all): {', '.join(ANSWERS)}; ANSWER/FRAMEWORK "
                             "(e.g. dcgan/chainer) selects one framework of an answer")
    parser.add_argument("--frameworks", nargs="+", choices=FRAMEWORKS, metavar="FRAMEWORK",
                        help=f"frameworks (default: all): {', '.join(FRAMEWORKS)}")
    parser.add_argument("--runs-dir", metavar="DIR",
                        help="folder of the run folders <answer>/<framework>/, created if missing "
                             "(default: out/ in the repository)")
    parser.add_argument("--answers-dir", metavar="DIR",
                        help="where pictures and results.json are recorded (default: answers_image/)")
    parser.add_argument("--status", action="store_true",
                        help="print one line per answer run (iteration reached / target, seconds per "
                             "iteration so far, time left, recorded or not, state) and stop; lists the runs "
                             "whose folder exists, or all of --questions/--frameworks")
    parser.add_argument("--background", action="store_true",
                        help="work detached from the terminal at the lowest priority (nice 19), appending "
                             "to <runs-dir>/make_answers.log")
    parser.add_argument("--fresh", action="store_true",
                        help="train the selected runs again from iteration 0, instead of continuing them "
                             "or leaving finished ones alone")
    parser.add_argument("--checkpoint-every", type=int, metavar="N",
                        help="checkpoint every N iterations (default: the largest 1, 2 or 5 x 10^k "
                             "iterations that take at most 10 minutes at the run's measured or recorded "
                             f"speed; {answer_runs.UNKNOWN_SPEED_EVERY} while unknown)")
    parser.add_argument("--resume", action="store_true", help=argparse.SUPPRESS)    # the default now
    parser.add_argument("--detached", action="store_true", help=argparse.SUPPRESS)  # set by --background
    args = parser.parse_args(argv)
    selection = [(a, f) for a, only in args.questions or [(a, None) for a in ANSWERS]
                 for f in args.frameworks or FRAMEWORKS if only in (None, f)]
    # a question not yet written in some framework (a port under way) has no run there
    missing = [f"{a}/{f}" for a, f in selection if not (ROOT / answer_command(a, f)[0]).is_file()]
    selection = [(a, f) for a, f in selection if f"{a}/{f}" not in missing]
    if missing and not selection:
        parser.error(f"no script for {', '.join(missing)} ({answer_command(*missing[0].split('/'))[0]} "
                     "is not written yet)")
    if missing and args.questions:
        print(f"make_answers: skipping {', '.join(missing)}: no script yet", file=sys.stderr)
    runs_dir = Path(os.path.abspath(os.path.expanduser(args.runs_dir))) if args.runs_dir else ROOT / "out"
    answers_dir = (Path(os.path.abspath(os.path.expanduser(args.answers_dir))) if args.answers_dir
                   else ROOT / "answers_image")
    if args.status:
        print("\n".join(status(selection, runs_dir, answers_dir, bool(args.questions or args.frameworks))))
        return 0
    if args.background:
        holder = answer_runs.RunnerLock(runs_dir).holder()
        if holder:
            print(f"make_answers: a runner already works in {runs_dir} (pid {holder}); see --status",
                  file=sys.stderr)
            return 1
        rest = [a for a in argv if a != "--background"]
        pid, log = answer_runs.launch_background([str(Path(__file__).resolve()), *rest, "--runs-dir",
                                                  str(runs_dir), "--answers-dir", str(answers_dir)], runs_dir)
        print(f"make_answers: working in the background (pid {pid}, nice 19); log: {log}")
        print(f"progress: python tools/make_answers.py --status --runs-dir {runs_dir}")
        return 0
    if args.detached:
        sys.stdout.reconfigure(line_buffering=True)   # the log in the order things happen
        print(f"\n== make_answers pid {os.getpid()}, nice {os.nice(19)}, {time.strftime('%Y-%m-%d %H:%M:%S')}",
              flush=True)
    code = run_answers(selection, runs_dir, answers_dir, checkpoint_every=args.checkpoint_every, fresh=args.fresh)
    print("\n" + "\n".join(status(selection, runs_dir, answers_dir, False)))
    if args.detached:
        print(f"== make_answers pid {os.getpid()} ends with status {code}", flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
