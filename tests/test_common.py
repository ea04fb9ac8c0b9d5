"""common/: augmentation, minibatches, CLI, run folders and checkpoints."""
import argparse
import json
import os

import numpy as np
import pytest

from common import augment, batching, cli, runs
from common.errors import UsageError


def _images(n=4, h=16, w=16, c=3, seed=0):
    return np.random.default_rng(seed).uniform(-1, 1, (n, h, w, c)).astype(np.float32)


# ---- augmentation ----
def test_rotation_by_90_degrees_equals_rot90():
    x = _images()
    turned = augment.rotate(x, 90.0)
    np.testing.assert_allclose(turned, np.rot90(x, k=1, axes=(1, 2)), atol=1e-5)
    np.testing.assert_allclose(augment.rotate(x, -90.0), np.rot90(x, k=-1, axes=(1, 2)), atol=1e-5)
    np.testing.assert_allclose(augment.rotate(x, 180.0), np.rot90(x, k=2, axes=(1, 2)), atol=1e-5)


def test_arbitrary_rotation_really_rotates():
    img = np.full((1, 33, 33, 1), -1.0, np.float32)
    img[0, 16, 16:30] = 1.0  # a bar pointing right from the centre
    turned = augment.rotate(img, 45.0, border_value=-1.0)[0, ..., 0]
    # counter-clockwise 45 degrees: the bar now points up and to the right
    assert turned[16 - 7, 16 + 7] > 0.5
    assert turned[16, 26] < 0


@pytest.mark.parametrize("channels", [1, 3])
def test_rotation_fills_uncovered_corners_in_every_channel(channels):
    x = np.full((1, 32, 32, channels), 0.5, np.float32)
    turned = augment.rotate(x, 45.0, border_value=-1.0)
    np.testing.assert_array_equal(turned[0, 0, 0], np.full(channels, -1.0, np.float32))
    np.testing.assert_array_equal(turned[0, -1, -1], np.full(channels, -1.0, np.float32))
    np.testing.assert_allclose(turned[0, 16, 16], 0.5)


def test_flips_flip():
    x = _images()
    np.testing.assert_array_equal(augment.hflip(x), x[:, :, ::-1])
    np.testing.assert_array_equal(augment.vflip(x), x[:, ::-1])


def test_crop_keeps_shape_and_shifts_content():
    x = _images(n=2)
    out = augment.pad_and_crop(x, 4, np.array([[4, 4], [0, 8]]), fill=-1.0)
    assert out.shape == x.shape
    np.testing.assert_array_equal(out[0], x[0])               # centre crop = identity
    np.testing.assert_array_equal(out[1, 4:, :12], x[1, :12, 4:])  # shifted down 4, left 4
    assert np.all(out[1, :4] == -1.0)


def test_augmenter_is_seeded_and_changes_images():
    x = _images(n=8)
    aug = augment.Augmenter(("hflip", "vflip", "rotate", "crop"))
    a = aug(x, np.random.default_rng(5))
    b = aug(x, np.random.default_rng(5))
    np.testing.assert_array_equal(a, b)
    assert a.shape == x.shape and not np.allclose(a, x)
    with pytest.raises(ValueError):
        augment.Augmenter(("shear",))


def test_paired_augmentation_keeps_mask_aligned_and_unblended():
    rng = np.random.default_rng(0)
    n, size = 16, 32
    masks = np.zeros((n, size, size, 1), np.float32)
    images = np.full((n, size, size, 3), -1.0, np.float32)
    for i in range(n):  # a bright square in the photo exactly where the mask is 1
        top, left = rng.integers(4, 18, 2)
        masks[i, top:top + 10, left:left + 10] = 1.0
        images[i, top:top + 10, left:left + 10] = 1.0
    aug = augment.Augmenter(("hflip", "vflip", "rotate", "crop"), fill=-1.0)
    out_images, out_masks = aug.pair(images, masks, np.random.default_rng(1))
    assert set(np.unique(out_masks)) <= {0.0, 1.0}  # nearest neighbour: labels never blended
    bright = out_images[..., 0] > 0.5
    inside = out_masks[..., 0] == 1
    # the photo's square and the mask overlap almost everywhere (bilinear edges differ)
    agreement = (bright == inside).mean()
    assert agreement > 0.97, agreement
    assert not np.array_equal(out_masks, masks)


def test_dataset_defaults():
    assert set(augment.for_dataset("imori").ops) == {"hflip", "vflip", "rotate"}
    assert set(augment.for_dataset("cifar10").ops) == {"hflip", "crop"}
    assert augment.for_dataset("mnist") is None


# ---- minibatches ----
def test_each_epoch_hands_out_every_sample_once_and_reshuffles():
    it = batching.Minibatches(10, 5, np.random.default_rng(0))
    epoch1 = np.concatenate([next(it), next(it)])
    epoch2 = np.concatenate([next(it), next(it)])
    assert sorted(epoch1) == list(range(10)) == sorted(epoch2)
    assert not np.array_equal(epoch1, epoch2)


def test_uneven_batches_never_drop_or_repeat_within_an_epoch():
    it = batching.Minibatches(10, 4, np.random.default_rng(1))
    stream = np.concatenate([next(it) for _ in range(15)])  # 60 = 6 epochs
    for e in range(6):
        assert sorted(stream[e * 10:(e + 1) * 10]) == list(range(10))


def test_minibatch_state_resumes_the_same_stream():
    a = batching.Minibatches(7, 3, np.random.default_rng(2))
    for _ in range(4):
        next(a)
    state = json.loads(json.dumps(a.state_dict()))
    expected = [next(a) for _ in range(5)]
    b = batching.Minibatches(7, 3, np.random.default_rng(99))
    b.load_state_dict(state)
    for want in expected:
        np.testing.assert_array_equal(next(b), want)


def test_feed_resumes_augmentation_too():
    x = _images(n=6)
    feed = batching.Feed(x, 4, seed=3, augmenter=augment.Augmenter())
    feed.next()
    state = json.loads(json.dumps(feed.state_dict()))
    want = feed.next()
    again = batching.Feed(x, 4, seed=3, augmenter=augment.Augmenter())
    again.load_state_dict(state)
    np.testing.assert_array_equal(again.next(), want)


# ---- CLI ----
def _parser(**kw):
    return cli.build_parser("ae", "pytorch", "test", dataset="imori", iters=1000, batch_size=64, lr=1e-3, **kw)


def test_cli_defaults_and_dry_run():
    args = cli.parse_args(_parser(), [])
    assert (args.train, args.test, args.iters, args.batch_size, args.lr) == (True, True, 1000, 64, 1e-3)
    dry = cli.parse_args(_parser(), ["--dry-run"])
    assert (dry.iters, dry.sample_every, dry.checkpoint_every) == (1, 1, 1)
    only = cli.parse_args(_parser(), ["--test"])
    assert (only.train, only.test) == (False, True)


@pytest.mark.parametrize("argv", [["--iters", "0"], ["--batch-size", "-1"], ["--lr", "nan"],
                                  ["--dataset", "svhn"], ["--test", "--resume"]])
def test_cli_rejects_bad_values_with_status_2(argv, capsys):
    with pytest.raises(SystemExit) as info:
        cli.parse_args(_parser(), argv)
    assert info.value.code == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_help_shows_defaults(capsys):
    with pytest.raises(SystemExit):
        _parser().parse_args(["--help"])
    text = capsys.readouterr().out
    assert "--checkpoint-every" in text and "default: 1000" in text
    # a flag without a default, an off switch, or a help that names its own default gets no second one
    assert "(default: None)" not in text and "(default: False)" not in text
    assert text.count("(default: out/") == 1


def test_run_main_turns_usage_errors_into_status_2(capsys):
    def bad(argv):
        raise UsageError("no such folder: x")
    with pytest.raises(SystemExit) as info:
        cli.run_main(bad, [])
    assert info.value.code == 2
    assert capsys.readouterr().err.strip().endswith("error: no such folder: x")


def test_gpu_request_without_gpu_is_a_usage_error():
    assert cli.resolve_device("auto", False) == "cpu"
    assert cli.resolve_device("auto", True) == "gpu"
    with pytest.raises(UsageError):
        cli.resolve_device("gpu", False)


# ---- runs and checkpoints ----
def test_checkpoint_is_atomic_when_writing_fails(tmp_path):
    run = runs.Run("ae", "pytorch", tmp_path)
    run.save_checkpoint(5, lambda d: (d / "w.bin").write_bytes(b"ok"), {"model": {"a": 1}})

    def crash(folder):
        (folder / "w.bin").write_bytes(b"half")
        raise KeyboardInterrupt  # killed in the middle of writing
    with pytest.raises(KeyboardInterrupt):
        run.save_checkpoint(10, crash, {"model": {"a": 1}})
    assert run.latest_checkpoint().name == "iter_000005"
    assert (run.latest_checkpoint() / "w.bin").read_bytes() == b"ok"
    assert not (run.checkpoints / "iter_000010").exists()
    folder, meta = run.load_checkpoint_meta(None, {"a": 1})
    assert meta["iteration"] == 5 and meta["files"] == ["w.bin"]


def test_checkpoint_keeps_the_newest_three(tmp_path):
    run = runs.Run("ae", "pytorch", tmp_path)
    for it in range(1, 6):
        run.save_checkpoint(it, lambda d: None, {"model": {}})
    assert sorted(p.name for p in run.checkpoints.glob("iter_*")) == [
        "iter_000003", "iter_000004", "iter_000005"]


def test_checkpoint_of_other_question_framework_or_shape_is_refused(tmp_path):
    run = runs.Run("ae", "pytorch", tmp_path)
    run.save_checkpoint(1, lambda d: None, {"model": {"image_shape": [64, 64, 3]}})
    ckpt = run.latest_checkpoint()
    with pytest.raises(UsageError, match="question 'ae'"):
        runs.Run("convae", "pytorch", tmp_path).load_checkpoint_meta(ckpt, {"image_shape": [64, 64, 3]})
    with pytest.raises(UsageError, match="pytorch version"):
        runs.Run("ae", "keras", tmp_path).load_checkpoint_meta(ckpt, {"image_shape": [64, 64, 3]})
    with pytest.raises(UsageError, match="image_shape"):
        run.load_checkpoint_meta(ckpt, {"image_shape": [28, 28, 1]})
    with pytest.raises(UsageError, match="no checkpoint"):
        runs.Run("ae", "pytorch", tmp_path / "empty").load_checkpoint_meta(None, {})


def test_metrics_log_drops_rows_after_the_resumed_checkpoint(tmp_path):
    path = tmp_path / "metrics.csv"
    log = runs.MetricsLog(path, ["loss"])
    for it in range(1, 8):
        log.log(it, {"loss": 1.0 / it})
    log = runs.MetricsLog(path, ["loss"], resume_at=5)
    log.log(6, {"loss": 0.5})
    lines = path.read_text().splitlines()
    assert lines[0] == "iteration,loss"
    assert [int(line.split(",")[0]) for line in lines[1:]] == [1, 2, 3, 4, 5, 6]


def test_progress_stops_on_nan_and_keeps_last_checkpoint(tmp_path):
    run = runs.Run("ae", "pytorch", tmp_path)
    run.checkpoints.mkdir(parents=True)
    saved = []
    with pytest.raises(runs.TrainingError, match="iteration 4"):
        with runs.Progress(run, 0, 10, ["loss"], 1, resume=False) as progress:
            for iteration in progress:
                progress.log(iteration, {"loss": float("nan") if iteration == 4 else 1.0})
                if progress.due(iteration, 2):
                    saved.append(iteration)
    assert saved == [2]
    rows = (tmp_path / "metrics.csv").read_text().splitlines()
    assert len(rows) == 1 + 3


def test_plots_are_due_once_a_minute_and_at_the_last_iteration(tmp_path, monkeypatch):
    clock = [100.0]
    monkeypatch.setattr(runs.time, "monotonic", lambda: clock[0])
    run = runs.Run("ae", "pytorch", tmp_path)
    plotted = []
    with runs.Progress(run, 0, 10, ["loss"], 1, resume=False) as progress:
        for iteration in progress:
            progress.log(iteration, {"loss": 1.0})
            clock[0] += runs.PLOT_INTERVAL / 4              # four iterations a minute
            if progress.due(iteration, 2) and progress.plots_due(iteration):
                plotted.append(iteration)
    # checkpoints at 2, 4, ..., 10; a minute first passes at 4, then at 8; 10 is the last
    assert plotted == [4, 8, 10]


def test_atomic_json_leaves_no_temp_files(tmp_path):
    runs.atomic_write_json(tmp_path / "a.json", {"x": np.float32(1.5), "p": tmp_path})
    assert json.loads((tmp_path / "a.json").read_text())["x"] == 1.5
    assert os.listdir(tmp_path) == ["a.json"]


def test_gan_file_names_always_end_in_the_framework_suffix():
    from common import class_api
    assert class_api.file_names("m", "", "", "", ".pt") == ("m_g.pt", "m_d.pt", "m_val.json")
    # a dot in the model name is not a suffix
    assert class_api.file_names("dcgan_0.1", "", "", "", ".weights.h5") == (
        "dcgan_0.1_g.weights.h5", "dcgan_0.1_d.weights.h5", "dcgan_0.1_val.json")
    assert class_api.file_names("m", "g.weights.h5", "d", "v.json", ".weights.h5") == ("g.weights.h5", "d.weights.h5",
                                                                                   "v.json")


def test_progress_logs_when_due_and_stops_on_nan(tmp_path):
    run = runs.Run("ae", "pytorch", tmp_path / "run")
    run.prepare_training(argparse.Namespace(lr=0.1), resume=False)
    seen, sampled = [], []
    with pytest.raises(runs.TrainingError, match="iteration 5"):
        with runs.Progress(run, 0, 9, ["loss"], 2, resume=False) as progress:
            for iteration in progress:
                seen.append(iteration)
                progress.log(iteration, {"loss": 1.0 / iteration if iteration < 5 else float("nan")})
                if progress.due(iteration, 3):
                    sampled.append(iteration)
    assert seen == [1, 2, 3, 4, 5] and sampled == [3]
    with open(run.metrics_path) as f:
        assert [line.split(",")[0] for line in f.read().split()] == ["iteration", "2", "4"]
    # resumed at 4: the rows after 4 go, the last iteration is always due
    with runs.Progress(run, 4, 7, ["loss"], 2, resume=True) as progress:
        for iteration in progress:
            progress.log(iteration, {"loss": 0.5})
            assert progress.due(iteration, 0) == (iteration == 7)
    with open(run.metrics_path) as f:
        assert [line.split(",")[0] for line in f.read().split()] == ["iteration", "2", "4", "6", "7"]


def test_a_fresh_run_moves_aside_every_training_plot_of_the_previous_run():
    # Run.start moves RUN_ENTRIES aside when a fresh run starts in a used
    # folder; a plot missing there would survive into the new run, stale.
    from common import alpha_gan, gan, pix2pix, wgan
    plots = {value for module in (gan, wgan, pix2pix, alpha_gan) for name, value in vars(module).items()
             if name.endswith("_PNG") and name not in {"SAMPLES_PNG", "INTERPOLATION_PNG", "RECONSTRUCTIONS_PNG",
                                                       "CODES_PNG", "PREDICTIONS_PNG", "GRID_PNG", "STYLE_PNG"}}
    assert {"wasserstein.png", "l1.png", "c_probabilities.png"} <= plots
    assert plots <= set(runs.Run.RUN_ENTRIES), plots - set(runs.Run.RUN_ENTRIES)
