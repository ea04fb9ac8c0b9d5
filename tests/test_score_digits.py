"""tools/score_digits.py: the Frechet distance and the class entropy on
known inputs, input checks, the classifier cache, the command line, the
score make_answers records, and a calibration on synthetic digits: real
digits score far better than blurred ones, noise, or one digit repeated."""
import gzip
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from common.errors import UsageError
from tests.fixtures import make_mnist_dir, mnist_arrays

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import score_digits as sd  # noqa: E402  (the module make_answers imports, so monkeypatching reaches both)

EPOCHS = 4          # the tests' classifier: 1000 synthetic digits, 4 epochs (63 steps; 100% on the fixture test split)


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    return make_mnist_dir(tmp_path_factory.mktemp("digits"), n_train=1000, n_test=300, seed=0)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("score_cache")


@pytest.fixture(scope="module")
def scorer(digits, cache):
    return sd.load_classifier("mnist", digits, cache_dir=cache, epochs=EPOCHS, quiet=True)


def held_out(n=500, seed=7):
    """Synthetic digits that are neither in the training nor in the test split."""
    images, labels = mnist_arrays(n, seed)
    return images[..., None], labels.astype(np.int64)


# ---- the numbers ------------------------------------------------------------
def test_frechet_distance_on_known_gaussians():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2000, 8)) @ rng.normal(size=(8, 8))
    stats = sd.feature_stats(x)
    assert sd.frechet_distance(*stats, *stats) == pytest.approx(0.0, abs=1e-8)
    # a shift of the mean adds its squared length, and nothing else
    shift = np.arange(8) / 4.0
    assert sd.frechet_distance(*stats, *sd.feature_stats(x + shift)) == pytest.approx(np.sum(shift ** 2), rel=1e-6)
    # diagonal covariances: sum of (sqrt(a) - sqrt(b))^2
    a, b = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 9.0])
    assert sd.frechet_distance(np.zeros(3), np.diag(a), np.ones(3), np.diag(b)) == \
        pytest.approx(3 + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2))
    # symmetric, and growing with the shift
    y = rng.normal(size=(2000, 8)) * 2
    assert sd.frechet_distance(*stats, *sd.feature_stats(y)) == \
        pytest.approx(sd.frechet_distance(*sd.feature_stats(y), *stats))
    distances = [sd.frechet_distance(*stats, *sd.feature_stats(x + s)) for s in (0.5, 1.0, 2.0)]
    assert distances == sorted(distances) and distances[0] > 0
    # singular covariances (fewer samples than features, ReLU features that stay 0): finite, 0 against itself
    z = np.maximum(rng.normal(size=(20, 64)), 0)
    z[:, :10] = 0
    assert sd.frechet_distance(*sd.feature_stats(z), *sd.feature_stats(z)) == pytest.approx(0.0, abs=1e-6)


def test_class_entropy():
    assert sd.class_entropy(np.arange(1000) % 10) == pytest.approx(1.0)
    assert sd.class_entropy(np.full(100, 3)) == 0.0
    assert sd.class_entropy([0, 1] * 50) == pytest.approx(np.log(2) / np.log(10))
    assert sd.class_entropy([0] * 90 + list(range(10))) < sd.class_entropy(np.arange(100) % 10)


# ---- inputs -----------------------------------------------------------------
def test_images_uint8_and_float_agree_and_bad_input_is_one_line():
    images, _ = held_out(8)
    unit = sd.as_unit_images(images)
    assert unit.dtype == np.float32 and unit.shape == (8, 28, 28, 1) and unit.max() == 1.0
    assert np.array_equal(sd.as_unit_images(images.astype(np.float32) / 255), unit)
    assert np.array_equal(sd.as_unit_images(images[..., 0]), unit)          # (N, 28, 28) too
    padded = np.pad(images, ((0, 0), (2, 2), (2, 2), (0, 0)))               # the WGANs' 32x32 digits
    assert np.array_equal(sd.as_unit_images(padded), unit)
    assert not np.array_equal(sd.as_unit_images(np.roll(padded, 1, axis=1)), unit)   # the centre, not any crop
    bad = {
        "shape (8, 32, 32, 3)": np.zeros((8, 32, 32, 3), np.uint8),
        "holds int64": images.astype(np.int64),
        "save (x + 1) / 2": unit * 2 - 1,
        "values from 0 to 255": images.astype(np.float32),
        "NaN": np.full((8, 28, 28, 1), np.nan, np.float32),
        "at least 2": images[:1],
    }
    for expected, array in bad.items():
        with pytest.raises(UsageError, match=expected.replace("(", r"\(").replace(")", r"\)").replace("+", r"\+")):
            sd.as_unit_images(array)
    assert sd.as_labels(np.arange(8) % 10, 8).dtype == np.int64
    for labels, expected in (([0] * 7, r"\(8,\)"), (np.full(8, 10), "outside 0..9"), (np.zeros(8), "float64")):
        with pytest.raises(UsageError, match=expected):
            sd.as_labels(np.asarray(labels), 8)


def test_bad_input_exits_2_with_one_line(tmp_path):
    np.save(tmp_path / "rgb.npy", np.zeros((4, 32, 32, 3), np.uint8))
    (tmp_path / "run" / "test").mkdir(parents=True)
    np.save(tmp_path / "pickled.npy", np.array([{"a": 1}], dtype=object))
    for argv, expected in (([str(tmp_path / "rgb.npy")], "shape (4, 32, 32, 3)"),
                           ([str(tmp_path / "run")], "has no test/samples.npy"),
                           ([str(tmp_path / "pickled.npy")], "pickled"),
                           ([str(tmp_path / "missing.npy")], "does not exist"),
                           (["--dataset", "cifar10"], "invalid choice")):
        done = subprocess.run([sys.executable, str(ROOT / "tools" / "score_digits.py"), *argv],
                              capture_output=True, text=True, cwd=tmp_path, timeout=120)
        assert done.returncode == 2, (argv, done.stderr)
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("score_digits.py: error: ") and expected in lines[0], lines
        assert done.stdout == ""


# ---- the classifier and its cache ---------------------------------------------
def test_cache_is_reused_and_other_data_trains_again(tmp_path, monkeypatch, capsys):
    import torch
    small = make_mnist_dir(tmp_path / "small", n_train=64, n_test=32, seed=3)
    first = sd.load_classifier("mnist", small, cache_dir=tmp_path / "cache", epochs=1, quiet=True)
    files = sorted((tmp_path / "cache").glob("*.pt"))
    assert len(files) == 1 and files[0].name.startswith("mnist-")
    assert not [p for p in (tmp_path / "cache").iterdir() if p.name.startswith(".")]     # no temporary left
    # seeded: the same data trains the same classifier, bit for bit
    again = sd.load_classifier("mnist", small, cache_dir=tmp_path / "other_cache", epochs=1, quiet=True)
    for (name, a), b in zip(first.net.state_dict().items(), again.net.state_dict().values()):
        assert torch.equal(a, b), name

    def no_training(*args, **kwargs):
        raise AssertionError("trained although the cache holds this classifier")

    with monkeypatch.context() as patch:
        patch.setattr(sd, "_train", no_training)
        cached = sd.load_classifier("mnist", small, cache_dir=tmp_path / "cache", epochs=1, quiet=True)
    assert cached.fd_floor == first.fd_floor and cached.test_accuracy == first.test_accuracy
    images, _ = held_out(16)
    assert cached.score(images) == first.score(images)
    # other data (one image changed), or other settings: another classifier
    images_file = small / "train-images-idx3-ubyte.gz"
    make_mnist_dir(tmp_path / "changed", n_train=64, n_test=32, seed=3)
    raw = bytearray(gzip.decompress((tmp_path / "changed" / images_file.name).read_bytes()))
    raw[-1] ^= 0xFF
    (tmp_path / "changed" / images_file.name).write_bytes(gzip.compress(bytes(raw)))
    sd.load_classifier("mnist", tmp_path / "changed", cache_dir=tmp_path / "cache", epochs=1, quiet=True)
    assert len(list((tmp_path / "cache").glob("*.pt"))) == 2
    sd.load_classifier("mnist", small, cache_dir=tmp_path / "cache", epochs=2, quiet=True)
    assert len(list((tmp_path / "cache").glob("*.pt"))) == 3
    # a damaged cache file is trained again, with one line saying so
    files[0].write_bytes(b"not a torch file")
    capsys.readouterr()
    sd.load_classifier("mnist", small, cache_dir=tmp_path / "cache", epochs=1, quiet=True)
    assert "cannot be loaded" in capsys.readouterr().err
    assert sd.load_classifier("mnist", small, cache_dir=tmp_path / "cache", epochs=1, quiet=True).fd_floor == \
        first.fd_floor


def test_classifier_learns_the_fixture_digits(scorer):
    assert scorer.test_accuracy >= 0.95
    assert 0 <= scorer.fd_floor < 5


# ---- calibration ------------------------------------------------------------
def test_real_digits_score_far_better_than_blurred_noise_or_one_digit(scorer):
    real, labels = held_out()
    blurred = np.stack([cv2.GaussianBlur(image, (0, 0), 1.0) for image in real])[..., None]
    noise = np.random.default_rng(0).integers(0, 256, real.shape).astype(np.uint8)
    one = np.repeat(real[labels == 3][:1], len(real), axis=0)
    scores = {name: scorer.score(images) for name, images in
              (("real", real), ("blurred", blurred), ("noise", noise), ("one", one))}
    good = scores["real"]
    assert good["fd"] < 3 * max(scorer.fd_floor, 0.5)
    assert good["class_entropy"] > 0.97 and good["mean_confidence"] > 0.9
    for name in ("blurred", "noise", "one"):
        assert scores[name]["fd"] > 50 * good["fd"], (name, scores[name]["fd"], good["fd"])
        assert scores[name]["class_entropy"] < good["class_entropy"] - 0.2, (name, scores[name])
    assert scores["one"]["class_entropy"] == 0.0 and scores["one"]["class_counts"][3] == len(real)
    assert scores["noise"]["class_entropy"] < 0.5
    # blurred digits look less like any digit; noise need not: a classifier is confident on
    # anything far from its data (on real MNIST noise gets 1.0), so FD and entropy catch it
    assert scores["blurred"]["mean_confidence"] < good["mean_confidence"] - 0.1, scores["blurred"]
    # conditional samples: the intended labels are recognised, wrong ones are not
    assert scorer.score(real, labels)["label_accuracy"] > 0.95
    assert scorer.score(real, (labels + 1) % 10)["label_accuracy"] < 0.05
    assert "label_accuracy" not in good


# ---- run folders, the command line, make_answers ------------------------------
def _run_folder(root, digits, images, labels=None, dataset="mnist"):
    (root / "test").mkdir(parents=True)
    (root / "config.json").write_text(json.dumps({"question": "gan", "dataset": dataset,
                                                  "data_dir": str(digits)}))
    np.save(root / "test" / "samples.npy", images)
    if labels is not None:
        np.save(root / "test" / "labels.npy", labels)
    return root


def test_run_folder_and_npy_files_on_the_command_line(scorer, digits, cache, tmp_path, capsys):
    real, labels = held_out(200)
    run = _run_folder(tmp_path / "run", digits, real, labels)
    from_run = sd.score_run(run, cache_dir=cache, epochs=EPOCHS)
    assert from_run == scorer.score(real, labels)
    assert from_run["samples"] == 200 and from_run["label_accuracy"] > 0.95
    np.save(tmp_path / "u8.npy", real)
    np.save(tmp_path / "float.npy", real.astype(np.float32) / 255)
    np.save(tmp_path / "labels.npy", labels)
    common = ["--data-dir", str(digits), "--cache-dir", str(cache), "--epochs", str(EPOCHS)]
    assert sd.main([str(tmp_path / "u8.npy"), str(tmp_path / "float.npy"), str(run), *common,
                    "--json", str(tmp_path / "scores.json")]) == 0
    out = capsys.readouterr().out
    assert "classifier: MNIST, 1000 training digits" in out and "FD floor" in out
    table = [line.split() for line in out.splitlines() if line.startswith(str(tmp_path))]
    assert [row[0] for row in table] == [str(tmp_path / "u8.npy"), str(tmp_path / "float.npy"), str(run)]
    assert table[0][-1] == "-" and table[2][-1].endswith("%")
    saved = json.loads((tmp_path / "scores.json").read_text())
    u8, flt = saved["scores"][str(tmp_path / "u8.npy")], saved["scores"][str(tmp_path / "float.npy")]
    assert u8 == flt                                    # uint8 0..255 and float [0, 1]: the same numbers
    assert u8 == {k: v for k, v in from_run.items() if k != "label_accuracy"}
    assert saved["classifiers"][0]["test_accuracy"] == scorer.test_accuracy
    # --json -: only JSON on stdout; --labels for a conditional .npy
    assert sd.main([str(tmp_path / "u8.npy"), "--labels", str(tmp_path / "labels.npy"), *common, "--json", "-"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["scores"][str(tmp_path / "u8.npy")]["label_accuracy"] == from_run["label_accuracy"]
    # a run of another data set than asked for
    with pytest.raises(UsageError, match="trained on mnist, not fashion_mnist"):
        sd.main([str(run), "--dataset", "fashion_mnist", *common])
    with pytest.raises(UsageError, match="single .npy"):
        sd.main([str(run), "--labels", str(tmp_path / "labels.npy"), *common])


@pytest.fixture
def make_answers():
    spec = importlib.util.spec_from_file_location("make_answers_for_score", ROOT / "tools" / "make_answers.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_make_answers_records_the_score_of_a_digits_answer(make_answers, scorer, digits, cache, tmp_path,
                                                            monkeypatch, capsys):
    monkeypatch.setattr(sd, "CACHE_DIR", cache)          # the module classifier, not one in out/
    monkeypatch.setattr(sd, "EPOCHS", EPOCHS)
    flags = ["--train", "--test", "--dataset", "mnist", "--data-dir", str(digits)]
    monkeypatch.setitem(make_answers.ANSWERS, "gan_tiny_digits", (["test/samples.png"], flags, "gan"))
    monkeypatch.setitem(make_answers.ANSWERS, "gan_tiny_imori", (["test/samples.png"], ["--train", "--test"], "gan"))
    real, _ = held_out(200)
    answers = tmp_path / "answers"
    answers.mkdir()
    for answer in ("gan_tiny_digits", "gan_tiny_imori"):
        run = _run_folder(tmp_path / answer, digits, real)
        (run / "test" / "samples.png").write_bytes(b"png")
        (run / "test" / "metrics.json").write_text(json.dumps({"samples": 200}))
        make_answers.record(answer, "pytorch", run, answers, 12.0)
    results = json.loads((answers / "results.json").read_text())
    score = results["gan_tiny_digits/pytorch"]["score"]
    expected = scorer.score(real)
    assert score["fd"] == round(expected["fd"], 4) and score["class_entropy"] == round(expected["class_entropy"], 4)
    assert score["samples"] == 200 and score["fd_floor"] == round(scorer.fd_floor, 4)
    assert "score" not in results["gan_tiny_imori/pytorch"]          # not a digits answer
    # data that cannot be read: recorded without a score, one line says why
    monkeypatch.setitem(make_answers.ANSWERS, "gan_tiny_digits",
                        (["test/samples.png"], [*flags[:-1], str(tmp_path / "nowhere")], "gan"))
    capsys.readouterr()
    make_answers.record("gan_tiny_digits", "pytorch", tmp_path / "gan_tiny_digits", answers, 12.0)
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and out[0].startswith("gan_tiny_digits: no score: data folder") and "nowhere" in out[0]
    assert "score" not in json.loads((answers / "results.json").read_text())["gan_tiny_digits/pytorch"]


def test_a_gan_run_folder_is_scored_as_written(digits, cache, tmp_path, capsys):
    """The contract with the GAN answers: a run folder their test wrote (a
    one-iteration dry run on the fixture digits) scores through its config.json."""
    from tests.conftest import load_script
    run = tmp_path / "run"
    load_script("gan", "pytorch").main(["--dry-run", "--dataset", "mnist", "--data-dir", str(digits),
                                        "--out-dir", str(run), "--batch-size", "16"])
    capsys.readouterr()
    assert sd.main([str(run), "--cache-dir", str(cache), "--epochs", str(EPOCHS), "--json", "-"]) == 0
    score = json.loads(capsys.readouterr().out)["scores"][str(run)]
    assert score["samples"] == 1000 and score["dataset"] == "mnist" and "label_accuracy" not in score
    assert score["fd"] > 50 * score["fd_floor"]                      # one iteration of training: noise
