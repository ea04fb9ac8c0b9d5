"""tools/make_answers.py: the command it runs and the one it records, the
training time it reads from a resumed run's metrics.csv, and the resumable
answer runs: killed in a step or in a checkpoint, resumed to the result of an
uninterrupted run, reported by --status, one runner at a time."""
import csv
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def make_answers():
    spec = importlib.util.spec_from_file_location("make_answers", ROOT / "tools" / "make_answers.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module



def test_digits_score_scores_samples_and_reconstructions(make_answers, tmp_path, monkeypatch):
    # the scorer itself is tested in test_score_digits.py; here: which files go to it, with which labels
    sys.path.insert(0, str(ROOT / "tools"))
    import score_digits
    calls = []
    monkeypatch.setattr(score_digits, "score_run", lambda run_dir, dataset, data_dir, **kw: (
        calls.append(("run", dataset)) or {"fd": 1.23456}))
    monkeypatch.setattr(score_digits, "score_images", lambda images, labels, dataset, data_dir, **kw: (
        calls.append(("images", images.shape, labels.tolist(), dataset)) or {"label_accuracy": 0.87654}))
    test = tmp_path / "test"
    test.mkdir()
    np = pytest.importorskip("numpy")
    np.save(test / "samples.npy", np.zeros((4, 28, 28, 1), np.uint8))
    assert make_answers.digits_score("dcgan_digits", tmp_path) == {"fd": 1.2346}
    np.save(test / "reconstructions.npy", np.zeros((3, 28, 28, 1), np.uint8))
    np.save(test / "reconstruction_labels.npy", np.array([7, 2, 1]))
    assert make_answers.digits_score("alpha_gan", tmp_path) == {"fd": 1.2346,
                                                                "reconstructions": {"label_accuracy": 0.8765}}
    assert calls[-1] == ("images", (3, 28, 28, 1), [7, 2, 1], "mnist" if make_answers.MNIST else "fashion_mnist")
    assert make_answers.digits_score("pix2pix", tmp_path) is None          # not a digits answer
    # the VAE (MNIST by its script's default, no --dataset flag) has reconstructions, no samples.npy
    (test / "samples.npy").unlink()
    calls.clear()
    assert make_answers.digits_score("vae", tmp_path) == {"reconstructions": {"label_accuracy": 0.8765}}
    assert calls == [("images", (3, 28, 28, 1), [7, 2, 1], "mnist")]
    (test / "reconstruction_labels.npy").unlink()
    assert make_answers.digits_score("vae", tmp_path) is None              # nothing to score

def test_every_answer_names_an_existing_script(make_answers):
    # PyTorch's answer is written first: every answer has it (a misspelt question fails here);
    # the ports of a question being written are skipped by the tool until they exist
    for answer in make_answers.ANSWERS:
        for framework in make_answers.FRAMEWORKS:
            script, *_ = make_answers.answer_command(answer, framework)
            if framework != "pytorch" and not (ROOT / script).is_file():
                continue
            assert (ROOT / script).is_file(), script
            if "--train" in make_answers.ANSWERS[answer][1]:
                assert int(make_answers.expected_settings(answer, framework)["iters"]) > 0


def test_a_framework_may_run_a_shorter_answer_and_says_so(make_answers, monkeypatch):
    monkeypatch.setitem(make_answers.FRAMEWORK_FLAGS, ("dcgan_digits", "chainer"), ["--iters", "300", "--width", "8"])
    monkeypatch.setitem(make_answers.ANSWERS, "dcgan_digits",
                        (["test/samples.png"], ["--train", "--test", "--dataset", "mnist", "--iters", "1000"], "dcgan"))
    *_, shown = make_answers.answer_command("dcgan_digits", "chainer")
    # the flag's value is replaced in place, a new flag is added: the command shown is the one run
    assert shown.startswith("python scripts_chainer/dcgan_chainer.py --train --test --dataset mnist --iters 300 "
                            "--width 8 --out-dir ")
    assert make_answers.expected_settings("dcgan_digits", "chainer")["iters"] == "300"
    assert make_answers.expected_settings("dcgan_digits", "pytorch")["iters"] == "1000"
    assert "--width" not in make_answers.answer_command("dcgan_digits", "pytorch")[3]


def test_resume_and_checkpoint_every_are_run_but_not_recorded(make_answers, tmp_path):
    _, run_dir, fresh, shown = make_answers.answer_command("dcgan", "keras", resume=True, checkpoint_every=250,
                                                           out_root=tmp_path)
    assert run_dir == tmp_path / "dcgan" / "keras"
    # no checkpoint yet: nothing to resume from
    assert "--resume" not in fresh
    assert fresh[fresh.index("--checkpoint-every") + 1] == "250"
    (run_dir / "checkpoints").mkdir(parents=True)
    (run_dir / "checkpoints" / "latest.json").write_text(json.dumps({"name": "iter_000250"}))
    _, _, resumed, shown_again = make_answers.answer_command("dcgan", "keras", resume=True, checkpoint_every=250,
                                                             out_root=tmp_path)
    assert resumed[0] == sys.executable and "--resume" in resumed
    # the recorded command is the plain answer run, the same either way
    assert shown == shown_again
    assert shown.startswith("python scripts_keras/dcgan_keras.py --train --test --out-dir ")
    assert "--resume" not in shown and "--checkpoint-every" not in shown
    # ... with the run folder as out/<answer>/<framework>, wherever the runs folder is
    assert shown.split("--out-dir ")[1] == "out/dcgan/keras"
    assert Path(resumed[resumed.index("--out-dir") + 1]) == run_dir


def test_train_seconds_spans_the_parts_of_a_resumed_run(make_answers, tmp_path):
    path = tmp_path / "metrics.csv"
    assert make_answers.train_seconds(path) is None
    # logged every 10 iterations; the run was resumed at 20 on a slower machine
    path.write_text("iteration,d_loss,sec_per_iter\n10,0.7,1.0\n20,0.6,1.5\n30,0.5,4.0\n35,0.5,2.0\n")
    assert make_answers.train_seconds(path) == 10 * 1.0 + 10 * 1.5 + 10 * 4.0 + 5 * 2.0


def test_checkpoint_interval_keeps_a_kill_under_ten_minutes(make_answers):
    interval = make_answers.answer_runs.checkpoint_interval
    assert interval(7.0) == 50          # the 64x64 DCGAN in Chainer: 50 x 7 s = 6 min
    assert interval(1.6) == 200         # ... in PyTorch: 5.3 min
    assert interval(0.03) == 20000      # a fast answer: only at its end
    assert interval(400.0) == 1
    assert interval(None) == make_answers.answer_runs.UNKNOWN_SPEED_EVERY


# ---- resumable answer runs --------------------------------------------------
KEY = "ae_tiny/pytorch"


@pytest.fixture
def tiny_answer(make_answers, monkeypatch, image_folder):
    """A 6-iteration AE answer on the tiny newt folder: seconds per run."""
    flags = ["--train", "--test", "--iters", "6", "--batch-size", "4", "--log-every", "1",
             "--sample-every", "0", "--data-dir", str(image_folder)]
    monkeypatch.setitem(make_answers.ANSWERS, "ae_tiny", (["test/reconstructions.png"], flags, "ae"))
    return [("ae_tiny", "pytorch")]


def _killed_at(variable, iteration):
    """The environment of a run that SIGKILLs itself (common/runs.py); only
    the subprocess gets it."""
    from common import runs
    return {**os.environ, getattr(runs, variable): str(iteration)}


def _rows(path):
    with open(path, newline="") as f:
        return [{k: v for k, v in row.items() if k != "sec_per_iter"} for row in csv.DictReader(f)]


def _same_tensors(a, b):
    import torch
    if isinstance(a, torch.Tensor):
        return torch.equal(a, b)
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same_tensors(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_same_tensors(x, y) for x, y in zip(a, b))
    return a == b


def _status_line(make_answers, capsys, runs, answers):
    capsys.readouterr()
    assert make_answers.main(["--status", "--runs-dir", str(runs), "--answers-dir", str(answers),
                              "--questions", "ae_tiny", "--frameworks", "pytorch"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:3] == ["answer", "framework", "iteration"] and len(lines) == 2, lines
    return lines[1]


def test_killed_runs_resume_to_the_uninterrupted_result(make_answers, tiny_answer, tmp_path, capsys):
    runs, answers = tmp_path / "runs" / "nested", tmp_path / "answers"   # missing folders are created
    ref_runs, ref_answers = tmp_path / "ref_runs", tmp_path / "ref_answers"
    run_dir, ref_dir = runs / "ae_tiny" / "pytorch", ref_runs / "ae_tiny" / "pytorch"
    assert make_answers.run_answers(tiny_answer, ref_runs, ref_answers, checkpoint_every=2) == 0
    assert make_answers.inspect("ae_tiny", "pytorch", ref_runs, ref_answers).describe() == "done"

    # killed after the step of iteration 3, before its metrics row: checkpoint 2 is the last
    capsys.readouterr()
    assert make_answers.run_answers(tiny_answer, runs, answers, checkpoint_every=2,
                                    env=_killed_at("KILL_IN_STEP", 3)) == 1
    assert "killed by signal 9" in capsys.readouterr().err
    state = make_answers.inspect("ae_tiny", "pytorch", runs, answers)
    assert (state.checkpoint, state.logged, state.target, state.recorded) == (2, 2, 6, False)
    assert state.describe() == "stopped, resumes from iteration 2"
    line = _status_line(make_answers, capsys, runs, answers)
    assert line.split()[:5] == ["ae_tiny", "pytorch", "2/6", f"{state.sec_per_iter:.2f}", "0"], line
    assert " no " in line and line.endswith("stopped, resumes from iteration 2")
    other_version = tmp_path / "other_version"
    shutil.copytree(runs, other_version)

    # resumed, then killed with checkpoint 4 half written: checkpoint 2 is still the last
    assert make_answers.run_answers(tiny_answer, runs, answers, checkpoint_every=2,
                                    env=_killed_at("KILL_IN_CHECKPOINT", 4)) == 1
    state = make_answers.inspect("ae_tiny", "pytorch", runs, answers)
    assert (state.checkpoint, state.logged, state.cut_short, state.recorded) == (2, 4, [4], False)
    line = _status_line(make_answers, capsys, runs, answers)
    assert "2/6 (log 4)" in line and " no " in line
    assert line.endswith("stopped, resumes from iteration 2; a kill cut checkpoint 4 short")
    assert not (answers / "results.json").exists()

    # resumed to the end: tested, recorded, the same numbers and weights as the uninterrupted run
    assert make_answers.run_answers(tiny_answer, runs, answers, checkpoint_every=2) == 0
    state = make_answers.inspect("ae_tiny", "pytorch", runs, answers)
    assert (state.checkpoint, state.cut_short, state.tested, state.recorded) == (6, [], True, True)
    assert _status_line(make_answers, capsys, runs, answers).split()[2:6] == ["6/6", f"{state.sec_per_iter:.2f}",
                                                                           "0", "min"]
    assert _rows(run_dir / "metrics.csv") == _rows(ref_dir / "metrics.csv")
    assert [r["iteration"] for r in _rows(run_dir / "metrics.csv")] == [str(i) for i in range(1, 7)]
    import torch
    final = [torch.load(d / "checkpoints" / "iter_000006" / "model.pt", weights_only=True) for d in (run_dir, ref_dir)]
    assert _same_tensors(*final)
    assert json.loads((run_dir / "checkpoints" / "iter_000006" / "meta.json").read_text()) == \
        json.loads((ref_dir / "checkpoints" / "iter_000006" / "meta.json").read_text())
    picture = "ae_tiny_pytorch_reconstructions.png"
    assert (answers / picture).read_bytes() == (ref_answers / picture).read_bytes()
    entry, ref_entry = (json.loads((d / "results.json").read_text())[KEY] for d in (answers, ref_answers))
    assert entry["test"] == ref_entry["test"]
    # the recorded command is the plain answer run, machine-independent
    assert entry["command"].startswith("python scripts_pytorch/ae_pytorch.py --train --test --iters 6 ")
    assert entry["command"].endswith(" --out-dir out/ae_tiny/pytorch")
    assert "--resume" not in entry["command"] and "--checkpoint-every" not in entry["command"]
    assert str(tmp_path / "runs") not in entry["command"]
    # a finished, recorded run is left alone
    capsys.readouterr()
    assert make_answers.run_answers(tiny_answer, runs, answers) == 0
    assert capsys.readouterr().out.strip() == f"{KEY}: done and recorded"

    # a runs folder of another checkout version (another model_info): one line naming the run, no restart
    meta_path = other_version / "ae_tiny" / "pytorch" / "checkpoints" / "iter_000002" / "meta.json"
    meta = json.loads(meta_path.read_text())
    meta["model"]["hidden"] += 1
    meta_path.write_text(json.dumps(meta))
    before = (other_version / "ae_tiny" / "pytorch" / "metrics.csv").read_text()
    capsys.readouterr()
    assert make_answers.run_answers(tiny_answer, other_version, tmp_path / "other_answers", checkpoint_every=2) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"{KEY}: checkpoint ") and "another model shape" in err[0], err
    assert (other_version / "ae_tiny" / "pytorch" / "metrics.csv").read_text() == before
    assert make_answers.inspect("ae_tiny", "pytorch", other_version, tmp_path).checkpoint == 2


def test_an_answer_given_more_iterations_continues_its_finished_run(make_answers, tiny_answer, tmp_path,
                                                                     monkeypatch, capsys):
    # A recorded 6-iteration run whose answer grows to 8 iterations goes on
    # from its checkpoint 6 (not from 0) and ends as an 8-iteration run
    # made in one go; more iterations in the folder than asked for is
    # another setting (one line, nothing touched).
    runs, answers, ref_runs = tmp_path / "runs", tmp_path / "answers", tmp_path / "ref_runs"
    assert make_answers.run_answers(tiny_answer, runs, answers, checkpoint_every=2) == 0
    flags = list(make_answers.ANSWERS["ae_tiny"][1])
    flags[flags.index("--iters") + 1] = "8"
    monkeypatch.setitem(make_answers.ANSWERS, "ae_tiny", (["test/reconstructions.png"], flags, "ae"))
    state = make_answers.inspect("ae_tiny", "pytorch", runs, answers)
    assert (state.settings, state.checkpoint, state.target) == (None, 6, 8)
    assert state.describe() == "stopped, resumes from iteration 6"
    capsys.readouterr()
    assert make_answers.run_answers(tiny_answer, runs, answers, checkpoint_every=2) == 0
    assert "--resume" in capsys.readouterr().out
    assert make_answers.run_answers(tiny_answer, ref_runs, tmp_path / "ref_answers", checkpoint_every=2) == 0
    run_dir, ref_dir = runs / "ae_tiny" / "pytorch", ref_runs / "ae_tiny" / "pytorch"
    assert _rows(run_dir / "metrics.csv") == _rows(ref_dir / "metrics.csv")
    assert [r["iteration"] for r in _rows(run_dir / "metrics.csv")] == [str(i) for i in range(1, 9)]
    entry = json.loads((answers / "results.json").read_text())[KEY]
    assert " --iters 8 " in entry["command"] and entry["test"] == json.loads(
        (tmp_path / "ref_answers" / "results.json").read_text())[KEY]["test"]
    flags[flags.index("--iters") + 1] = "4"
    state = make_answers.inspect("ae_tiny", "pytorch", runs, answers)
    assert state.settings == "iters 8, not 4"
    assert make_answers.run_answers(tiny_answer, runs, answers) == 2
    assert "started with other settings (iters 8, not 4)" in capsys.readouterr().err


def test_one_runner_at_a_time_and_a_stale_lock_is_taken_over(make_answers, tiny_answer, tmp_path, capsys):
    lock = make_answers.answer_runs.RunnerLock(tmp_path)
    assert lock.acquire()
    try:
        assert make_answers.run_answers(tiny_answer, tmp_path, tmp_path / "answers") == 1
        assert f"another runner works in {tmp_path} (pid {os.getpid()})" in capsys.readouterr().err
    finally:
        lock.release()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (tmp_path / ".lock").write_text(dead.stdout)
    assert lock.holder() is None and lock.acquire()
    lock.release()


def test_background_runner_is_detached_niced_and_logs(make_answers, tmp_path, capsys):
    runs = tmp_path / "runs"
    # the latent answers wait for their vae: the runner has nothing to train and ends at once
    assert make_answers.main(["--background", "--runs-dir", str(runs), "--answers-dir", str(tmp_path / "answers"),
                              "--questions", "vae_latent_show", "--frameworks", "pytorch"]) == 0
    assert "working in the background" in capsys.readouterr().out
    log = runs / "make_answers.log"
    deadline = time.time() + 60
    while " ends with status " not in (log.read_text() if log.exists() else "") and time.time() < deadline:
        time.sleep(0.2)
    text = log.read_text()
    assert ", nice 19, " in text and "vae_latent_show/pytorch: waits for vae/pytorch" in text, text
    assert text.rstrip().endswith("ends with status 0"), text
    assert (runs / ".lock").read_text() == ""   # released


def test_answer_slash_framework_selects_one_framework(make_answers, tmp_path, capsys):
    assert make_answers.main(["--status", "--runs-dir", str(tmp_path / "runs"), "--answers-dir", str(tmp_path),
                              "--questions", "dcgan/chainer", "gan_digits"]) == 0
    rows = [line.split()[:2] for line in capsys.readouterr().out.splitlines()[1:] if line.strip()]
    assert rows == [["dcgan", "chainer"]] + [["gan_digits", f] for f in make_answers.FRAMEWORKS]
    with pytest.raises(SystemExit) as info:
        make_answers.main(["--status", "--questions", "dcgan/theano"])
    assert info.value.code == 2 and "'dcgan/theano' is not an answer" in capsys.readouterr().err
