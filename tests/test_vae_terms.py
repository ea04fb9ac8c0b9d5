"""The VAE's loss terms in every framework against a NumPy reference.

    reconstruction_term(logits, x)  binary cross-entropy of x and
                                    sigmoid(logits), summed over pixels,
                                    mean over the batch
    kl_term(mu, logvar)             KL(N(mu, exp(logvar)) || N(0, I)) in
                                    closed form, summed over the latent
                                    dimensions, mean over the batch
    reparameterize(mu, logvar, eps) mu + eps * exp(logvar / 2)

Each framework's script is driven through a small adapter (NumPy in, NumPy
out) in ADAPTERS below.
"""
import numpy as np
import pytest

from tests.conftest import FRAMEWORKS, load_script


# ---- per-framework adapters: module -> {name: function of NumPy arrays} ----
def _pytorch(module):
    import torch

    def call(fn, *arrays):
        with torch.no_grad():
            return fn(*(torch.from_numpy(a) for a in arrays)).numpy()
    return call


def _tf_slim(module):
    import tensorflow as tf

    def call(fn, *arrays):
        with tf.Graph().as_default() as graph:
            out = fn(*(tf.constant(a) for a in arrays))
            with tf.compat.v1.Session(graph=graph) as session:
                return session.run(out)
    return call


def _keras(module):
    import keras

    def call(fn, *arrays):
        return keras.ops.convert_to_numpy(fn(*(keras.ops.convert_to_tensor(a) for a in arrays)))
    return call


def _chainer(module):
    def call(fn, *arrays):
        return fn(*arrays).array   # Chainer functions take NumPy arrays
    return call


ADAPTERS = {"pytorch": _pytorch, "tf_slim": _tf_slim, "keras": _keras, "chainer": _chainer}


# ---- the NumPy reference (float64) ----
def bce_sum_reference(logits, x):
    """sum_pixels -[x log p + (1 - x) log(1 - p)], p = sigmoid(logits), in
    the stable form max(l, 0) - x l + log(1 + exp(-|l|)); mean over rows."""
    l, x = np.asarray(logits, np.float64), np.asarray(x, np.float64)
    return float((np.maximum(l, 0) - x * l + np.log1p(np.exp(-np.abs(l)))).sum(axis=1).mean())


def bce_sum_from_probabilities(p, x):
    """The textbook form, for moderate p (no clipping needed)."""
    p, x = np.asarray(p, np.float64), np.asarray(x, np.float64)
    return float(-(x * np.log(p) + (1 - x) * np.log(1 - p)).sum(axis=1).mean())


def kl_reference(mu, logvar):
    mu, logvar = np.asarray(mu, np.float64), np.asarray(logvar, np.float64)
    return float((-0.5 * (1 + logvar - mu ** 2 - np.exp(logvar))).sum(axis=1).mean())


def _fixed_inputs():
    rng = np.random.default_rng(1234)
    n, pixels, latent = 4, 12, 3
    x = rng.uniform(0, 1, (n, pixels)).astype(np.float32)
    x[0, :4] = [0.0, 1.0, 0.0, 1.0]                       # exact black and white pixels too
    logits = rng.normal(0, 3, (n, pixels)).astype(np.float32)
    mu = rng.normal(0, 1.5, (n, latent)).astype(np.float32)
    logvar = rng.normal(0, 1, (n, latent)).astype(np.float32)
    eps = rng.normal(0, 1, (n, latent)).astype(np.float32)
    return x, logits, mu, logvar, eps


def test_the_reference_is_the_textbook_formula():
    x, logits, mu, logvar, _ = _fixed_inputs()
    p = 1.0 / (1.0 + np.exp(-logits.astype(np.float64)))
    assert bce_sum_reference(logits, x) == pytest.approx(bce_sum_from_probabilities(p, x), rel=1e-12)
    # KL is zero exactly at the prior, and grows away from it
    zeros = np.zeros((2, 3))
    assert kl_reference(zeros, zeros) == 0.0
    assert kl_reference(zeros + 1, zeros) == pytest.approx(1.5)      # 3 dims x mu^2 / 2
    # a closed form checked against a Monte-Carlo estimate of E_q[log q - log p]
    rng = np.random.default_rng(0)
    m, lv = np.array([[0.7, -1.2]]), np.array([[-0.5, 0.8]])
    z = m + np.exp(lv / 2) * rng.standard_normal((400_000, 2))
    log_q = -0.5 * (((z - m) ** 2) / np.exp(lv) + lv + np.log(2 * np.pi)).sum(1)
    log_p = -0.5 * (z ** 2 + np.log(2 * np.pi)).sum(1)
    assert kl_reference(m, lv) == pytest.approx((log_q - log_p).mean(), abs=0.01)


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_loss_terms_match_numpy(framework):
    module = load_script("vae", framework)
    call = ADAPTERS[framework](module)
    x, logits, mu, logvar, eps = _fixed_inputs()
    bce = float(call(module.reconstruction_term, logits, x))
    kl = float(call(module.kl_term, mu, logvar))
    assert bce == pytest.approx(bce_sum_reference(logits, x), rel=1e-5, abs=1e-5)
    assert kl == pytest.approx(kl_reference(mu, logvar), rel=1e-5, abs=1e-5)
    z = call(module.reparameterize, mu, logvar, eps)
    np.testing.assert_allclose(z, mu + eps * np.exp(logvar.astype(np.float64) / 2), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_saturated_logits_stay_finite(framework):
    # sigmoid(+-40) rounds to 1 / 0 in float32: log(0) must never be taken
    module = load_script("vae", framework)
    call = ADAPTERS[framework](module)
    logits = np.array([[40.0, -40.0, 40.0, -40.0]], np.float32)
    x = np.array([[1.0, 0.0, 0.0, 1.0]], np.float32)
    bce = float(call(module.reconstruction_term, logits, x))
    assert bce == pytest.approx(bce_sum_reference(logits, x), rel=1e-5)   # = 80 nats
