"""pix2pix and pix2pix_gp answers: dry run as a program, train-a-little-then-
test (photo2mask and mask2photo, every output and the numbers in
metrics.json), --gan-weight 0 (the L1-only U-Net: no D at all), a learning
check, resume bit for bit, bad input; for pix2pix_gp the per-sample gradient
norms against float64 finite differences (a norm per element, one eps per
batch or a gradient through the input fails there) and the penalty inside
the D step; the PyTorch networks' shapes, parameter counts and patch
receptive field (what the other versions copy); and the framework-neutral
half (common/pix2pix.py: palette, nearest decoding, metrics, the feed).

PIX2PIX_FRAMEWORKS lists the versions written so far; a porter adds theirs
(a listed script that is missing fails, it is never skipped).
Budget: about 60 s per framework on 2 cores (32x32 pairs, --width 4, batch 4).
"""
import json
import shutil
from argparse import Namespace

import cv2
import numpy as np
import pytest

from common import pictures, pix2pix
from common.errors import UsageError
from tests.answers import expect_usage_error, read_rows, run_in_process, run_program, stopped_copy
from tests.conftest import load_script
from tests.fixtures import make_image_folder

PIX2PIX_FRAMEWORKS = ("pytorch", "tf_slim", "keras", "chainer")
QUESTIONS = ("pix2pix", "pix2pix_gp")
CASES = [(q, f) for q in QUESTIONS for f in PIX2PIX_FRAMEWORKS]
IDS = [f"{q}-{f}" for q, f in CASES]
SIZE = 32
SMALL = {"pix2pix": ["--size", SIZE, "--width", 4, "--batch-size", 4],
         "pix2pix_gp": ["--size", SIZE, "--width", 4, "--batch-size", 4, "--n-critic", 2]}
N_CRITIC = {"pix2pix": 1, "pix2pix_gp": 2}
PLOTS = {"pix2pix": ("l1.png", "losses.png", "d_probabilities.png"),
         "pix2pix_gp": ("l1.png", "losses.png", "d_probabilities.png", "gradient_norm.png")}
TEST_FILES = (pix2pix.PREDICTIONS_PNG, pix2pix.PREDICTIONS_NPY, pix2pix.METRICS_JSON)
CLASS_NAMES = ["background", "akahara", "madara"]
LEARN_ITERS = 120      # the learning check: 120 steps of batch 8 at 32x32, --width 8, lr 1e-3
LEARN_L1 = 0.5         # ... must at least halve the test L1 of an untrained G (~1.0)
LEARN_ACCURACY = 0.95  # ... and label 95% of the test pixels right (the background alone: 86%)
LEARN_IOU = 0.85       # ... with a mean IoU of 0.85 (the background alone: 0.43)


@pytest.fixture(scope="module")
def pairs(tmp_path_factory):
    """Newt-style pairs at 32x32: JPEG photos (a class-coloured disc on a
    gradient), PNG masks (the disc in the newt masks' class colour), 8 train
    and 8 test pairs in the Dataset layout."""
    return make_image_folder(tmp_path_factory.mktemp("pairs"), classes=("akahara", "madara"), n_per_class=4,
                             size=(SIZE, SIZE), seed=0, with_masks=True)


def small_args(question, folder, out_dir):
    return ["--data-dir", folder, "--out-dir", out_dir, "--log-every", 1, *SMALL[question]]


def decoded_test_split(folder):
    """The test split as the scripts decode it (the training masks' palette)."""
    args = Namespace(data_dir=str(folder), size=SIZE)
    return pix2pix.load_pairs(args, "test", pix2pix.read_palette(args))


def check_run(run, question, iterations, folder, direction="photo2mask", gan=True):
    """Every output of a run of ``iterations`` on ``folder``; returns (rows, metrics)."""
    fields = pix2pix.FIELDS[question]
    rows = read_rows(run / "metrics.csv")
    assert list(rows[0]) == ["iteration", *fields, "sec_per_iter"]
    assert [int(r["iteration"]) for r in rows] == list(range(1, iterations + 1))
    gan_weight, l1_weight = (1.0 if gan else 0.0), 100.0
    for row in rows:
        if not gan:                                     # no D: its columns stay empty
            assert all(row[key] == "" for key in pix2pix.D_FIELDS if key in row), row
        values = {key: float(row[key]) for key in fields if row[key] != ""}
        assert all(np.isfinite(v) for v in values.values()), row
        assert values["g_loss"] == pytest.approx(gan_weight * values.get("g_gan", 0.0) + l1_weight * values["g_l1"],
                                                 rel=1e-4)
        assert 0 < values["g_l1"] < 2
        if gan:
            assert 0 < values["d_real"] < 1 and 0 < values["d_fake"] < 1 and values["g_gan"] > 0
            if question == "pix2pix_gp":
                assert values["d_loss"] == pytest.approx(values["d_gan"] + 10.0 * values["gradient_penalty"],
                                                         rel=1e-4)
                assert values["grad_norm"] > 0
    for name in PLOTS[question] if gan else ("l1.png",):
        assert (run / name).stat().st_size > 1000, name
    if not gan:
        assert not (run / "losses.png").exists()
    assert (run / "samples" / f"iter_{iterations:06d}.png").exists()
    meta = json.loads((run / "checkpoints" / f"iter_{iterations:06d}" / "meta.json").read_text())
    assert meta["generator_steps"] == iterations
    assert meta["discriminator_steps"] == (iterations * N_CRITIC[question] if gan else 0)
    model = meta["model"]
    assert (model["size"], model["direction"], model["class_names"]) == (SIZE, direction, CLASS_NAMES)
    assert model["palette"] == [[0, 0, 0], [128, 0, 0], [0, 128, 0]]
    assert (model["in_channels"], model["out_channels"]) == (3, 3)        # 3 photo channels, 3 classes

    test = run / "test"
    for name in TEST_FILES:
        assert (test / name).exists(), name
    truth = decoded_test_split(folder)
    picture = cv2.imread(str(test / pix2pix.PREDICTIONS_PNG))
    cell = SIZE * (128 // SIZE)
    assert picture.shape[0] > len(truth) * cell and picture.shape[1] > 3 * cell   # a row per pair, 3 columns
    metrics = json.loads((test / pix2pix.METRICS_JSON).read_text())
    assert (metrics["direction"], metrics["test_pairs"], metrics["size"]) == (direction, len(truth), SIZE)
    predictions = np.load(test / pix2pix.PREDICTIONS_NPY, allow_pickle=False)
    assert predictions.dtype == np.uint8
    assert 0 < metrics["l1"] < 2
    if direction == "photo2mask":
        assert predictions.shape == (len(truth), SIZE, SIZE)
        assert metrics["pixel_accuracy"] == pytest.approx(pix2pix.pixel_accuracy(predictions, truth.classes))
        assert metrics["mean_iou"] == pytest.approx(pix2pix.mean_iou(predictions, truth.classes, 3))
        assert set(metrics["iou"]) == set(CLASS_NAMES)
    else:
        assert predictions.shape == (len(truth), SIZE, SIZE, 3)
        assert 0 < metrics["psnr"] < pix2pix.PSNR_CAP and "pixel_accuracy" not in metrics
    return rows, metrics


@pytest.mark.parametrize("question,framework", CASES, ids=IDS)
def test_dry_run_as_a_program_then_its_checkpoint_refuses_other_settings(question, framework, pairs, tmp_path,
                                                                          capsys):
    run = tmp_path / "run"
    result = run_program(question, framework, ["--dry-run", *small_args(question, pairs, run)])
    assert result.returncode == 0, result.stderr[-3000:]
    assert "pixel accuracy" in result.stdout and "mean IoU" in result.stdout
    check_run(run, question, 1, pairs)
    config = json.loads((run / "config.json").read_text())
    assert (config["direction"], config["l1_weight"], config["gan_weight"]) == ("photo2mask", 100.0, 1.0)
    # --resume keeps the run's direction, --test refuses a checkpoint of another direction or width
    expect_usage_error(capsys, question, framework, [*small_args(question, pairs, run), "--train", "--resume",
                                                     "--iters", 2, "--direction", "mask2photo"],
                       "--direction mask2photo", "photo2mask")
    expect_usage_error(capsys, question, framework, [*small_args(question, pairs, run), "--test", "--direction",
                                                     "mask2photo"], "direction")
    expect_usage_error(capsys, question, framework, [*small_args(question, pairs, run), "--test", "--width", 8],
                       "width")
    assert not (run / "checkpoints" / "iter_000002").exists()


@pytest.mark.parametrize("framework", PIX2PIX_FRAMEWORKS)
def test_gan_weight_0_is_the_unet_alone(framework, pairs, tmp_path):
    # No D anywhere: its columns empty, no D step counted, no D batch drawn --
    # so pix2pix_gp (whose D steps would draw n_critic batches) makes exactly
    # pix2pix's numbers and predictions, the resumed third iteration too.
    runs = {}
    for question in QUESTIONS:
        out = runs[question] = tmp_path / question
        flags = [*small_args(question, pairs, out), "--gan-weight", 0, "--sample-every", 2, "--checkpoint-every", 2]
        run_in_process(question, framework, [*flags, "--iters", 2, "--train"])
        # it resumes: D has no optimizer state to save or load (Chainer makes Adam's at a first update)
        run_in_process(question, framework, [*flags, "--iters", 3, "--resume"])
        check_run(out, question, 3, pairs, gan=False)
    rows = {q: read_rows(runs[q] / "metrics.csv") for q in QUESTIONS}
    for key in ("g_loss", "g_l1"):
        assert [r[key] for r in rows["pix2pix"]] == [r[key] for r in rows["pix2pix_gp"]], key
    np.testing.assert_array_equal(*(np.load(runs[q] / "test" / pix2pix.PREDICTIONS_NPY) for q in QUESTIONS))


@pytest.mark.parametrize("framework", PIX2PIX_FRAMEWORKS)
def test_pix2pix_learns(framework, tmp_path):
    # 16 training pairs at 32x32 of one newt class (background + akahara);
    # after LEARN_ITERS steps of G with D the test L1 must be at most
    # LEARN_L1 (an untrained G's outputs are near 0 against targets of
    # +-1: L1 0.97-1.00 after one step in every framework; after 120 steps,
    # over seeds 0-2: 0.29-0.31), and the newts found (accuracy 0.987-0.993,
    # mean IoU 0.947-0.971; the background alone is 0.86 and 0.43).  lr 1e-3
    # for a short run.  (Two disc classes at this lr fall into L1's flat
    # valley: for a pixel of one class, the two class channels at (1, 1)
    # cost what (1, -1) does, and saturated tanh outputs never leave it; the
    # real masks learn both classes at the default lr.)
    folder = make_image_folder(tmp_path / "data", classes=("akahara",), n_per_class=16, size=(SIZE, SIZE), seed=1,
                               with_masks=True)
    args = ["--data-dir", folder, "--size", SIZE, "--width", 8, "--batch-size", 8, "--lr", 1e-3, "--sample-every", 0,
            "--checkpoint-every", 0, "--log-every", 40]
    last = run_in_process("pix2pix", framework, [*args, "--out-dir", tmp_path / "many", "--iters", LEARN_ITERS])
    assert last["class_names"] == ["background", "akahara"]
    assert last["l1"] < LEARN_L1, last["l1"]
    assert last["pixel_accuracy"] >= LEARN_ACCURACY and last["mean_iou"] >= LEARN_IOU, last


@pytest.mark.parametrize("question,framework", CASES, ids=IDS)
def test_resume_continues_the_same_run(question, framework, pairs, tmp_path):
    # in the mask -> photo direction (photo -> mask is the other tests'): the
    # uninterrupted run is also that direction's check of every output
    base = [*SMALL[question], "--data-dir", pairs, "--log-every", 1, "--sample-every", 2, "--checkpoint-every", 2,
            "--seed", 3, "--direction", "mask2photo"]
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    metrics = run_in_process(question, framework, [*base, "--out-dir", whole, "--iters", 4])
    _, written = check_run(whole, question, 4, pairs, direction="mask2photo")
    assert metrics == written and metrics["psnr"] > 0
    # the run as a kill after its checkpoint at 2 leaves it (a row logged past it must go)
    stopped_copy(whole, parts, 2, "3" + ",9" * (len(pix2pix.FIELDS[question]) + 1))
    run_in_process(question, framework, [*base, "--train", "--out-dir", parts, "--iters", 4, "--resume"])
    rows_whole, rows_parts = read_rows(whole / "metrics.csv"), read_rows(parts / "metrics.csv")
    assert [int(r["iteration"]) for r in rows_parts] == [1, 2, 3, 4]
    for key in pix2pix.FIELDS[question]:
        # the same batches, augmentation, eps and optimizer states: the same numbers, to the digit written
        assert [r[key] for r in rows_parts] == [r[key] for r in rows_whole], key
    meta_whole = json.loads((whole / "checkpoints" / "iter_000004" / "meta.json").read_text())
    meta_parts = json.loads((parts / "checkpoints" / "iter_000004" / "meta.json").read_text())
    keys = ["feed", "generator_steps", "discriminator_steps"] + (["mix_sampler"] if question == "pix2pix_gp" else [])
    for key in keys:
        assert meta_parts[key] == meta_whole[key], key
    assert meta_whole["discriminator_steps"] == 4 * N_CRITIC[question]
    # the same final weights (training only after the resume: the test phase is checked on `whole`):
    # the same last sample picture, pixel for pixel
    np.testing.assert_array_equal(pictures.read_image(parts / "samples" / "iter_000004.png"),
                                  pictures.read_image(whole / "samples" / "iter_000004.png"))
    assert not (parts / "test").exists()


def broken_copy(pairs, tmp_path, name):
    folder = tmp_path / name
    shutil.copytree(pairs, folder)
    return folder


@pytest.mark.parametrize("question,framework", CASES, ids=IDS)
def test_bad_input_is_one_line_and_status_2(question, framework, pairs, tmp_path, capsys):
    never = ["--out-dir", tmp_path / "never"]
    flags = [("--direction", "sideways"), ("--l1-weight", -1), ("--gan-weight", "nan"), ("--size", 40),
             ("--size", 16), ("--width", 0), ("--batch-size", 0), ("--dataset", "mnist")]
    if question == "pix2pix_gp":
        flags += [("--n-critic", 0), ("--gp-weight", 0)]
    for flag, value in flags:
        expect_usage_error(capsys, question, framework, [flag, value, *never], flag)
    assert not (tmp_path / "never").exists()
    expect_usage_error(capsys, question, framework, ["--l1-weight", 0, "--gan-weight", 0, *never], "nothing to learn")
    assert not (tmp_path / "never" / "checkpoints").exists()

    # the data: a photo without its mask, a mask of another size, a colour no training mask has
    no_mask = broken_copy(pairs, tmp_path, "no_mask")
    (no_mask / "train" / "seg_images" / "madara" / "madara_0001.png").unlink()
    expect_usage_error(capsys, question, framework, ["--dry-run", *small_args(question, no_mask, tmp_path / "a")],
                       "no mask for", "madara_0001.jpg")
    resized = broken_copy(pairs, tmp_path, "resized")
    mask_path = resized / "train" / "seg_images" / "akahara" / "akahara_0002.png"
    cv2.imwrite(str(mask_path), cv2.resize(cv2.imread(str(mask_path)), (SIZE // 2, SIZE), cv2.INTER_NEAREST))
    expect_usage_error(capsys, question, framework, ["--dry-run", *small_args(question, resized, tmp_path / "b")],
                       str(mask_path), "16x32", "32x32")
    unknown = broken_copy(pairs, tmp_path, "unknown")
    mask_path = unknown / "test" / "seg_images" / "madara" / "madara_0003.png"
    mask = cv2.imread(str(mask_path))
    mask[5, 7] = (255, 0, 0)                                      # BGR: blue
    cv2.imwrite(str(mask_path), mask)
    expect_usage_error(capsys, question, framework, ["--dry-run", *small_args(question, unknown, tmp_path / "c")],
                       "RGB (0, 0, 255)", str(mask_path), "x=7, y=5")
    for out in ("a", "b", "c"):
        assert not (tmp_path / out / "checkpoints").exists(), out
    # (a trained run's refusals: test_dry_run_as_a_program_then_...)


def test_bad_flag_as_a_program_prints_one_line():
    result = run_program("pix2pix", PIX2PIX_FRAMEWORKS[0], ["--direction", "photo2photo"])
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "--direction" in result.stderr


# ---------------------------------------------------------------------------
# pix2pix_gp: the gradient norms and the penalty against finite differences
# ---------------------------------------------------------------------------

def tiny_case(seed=0, n=3, size=SIZE):
    """x (1 channel), real and fake y (1 channel), NHWC; eps one per sample, all different."""
    rng = np.random.default_rng(seed)
    x, real, fake = (rng.uniform(-1, 1, (n, size, size, 1)).astype(np.float32) for _ in range(3))
    return x, real, fake, np.array([0.1, 0.5, 0.9][:n], np.float32)


def finite_difference_norms(score, x, y_hat, h=1e-5):
    """||grad_y D_i(x_i, y)|| at y_hat_i, float64 central differences over
    every value of y_hat_i (x_i held fixed); ``score(x, y)`` -> (N,)."""
    norms = []
    for xi, yi in zip(x, y_hat):
        flat = yi.reshape(-1)
        eye = np.eye(flat.size) * h
        xs = np.broadcast_to(xi, (flat.size, *xi.shape))
        plus, minus = score(xs, (flat + eye).reshape(-1, *yi.shape)), score(xs, (flat - eye).reshape(-1, *yi.shape))
        norms.append(np.sqrt((((plus - minus) / (2 * h)) ** 2).sum()))
    return np.array(norms)


def pytorch_discriminator(width=1, gain=10.0):
    """The pix2pix_gp script's D, tiny (32x32 pairs of 1 + 1 channels: 2x2
    patches, --width 1), its weights N(0, 0.02) times ``gain`` (norms near
    1, where the penalty is not flat), float64.  ``score(x, y)``: the mean
    patch logit per sample; ``norms(x, real, fake, eps)``: the script's
    gradient_norms."""
    import torch
    module = load_script("pix2pix_gp", "pytorch")
    discriminator = module.Discriminator(1, 1, width)
    discriminator.apply(module.init_weights(torch.Generator().manual_seed(1)))
    with torch.no_grad():
        for parameter in discriminator.parameters():
            parameter.mul_(gain)
    discriminator.double()

    def nchw(a):
        return torch.from_numpy(np.ascontiguousarray(a, np.float64)).permute(0, 3, 1, 2)

    def score(x, y):
        with torch.no_grad():
            return discriminator(nchw(x), nchw(y)).mean(dim=(1, 2, 3)).numpy()

    def norms(x, real, fake, eps):
        return module.gradient_norms(discriminator, nchw(x), nchw(real), nchw(fake),
                                     torch.from_numpy(eps.astype(np.float64))).detach().numpy()
    return module, discriminator, score, norms


def pytorch_penalty_case(x, real, eps, gp_weight):
    """(score, fake, step) of a tiny PyTorch pix2pix_gp: D's float64 mean
    patch logits before the step, G(x) in training mode (NHWC), and
    ``step()``: one train step (n_critic 1) on (x, real) with eps, returning
    its metrics."""
    import torch
    module, discriminator, score, _ = pytorch_discriminator()
    generator = module.Generator(1, 1, 1)
    generator.apply(module.init_weights(torch.Generator().manual_seed(2)))
    with torch.no_grad():
        fake = generator.train()(torch.from_numpy(x).permute(0, 3, 1, 2)).permute(0, 2, 3, 1).numpy()

    def step():
        discriminator.float()
        g_opt, d_opt = (torch.optim.Adam(n.parameters(), lr=2e-4, betas=(0.5, 0.999)) for n in (generator,
                                                                                             discriminator))
        train_step = module.make_train_step(generator, discriminator, g_opt, d_opt, gan_weight=1.0, l1_weight=100.0,
                                            gp_weight=gp_weight)
        batch = tuple(torch.from_numpy(a).permute(0, 3, 1, 2) for a in (x, real))
        return train_step([batch], [torch.from_numpy(eps)], batch)
    return score, fake, step


def tf_slim_discriminator(width=1, gain=10.0, values=None):
    """The TF-Slim pix2pix_gp script's D, tiny (32x32 pairs of 1 + 1
    channels: 2x2 patches, --width 1), in a float64 graph of its own: its
    weights N(0, 0.02) (graph seed 1) times ``gain``, or ``values`` ({name:
    array}) where given.  ``score(x, y)``: the mean patch logit per sample;
    ``norms(x, real, fake, eps)``: the script's gradient_norms."""
    from types import SimpleNamespace
    module = load_script("pix2pix_gp", "tf_slim")
    tf = module.tf
    graph = tf.Graph()
    with graph.as_default():
        tf.set_random_seed(1)
        x, y, real, fake = (tf.placeholder(tf.float64, (None, SIZE, SIZE, 1)) for _ in range(4))
        eps = tf.placeholder(tf.float64, (None,))
        discriminator = SimpleNamespace(net=lambda inputs, outputs: module.Discriminator(inputs, outputs, width))
        score_op = tf.reduce_mean(discriminator.net(x, y), axis=[1, 2, 3])
        norms_op = module.gradient_norms(discriminator, x, real, fake, eps)
        variables = tf.global_variables()
        sess = tf.Session(graph=graph)
        sess.run(tf.global_variables_initializer())
        new = ({v.op.name: value * gain for v, value in zip(variables, sess.run(variables))} if values is None
               else values)
        sess.run([v.initializer for v in variables], {v.initializer.inputs[1]: new[v.op.name] for v in variables})

    def score(xs, ys):
        return sess.run(score_op, {x: xs, y: ys})

    def norms(xs, reals, fakes, epses):
        return sess.run(norms_op, {x: xs, real: reals, fake: fakes, eps: epses.astype(np.float64)})
    return module, discriminator, score, norms


def tf_slim_penalty_case(x, real, eps, gp_weight, gain=10.0):
    """(score, fake, step) of a tiny TF-Slim pix2pix_gp (the script's
    build_model, float32): D's float64 mean patch logits before the step
    (its weights copied into tf_slim_discriminator's graph), G(x) in
    training mode (NHWC), and ``step()``: one train step (n_critic 1) on
    (x, real) with eps, returning its metrics."""
    module = load_script("pix2pix_gp", "tf_slim")
    tf = module.tf
    info = {"size": SIZE, "in_channels": 1, "out_channels": 1, "width": 1}
    networks = module.build_model(info, 2, 2e-4, "/cpu:0")
    generator, discriminator = networks[:2]
    sess = generator.sess
    with sess.graph.as_default():
        values = {v.op.name: value * gain for v, value in zip(discriminator.variables,
                                                               sess.run(discriminator.variables))}
        sess.run([v.initializer for v in discriminator.variables],
                 {v.initializer.inputs[1]: values[v.op.name] for v in discriminator.variables})
        with tf.name_scope("helper"):
            train_mode = generator.net(generator.inputs, is_training=True)    # its moving statistics never run
    fake = sess.run(train_mode, {generator.inputs: x})
    score = tf_slim_discriminator(values={k: v.astype(np.float64) for k, v in values.items()})[2]

    def step():
        train_step = module.make_train_step(*networks, gan_weight=1.0, l1_weight=100.0, gp_weight=gp_weight)
        return train_step([(x, real)], [eps], (x, real))
    return score, fake, step


def chainer_discriminator(width=1, gain=10.0):
    """pytorch_discriminator for the Chainer script: its D, tiny, weights
    N(0, 0.02) times ``gain``; ``score`` and ``norms`` run a float64 copy,
    ``discriminator`` stays float32 (the train step's dtype)."""
    import copy
    module = load_script("pix2pix_gp", "chainer")
    discriminator = module.Discriminator(1, 1, width, np.random.RandomState(1))
    for parameter in discriminator.params():
        parameter.array *= gain
    discriminator64 = copy.deepcopy(discriminator)
    for parameter in discriminator64.params():
        parameter.array = parameter.array.astype(np.float64)

    def nchw(a):
        return np.ascontiguousarray(np.asarray(a, np.float64).transpose(0, 3, 1, 2))

    def score(x, y):
        with module.chainer.no_backprop_mode():
            return module.F.mean(discriminator64(nchw(x), nchw(y)), axis=(1, 2, 3)).array

    def norms(x, real, fake, eps):
        return module.gradient_norms(discriminator64, nchw(x), nchw(real), nchw(fake), eps.astype(np.float64)).array
    return module, discriminator, score, norms


def chainer_penalty_case(x, real, eps, gp_weight):
    """pytorch_penalty_case for the Chainer script."""
    module, discriminator, score, _ = chainer_discriminator()
    chainer = module.chainer
    generator = module.Generator(1, 1, 1, np.random.RandomState(2))
    with chainer.using_config("train", True), chainer.no_backprop_mode():
        fake = generator(module.to_nchw(x)).array.transpose(0, 2, 3, 1)

    def step():
        g_opt, d_opt = (chainer.optimizers.Adam(alpha=2e-4, beta1=0.5, beta2=0.999).setup(n)
                        for n in (generator, discriminator))
        train_step = module.make_train_step(generator, discriminator, g_opt, d_opt, gan_weight=1.0, l1_weight=100.0,
                                            gp_weight=gp_weight)
        batch = (module.to_nchw(x), module.to_nchw(real))
        return train_step([batch], [eps], batch)
    return score, fake, step


def framework_helper(kind, framework):
    """This section's helper of a framework: ``pytorch_discriminator``, ``pytorch_penalty_case``, ..."""
    return globals()[f"{framework}_{kind}"]


@pytest.mark.parametrize("framework", PIX2PIX_FRAMEWORKS)
def test_gradient_norms_are_per_sample_and_match_finite_differences(framework):
    _, _, score, norms = framework_helper("discriminator", framework)()
    x, real, fake, eps = tiny_case()
    y_hat = (eps[:, None, None, None] * real + (1 - eps[:, None, None, None]) * fake).astype(np.float64)
    expected = finite_difference_norms(score, x.astype(np.float64), y_hat)
    assert 0.1 < expected.min() and expected.max() < 10          # where the penalty is not flat
    got = norms(x, real, fake, eps)
    assert got.shape == (3,)                         # one norm per sample (a per-element norm has another shape)
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    # the mixes matter: the norms at one eps for the whole batch are other numbers
    once = norms(x, real, fake, np.full_like(eps, eps[0]))
    assert np.abs(once[1:] - expected[1:]).max() > 1e-3 * expected.max()


@pytest.mark.parametrize("framework", PIX2PIX_FRAMEWORKS)
def test_the_penalty_in_the_d_step_is_lambda_mean_of_per_sample_terms(framework):
    # One D step (n_critic 1): its loss is the halved BCE plus
    # lambda mean_i (norm_i - 1)^2 with the finite-difference norms at the
    # step's own y_hat_i (eps_i per sample, the step's G(x_i)).
    x, real, _, eps = tiny_case(1)
    gp_weight = 10.0
    score, fake, step = framework_helper("penalty_case", framework)(x, real, eps, gp_weight)
    y_hat = (eps[:, None, None, None] * real + (1 - eps[:, None, None, None]) * fake).astype(np.float64)
    fd_norms = finite_difference_norms(score, x.astype(np.float64), y_hat)
    metrics = step()
    assert metrics["gradient_penalty"] == pytest.approx(((fd_norms - 1) ** 2).mean(), rel=1e-4)
    assert metrics["grad_norm"] == pytest.approx(fd_norms.mean(), rel=1e-4)
    assert metrics["d_loss"] == pytest.approx(metrics["d_gan"] + gp_weight * ((fd_norms - 1) ** 2).mean(), rel=1e-4)


# Keras 3 ------------------------------------------------------------------

def keras_discriminator(width=1, gain=10.0):
    """pytorch_discriminator for the Keras script: its D, tiny, weights
    N(0, 0.02) times ``gain``, float32 (the train step's); ``score`` and
    ``norms`` run a float64 copy of it (built under the float64 dtype
    policy, the float32 weights copied in exactly), made now: the weights
    before any step."""
    import keras
    module = load_script("pix2pix_gp", "keras")

    def build():
        return module.Discriminator(1, 1, width, keras.random.SeedGenerator(1))
    discriminator = build()
    discriminator.set_weights([w * np.float32(gain) for w in discriminator.get_weights()])
    policy, floatx = keras.config.dtype_policy(), keras.config.floatx()
    keras.config.set_floatx("float64")
    keras.config.set_dtype_policy("float64")
    try:
        twin = build()
    finally:
        keras.config.set_floatx(floatx)
        keras.config.set_dtype_policy(policy)
    twin.set_weights([w.astype(np.float64) for w in discriminator.get_weights()])

    def score(x, y):
        logits = twin([np.asarray(x, np.float64), np.asarray(y, np.float64)], training=False)
        return keras.ops.convert_to_numpy(keras.ops.mean(logits, axis=(1, 2, 3)))

    def norms(x, real, fake, eps):
        tensors = (keras.ops.convert_to_tensor(a.astype(np.float64)) for a in (x, real, fake, eps))
        return keras.ops.convert_to_numpy(module.gradient_norms(twin, *tensors))
    return module, discriminator, score, norms


def keras_penalty_case(x, real, eps, gp_weight):
    """pytorch_penalty_case for the Keras script (float32 step, float64 scores)."""
    import keras
    module, discriminator, score, _ = keras_discriminator()
    generator = module.Generator(1, 1, 1, keras.random.SeedGenerator(2))
    fake = keras.ops.convert_to_numpy(generator(x, training=True))

    def step():
        g_opt, d_opt = (keras.optimizers.Adam(2e-4, beta_1=0.5, beta_2=0.999) for _ in range(2))
        train_step = module.make_train_step(generator, discriminator, g_opt, d_opt, gan_weight=1.0, l1_weight=100.0,
                                            gp_weight=gp_weight)
        return train_step([(x, real)], [eps], (x, real))
    return score, fake, step


# ---------------------------------------------------------------------------
# The PyTorch networks: the numbers the other versions copy
# ---------------------------------------------------------------------------

# Parameter counts at the question's size (--width 32), 3 classes (photo2mask
# and mask2photo both have 3 input and 3 output channels): G the U-Net, D the
# PatchGAN on 6-channel pairs; pix2pix's D has no bias before its BatchNorms,
# pix2pix_gp's D no BatchNorm and every bias.
PARAMETERS = {"pix2pix": (7_766_051, 2_768_705), "pix2pix_gp": (7_766_051, 2_767_809)}


@pytest.mark.parametrize("question", QUESTIONS)
def test_pytorch_networks(question):
    import torch
    module = load_script(question, "pytorch")
    info = module.model_info(Namespace(size=64, direction="photo2mask", width=32), np.zeros((3, 3)), ["a", "b", "c"])
    generator, discriminator = module.build_model(info, 0, 2e-4, "cpu")[:2]
    assert (sum(p.numel() for p in generator.parameters()),
            sum(p.numel() for p in discriminator.parameters())) == PARAMETERS[question]
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        outputs = generator.eval()(x)
        logits = discriminator.eval()(x, outputs)
    assert outputs.shape == (2, 3, 64, 64) and outputs.abs().max() <= 1
    assert logits.shape == (2, 1, 6, 6)                             # a 6x6 map of patches for 64x64 pairs
    norms = [m for m in discriminator.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert len(norms) == (3 if question == "pix2pix" else 0)


@pytest.mark.parametrize("question", QUESTIONS)
def test_what_one_patch_sees(question):
    # The docstring's claim: patch (i, j) of a 64x64 pair depends on rows
    # (and columns) 8i - 23 .. 8i + 46 of the pair, clipped to 0 .. 63.
    import torch
    module = load_script(question, "pytorch")
    discriminator = module.Discriminator(3, 3, 2)
    discriminator.apply(module.init_weights(torch.Generator().manual_seed(0))).eval()
    x, y = (torch.rand(1, 3, 64, 64, requires_grad=True) for _ in range(2))
    logits = discriminator(x, y)
    for i, j in ((0, 0), (2, 3), (5, 5)):
        grad_x, grad_y = torch.autograd.grad(logits[0, 0, i, j], (x, y), retain_graph=True)
        seen = ((grad_x.abs() + grad_y.abs()).sum(dim=(0, 1)) > 0).numpy()
        rows, cols = np.flatnonzero(seen.any(axis=1)), np.flatnonzero(seen.any(axis=0))
        assert (rows[0], rows[-1]) == (max(0, 8 * i - 23), min(63, 8 * i + 46)), (i, rows)
        assert (cols[0], cols[-1]) == (max(0, 8 * j - 23), min(63, 8 * j + 46)), (j, cols)
        assert seen[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1].all()


# ---------------------------------------------------------------------------
# common/pix2pix.py: the framework-neutral half (no framework)
# ---------------------------------------------------------------------------

def write_mask(path, rgb):
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.cvtColor(np.asarray(rgb, np.uint8), cv2.COLOR_RGB2BGR))


def test_palette_from_the_training_masks(pairs, tmp_path):
    files_args = Namespace(data_dir=str(pairs), size=SIZE)
    palette, names = pix2pix.read_palette(files_args)
    np.testing.assert_array_equal(palette, [[0, 0, 0], [128, 0, 0], [0, 128, 0]])   # RGB; BGR on disk
    assert names == CLASS_NAMES
    # background first even where no mask has black; colours in order of first appearance;
    # a folder of two colours names them by their RGB
    a, b, c = (np.zeros((4, 4, 3), np.uint8) + v for v in ((10, 20, 30), (0, 0, 0), (200, 0, 0)))
    b[2:, 2:] = (0, 0, 255)
    c[0, 0] = (10, 20, 30)
    masks = [a, b, c]
    paths = [tmp_path / "x" / "1.png", tmp_path / "y" / "2.png", tmp_path / "y" / "3.png"]
    palette, names = pix2pix.palette_of(masks, paths)
    np.testing.assert_array_equal(palette, [[0, 0, 0], [10, 20, 30], [0, 0, 255], [200, 0, 0]])
    assert names == ["background", "RGB (10, 20, 30)", "RGB (0, 0, 255)", "RGB (200, 0, 0)"]
    palette, names = pix2pix.palette_of(masks[:2], paths[:2])
    assert names == ["background", "x", "y"]
    noise = np.random.default_rng(0).integers(0, 256, (8, 8, 3)).astype(np.uint8)   # a photo, not a class map
    with pytest.raises(UsageError, match="hold 65 colours"):
        pix2pix.palette_of([noise], paths[:1])


def test_masks_become_class_maps_nearest_neighbour(tmp_path):
    # a 64x64 photo and mask (left half class 1, a 2-pixel stripe of class 2
    # on the right) resized to 32x32: every pixel one of the classes, never
    # a blend; the map is the nearest-neighbour resize of the decoded mask
    root = tmp_path / "d"
    for split in ("train", "test"):
        photo = np.full((64, 64, 3), 90, np.uint8)
        (root / split / "images" / "newt").mkdir(parents=True)
        cv2.imwrite(str(root / split / "images" / "newt" / "a.jpg"), photo)
        mask = np.zeros((64, 64, 3), np.uint8)
        mask[:, :32] = (128, 0, 0)
        mask[:, 40:42] = (0, 128, 0)
        write_mask(root / split / "seg_images" / "newt" / "a.png", mask)
    data = pix2pix.load_pairs(Namespace(data_dir=str(root), size=32), "train")
    assert data.classes.shape == (1, 32, 32) and data.classes.dtype == np.int64
    decoded = pix2pix.decode_mask(mask, data.palette, "a.png")
    np.testing.assert_array_equal(data.classes[0], cv2.resize(decoded.astype(np.uint8), (32, 32),
                                                              interpolation=cv2.INTER_NEAREST))
    assert set(np.unique(data.classes)) == {0, 1, 2}
    assert data.photos.shape == (1, 32, 32, 3) and data.photos.dtype == np.float32
    assert data.photos.min() >= -1 and data.photos.max() <= 1
    target = pix2pix.one_hot(data.classes, 3)
    assert set(np.unique(target)) == {-1.0, 1.0} and (target.argmax(-1) == data.classes).all()
    assert ((target == 1).sum(-1) == 1).all()
    inputs, targets = pix2pix.network_pairs(data.photos, data.classes, "mask2photo", 3)
    np.testing.assert_array_equal(inputs, target)
    np.testing.assert_array_equal(targets, data.photos)
    with pytest.raises(UsageError, match=r"b\.png has the colour RGB \(1, 2, 3\) \(at x=0, y=0\)"):
        pix2pix.decode_mask(np.full((2, 2, 3), (1, 2, 3), np.uint8), data.palette, "b.png")


def test_metrics_on_known_inputs():
    truth = np.array([[0, 0, 1, 1], [0, 0, 1, 1]])
    assert pix2pix.pixel_accuracy(truth, truth) == 1.0
    perfect = pix2pix.iou(truth, truth, 3)
    assert perfect[:2].tolist() == [1.0, 1.0] and np.isnan(perfect[2])    # class 2 in neither: not counted
    assert pix2pix.mean_iou(truth, truth, 3) == 1.0
    predicted = np.array([[0, 1, 1, 1], [0, 0, 1, 2]])
    assert pix2pix.pixel_accuracy(predicted, truth) == 0.75
    # class 0: 3 right of 4 true, 3 predicted -> 3/4; class 1: 3 of (4 true + 1 more) -> 3/5; class 2: 0/1
    np.testing.assert_allclose(pix2pix.iou(predicted, truth, 3), [3 / 4, 3 / 5, 0.0])
    assert pix2pix.mean_iou(predicted, truth, 3) == pytest.approx((3 / 4 + 3 / 5 + 0) / 3)
    assert pix2pix.classes_of(pix2pix.one_hot(predicted, 3)).tolist() == predicted.tolist()
    # PSNR with pixels mapped to [0, 1]: an error of 0.1 everywhere is MSE 0.01, 20 dB; a perfect image the cap
    images = np.zeros((2, 4, 4, 3), np.float32)
    assert pix2pix.psnr(images + 0.2, images) == pytest.approx(20.0)    # 0.2 in [-1, 1] is 0.1 in [0, 1]
    assert pix2pix.psnr(images, images) == pix2pix.PSNR_CAP
    assert pix2pix.psnr(np.stack([images[0] + 0.2, images[1]]), images) == pytest.approx((20 + pix2pix.PSNR_CAP) / 2)
    assert pix2pix.l1(images + 0.25, images) == pytest.approx(0.25)
    colours = pix2pix.colour(truth, np.array([[0, 0, 0], [128, 0, 0], [0, 128, 0]], np.uint8))
    assert colours.dtype == np.uint8 and colours[0, 2].tolist() == [128, 0, 0]


def test_the_feed_keeps_photo_and_mask_aligned_and_resumes(tmp_path):
    # photos with a red square exactly where the mask is class 1: after the
    # flips and the rotation, the red pixels of the photo and the class-1
    # pixels of the target still coincide; corners are background
    rng = np.random.default_rng(0)
    n, size = 8, 32
    photos = np.full((n, size, size, 3), -0.5, np.float32)
    classes = np.zeros((n, size, size), np.int64)
    for i in range(n):
        top, left = rng.integers(4, 18, 2)
        photos[i, top:top + 10, left:left + 10] = (1.0, -1.0, -1.0)
        classes[i, top:top + 10, left:left + 10] = 1
    data = pix2pix.Pairs(photos, classes, np.array([[0, 0, 0], [128, 0, 0]], np.uint8), ["background", "a"],
                         [str(i) for i in range(n)])
    feed = pix2pix.PairFeed(data, 4, seed=5, direction="photo2mask")
    inputs, targets = feed.next()
    assert inputs.shape == (4, size, size, 3) and targets.shape == (4, size, size, 2)
    assert set(np.unique(targets)) == {-1.0, 1.0} and ((targets == 1).sum(-1) == 1).all()   # labels never blended
    red = (inputs[..., 0] > 0.5) & (inputs[..., 1] < -0.5)
    square = targets[..., 1] == 1
    assert (red & square).sum() / (red | square).sum() > 0.8
    assert not np.array_equal(square, classes[:4] == 1)                  # augmented
    corner = inputs[..., 0] == -1.0                                      # black corners of a rotated photo ...
    assert corner.any() and (targets[..., 0][corner] == 1).all()         # ... are background in the mask
    state = json.loads(json.dumps(feed.state_dict()))
    following = feed.next()
    again = pix2pix.PairFeed(data, 4, seed=0, direction="photo2mask")
    again.load_state_dict(state)
    for a, b in zip(again.next(), following):
        np.testing.assert_array_equal(a, b)
    mask_inputs, photo_targets = pix2pix.PairFeed(data, 4, seed=5, direction="mask2photo").next()
    np.testing.assert_array_equal(mask_inputs, targets)
    np.testing.assert_array_equal(photo_targets, inputs)
