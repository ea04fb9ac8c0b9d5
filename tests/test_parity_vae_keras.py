"""The Keras 3 VAE is the same network as the PyTorch one (DESIGN.md
section 7): same layers with the same parameter counts, same shapes, the
same initialisation rule, and -- with the PyTorch weights copied into the
Keras layers -- the same encoder means and log-variances, the same decoded
images for the same z, the same negative ELBO for the same eps, and the same
gradients (max-abs difference below 1e-4, float32).

Both versions take the flat pixel vector in the NHWC order of `common`
(each script's ``flatten``), so a Dense kernel is the transposed Linear
weight (tests/convert.py) and needs no row permutation.
"""
import numpy as np
import pytest

from common import latent
from tests.conftest import load_script
from tests.convert import torch_to_tf_dense

torch = pytest.importorskip("torch")

IMAGE_SHAPE = (28, 28, 1)
LATENT_DIMS = (2, 8)     # the question's plane, and a wider code (--latent-dim 8)
TOLERANCE = 1e-4


def torch_layers(model):
    """[(name, module)] of the layers that hold parameters, in order."""
    return [(name, m) for name, m in model.named_modules() if list(m.parameters(recurse=False))]


def keras_layers(model):
    """[(name, layer)] of the layers that hold weights, in order: the
    encoder's (hidden, mu, logvar), then the decoder's."""
    return [(f"{part}/{layer.name}", layer)
            for part in ("encoder", "decoder") for layer in model.get_layer(part).layers if layer.weights]


def torch_to_keras(module, name, value):
    """A PyTorch parameter (or its gradient) in the layout of the matching Keras weight."""
    value = value.detach().numpy()
    if name == "bias":
        return value
    if isinstance(module, torch.nn.Linear):
        return torch_to_tf_dense(value)
    raise TypeError(f"no conversion for {type(module).__name__}")


@pytest.fixture(params=LATENT_DIMS, ids=[f"z{d}" for d in LATENT_DIMS])
def networks(request):
    latent_dim = request.param
    pt, script = load_script("vae", "pytorch"), load_script("vae", "keras")
    torch.manual_seed(0)
    model = pt.VAE(IMAGE_SHAPE, latent_dim).eval()
    script.keras.utils.set_random_seed(0)
    keras_net = script.VAE(IMAGE_SHAPE, latent_dim)
    return latent_dim, pt, script, model, keras_net


def copy_torch_weights(model, keras_net):
    """Load the PyTorch parameters into the Keras layers, layer by layer."""
    for (_, module), (name, layer) in zip(torch_layers(model), keras_layers(keras_net), strict=True):
        values = [torch_to_keras(module, n, p) for n, p in module.named_parameters(recurse=False)]
        assert [v.shape for v in values] == [tuple(w.shape) for w in layer.weights], name
        layer.set_weights(values)


def test_same_layers_and_parameter_counts(networks):
    _, _, _, model, keras_net = networks
    torch_counts = [(name, sum(p.numel() for p in m.parameters(recurse=False)))
                    for name, m in torch_layers(model)]
    keras_counts = [(name, layer.count_params()) for name, layer in keras_layers(keras_net)]
    # encoder hidden, mu, logvar; decoder hidden, logits
    assert len(keras_counts) == len(torch_counts) == 5, (keras_counts, torch_counts)
    assert [c for _, c in keras_counts] == [c for _, c in torch_counts], (keras_counts, torch_counts)
    # the encoder's layers carry the PyTorch attribute names
    assert [n for n, _ in keras_counts[:3]] == [n.replace(".", "/") for n, _ in torch_counts[:3]]
    assert keras_net.count_params() == sum(p.numel() for p in model.parameters())
    assert len(keras_net.trainable_weights) == len(list(model.parameters()))


def test_same_shapes(networks):
    latent_dim, pt, script, model, keras_net = networks
    images = np.zeros((3, *IMAGE_SHAPE), np.float32)
    z = np.zeros((5, latent_dim), np.float32)
    torch_mu, torch_logvar = pt.encode(model, images, "cpu")
    keras_mu, keras_logvar = script.encode(keras_net, images)
    assert keras_mu.shape == keras_logvar.shape == torch_mu.shape == torch_logvar.shape == (3, latent_dim)
    keras_decoded = script.decode(keras_net, z, IMAGE_SHAPE)
    assert keras_decoded.shape == pt.decode(model, z, IMAGE_SHAPE, "cpu").shape == (5, *IMAGE_SHAPE)
    in_features = int(np.prod(IMAGE_SHAPE))
    assert [tuple(s) for s in keras_net.output_shape] == [(None, in_features), (None, latent_dim),
                                                          (None, latent_dim)]
    assert script.model_info(IMAGE_SHAPE, latent_dim) == pt.model_info(IMAGE_SHAPE, latent_dim)


def test_same_initialisation_rule(networks):
    # Glorot-uniform weights and zero biases in both (not the same draws)
    _, _, _, model, keras_net = networks
    for name, layer in keras_layers(keras_net):
        w, b = (v.numpy() for v in layer.weights)
        limit = np.sqrt(6.0 / (w.shape[0] + w.shape[1]))
        assert not b.any(), name
        assert np.abs(w).max() <= limit and np.abs(w).max() > 0.8 * limit, name
    for name, m in torch_layers(model):
        assert not m.bias.detach().numpy().any(), name


def test_same_outputs_with_the_same_weights(networks):
    latent_dim, pt, script, model, keras_net = networks
    copy_torch_weights(model, keras_net)
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 1, (6, *IMAGE_SHAPE)).astype(np.float32)
    # the encoder: the same mu and logvar
    torch_mu, torch_logvar = pt.encode(model, images, "cpu")
    keras_mu, keras_logvar = script.encode(keras_net, images)
    assert np.abs(keras_mu - torch_mu).max() < TOLERANCE, np.abs(keras_mu - torch_mu).max()
    assert np.abs(keras_logvar - torch_logvar).max() < TOLERANCE, np.abs(keras_logvar - torch_logvar).max()
    # the decoder: the same images for the same z (spread over the prior's range)
    z = latent.gaussian(16, latent_dim, seed=0, stream=latent.TEST_SAMPLES) * 2
    expected = pt.decode(model, z, IMAGE_SHAPE, "cpu")
    got = script.decode(keras_net, z, IMAGE_SHAPE)
    assert got.dtype == expected.dtype == np.float32
    assert np.abs(got - expected).max() < TOLERANCE, np.abs(got - expected).max()
    # and not trivially: the decoded pixels vary with z
    assert got.std(axis=0).max() > 0.01
    # the whole network and the loss: the same negative ELBO and terms for the same eps
    eps = latent.gaussian(len(images), latent_dim, seed=0, stream=latent.TEST_EPS)
    expected_terms = pt.evaluate(model, images, eps, "cpu")
    got_terms = script.evaluate(keras_net, images, eps)
    for key in ("loss", "bce", "kl"):
        assert got_terms[key] == pytest.approx(expected_terms[key], rel=1e-5, abs=1e-4), key


def test_same_loss_and_gradients_with_the_same_weights(networks):
    latent_dim, pt, script, model, keras_net = networks
    tf = script.tf
    copy_torch_weights(model, keras_net)
    rng = np.random.default_rng(1)
    x = pt.flatten(rng.uniform(0, 1, (4, *IMAGE_SHAPE)).astype(np.float32))
    eps = rng.standard_normal((4, latent_dim)).astype(np.float32)

    model.train()
    model.zero_grad()
    logits, mu, logvar = model(torch.from_numpy(x), torch.from_numpy(eps))
    torch_loss, _, _ = pt.vae_loss(logits, torch.from_numpy(x), mu, logvar)
    torch_loss.backward()
    torch_grads = [torch_to_keras(m, n, p.grad) for _, m in torch_layers(model)
                   for n, p in m.named_parameters(recurse=False)]

    with tf.GradientTape() as tape:
        logits, mu, logvar = keras_net([x, eps], training=True)
        keras_loss, _, _ = script.vae_loss(logits, x, mu, logvar)
    keras_grads = [g.numpy() for g in tape.gradient(keras_loss, keras_net.trainable_variables)]

    assert abs(float(keras_loss) - torch_loss.item()) < TOLERANCE * max(1.0, abs(torch_loss.item()))
    assert len(keras_grads) == len(torch_grads)
    for got, expected in zip(keras_grads, torch_grads):
        assert got.shape == expected.shape
        assert np.abs(got - expected).max() < TOLERANCE * max(1.0, np.abs(expected).max())
