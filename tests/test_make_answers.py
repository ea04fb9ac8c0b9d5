"""tools/make_answers.py: the command it runs and the one it records, and
the training time it reads from a resumed run's metrics.csv."""
import importlib.util
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def make_answers():
    spec = importlib.util.spec_from_file_location("make_answers", ROOT / "tools" / "make_answers.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_answer_names_an_existing_script(make_answers):
    for answer in make_answers.ANSWERS:
        for framework in make_answers.FRAMEWORKS:
            script, *_ = make_answers.answer_command(answer, framework)
            assert (ROOT / script).is_file(), script


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
    assert shown.split("--out-dir ")[1] == str(Path(resumed[resumed.index("--out-dir") + 1]))


def test_train_seconds_spans_the_parts_of_a_resumed_run(make_answers, tmp_path):
    path = tmp_path / "metrics.csv"
    assert make_answers.train_seconds(path) is None
    # logged every 10 iterations; the run was resumed at 20 on a slower machine
    path.write_text("iteration,d_loss,sec_per_iter\n10,0.7,1.0\n20,0.6,1.5\n30,0.5,4.0\n35,0.5,2.0\n")
    assert make_answers.train_seconds(path) == 10 * 1.0 + 10 * 1.5 + 10 * 4.0 + 5 * 2.0
