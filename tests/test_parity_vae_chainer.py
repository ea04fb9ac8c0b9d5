"""The Chainer VAE is the same network as the PyTorch one (DESIGN.md
section 7): same layers with the same parameter counts, same shapes, the
same initialisation rule, and -- with the PyTorch weights copied into the
Chainer links -- the same encoder means and log-variances, the same decoded
images for the same z, the same negative ELBO for the same eps and the same
gradients (max-abs difference below 1e-4, float32).

Both frameworks store a dense layer's weight as (out, in), so the copy is
shape for shape:

    PyTorch                         Chainer
      Linear.weight  (O, I)           Linear.W  (O, I)
      Linear.bias    (O,)             Linear.b  (O,)
"""
import numpy as np
import pytest

from common import latent
from tests.conftest import load_script

torch = pytest.importorskip("torch")

IMAGE_SHAPE = (28, 28, 1)
LATENT_DIMS = (2, 8)     # the question's plane, and a wider code (--latent-dim 8)
PARAM_NAMES = {"weight": "W", "bias": "b"}   # PyTorch name -> Chainer name
# A Chain keeps its children in a set, so the network order is written out:
# the encoder's hidden layer and its two heads, then the decoder's layers.
CHAINER_ORDER = ["/encoder/hidden", "/encoder/mu", "/encoder/logvar", "/decoder/hidden", "/decoder/logits"]
TORCH_ORDER = ["encoder.hidden", "encoder.mu", "encoder.logvar", "decoder.0", "decoder.2"]
TOLERANCE = 1e-4


def torch_layers(model):
    """[(name, module)] of the layers that hold parameters, in order."""
    return [(name, m) for name, m in model.named_modules() if list(m.parameters(recurse=False))]


def chainer_layers(model):
    """[(name, link)] of the links that hold parameters, in network order."""
    leaves = dict((name, link) for name, link in model.namedlinks(skipself=True) if not list(link.children()))
    assert sorted(leaves) == sorted(CHAINER_ORDER), sorted(leaves)
    return [(name, leaves[name]) for name in CHAINER_ORDER]


class ChainerNetwork:
    """The Chainer script's VAE, initialised as for training."""

    def __init__(self, latent_dim):
        self.script = load_script("vae", "chainer")
        self.chainer = self.script.chainer
        self.script.cli.seed_everything(0)
        self.model = self.script.VAE(IMAGE_SHAPE, latent_dim)
        self.device = self.script.pick_device("cpu")

    def layers(self):
        return chainer_layers(self.model)

    def load_torch(self, model):
        """Copy the PyTorch parameters into the links, checking each layout."""
        for (pt_name, module), (ch_name, link) in zip(torch_layers(model), self.layers(), strict=True):
            for name, value in module.named_parameters(recurse=False):
                param = getattr(link, PARAM_NAMES[name])
                value = value.detach().numpy()
                assert param.shape == value.shape, (pt_name, name, ch_name, param.shape, value.shape)
                param.array[...] = value


@pytest.fixture(params=LATENT_DIMS, ids=[f"z{d}" for d in LATENT_DIMS])
def networks(request):
    latent_dim = request.param
    pt = load_script("vae", "pytorch")
    torch.manual_seed(0)
    model = pt.VAE(IMAGE_SHAPE, latent_dim).eval()
    return latent_dim, pt, model, ChainerNetwork(latent_dim)


def test_same_layers_and_parameter_counts(networks):
    _, _, model, net = networks
    assert [name for name, _ in torch_layers(model)] == TORCH_ORDER
    torch_counts = [(name, sum(p.numel() for p in m.parameters(recurse=False)))
                    for name, m in torch_layers(model)]
    chainer_counts = [(name, sum(p.size for p in link.params())) for name, link in net.layers()]
    # encoder hidden, mu, logvar; decoder hidden, logits
    assert len(chainer_counts) == len(torch_counts) == 5, (chainer_counts, torch_counts)
    assert [c for _, c in chainer_counts] == [c for _, c in torch_counts], (chainer_counts, torch_counts)
    assert net.model.count_params() == sum(p.numel() for p in model.parameters())
    assert all(type(link).__name__ == "Linear" for _, link in net.layers())
    assert all(isinstance(m, torch.nn.Linear) for _, m in torch_layers(model))


def test_same_shapes(networks):
    latent_dim, pt, model, net = networks
    images = np.zeros((3, *IMAGE_SHAPE), np.float32)
    z = np.zeros((5, latent_dim), np.float32)
    torch_mu, torch_logvar = pt.encode(model, images, "cpu")
    chainer_mu, chainer_logvar = net.script.encode(net.model, images, net.device)
    assert chainer_mu.shape == chainer_logvar.shape == torch_mu.shape == torch_logvar.shape == (3, latent_dim)
    chainer_decoded = net.script.decode(net.model, z, IMAGE_SHAPE, net.device)
    assert chainer_decoded.shape == pt.decode(model, z, IMAGE_SHAPE, "cpu").shape == (5, *IMAGE_SHAPE)
    assert net.script.model_info(IMAGE_SHAPE, latent_dim) == pt.model_info(IMAGE_SHAPE, latent_dim)


def test_same_initialisation_rule(networks):
    # Glorot-uniform weights and zero biases in both (not the same draws)
    _, _, model, net = networks
    for name, link in net.layers():
        w, b = link.W.array, link.b.array
        limit = np.sqrt(6.0 / (w.shape[0] + w.shape[1]))
        assert w.dtype == b.dtype == np.float32, name
        assert not b.any(), name
        assert np.abs(w).max() <= limit and np.abs(w).max() > 0.8 * limit, name
    for name, m in torch_layers(model):
        assert not m.bias.detach().numpy().any(), name


def test_same_outputs_with_the_same_weights(networks):
    latent_dim, pt, model, net = networks
    net.load_torch(model)
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 1, (6, *IMAGE_SHAPE)).astype(np.float32)
    # the encoder: the same mu and logvar
    torch_mu, torch_logvar = pt.encode(model, images, "cpu")
    chainer_mu, chainer_logvar = net.script.encode(net.model, images, net.device)
    assert np.abs(chainer_mu - torch_mu).max() < TOLERANCE, np.abs(chainer_mu - torch_mu).max()
    assert np.abs(chainer_logvar - torch_logvar).max() < TOLERANCE, np.abs(chainer_logvar - torch_logvar).max()
    assert np.abs(chainer_mu).max() > 0.01 and np.abs(chainer_logvar).max() > 0.01   # not trivially zero
    # the decoder: the same images for the same z (spread over the prior's range)
    z = latent.gaussian(16, latent_dim, seed=0, stream=latent.TEST_SAMPLES) * 2
    expected = pt.decode(model, z, IMAGE_SHAPE, "cpu")
    got = net.script.decode(net.model, z, IMAGE_SHAPE, net.device)
    assert got.dtype == expected.dtype == np.float32
    assert np.abs(got - expected).max() < TOLERANCE, np.abs(got - expected).max()
    # and not trivially: the decoded pixels vary with z
    assert got.std(axis=0).max() > 0.01
    # the whole network and the loss: the same negative ELBO and terms for the same eps
    eps = latent.gaussian(len(images), latent_dim, seed=0, stream=latent.TEST_EPS)
    expected_terms = pt.evaluate(model, images, eps, "cpu")
    got_terms = net.script.evaluate(net.model, images, eps, net.device)
    for key in ("loss", "bce", "kl"):
        assert got_terms[key] == pytest.approx(expected_terms[key], rel=1e-5, abs=1e-4), key


def test_same_loss_and_gradients_with_the_same_weights(networks):
    # the same negative ELBO for the same eps, and so the same gradients for Adam
    latent_dim, pt, model, net = networks
    net.load_torch(model)
    images = np.random.default_rng(1).uniform(0, 1, (4, *IMAGE_SHAPE)).astype(np.float32)
    eps = latent.gaussian(len(images), latent_dim, seed=1, stream=latent.TEST_EPS)
    x = torch.from_numpy(pt.flatten(images))
    model.zero_grad()
    logits, mu, logvar = model(x, torch.from_numpy(eps))
    torch_loss = pt.vae_loss(logits, x, mu, logvar)[0]
    torch_loss.backward()
    x = net.script.flatten(images)
    net.model.cleargrads()
    with net.chainer.using_config("train", True):
        logits, mu, logvar = net.model(x, eps)
        chainer_loss = net.script.vae_loss(logits, x, mu, logvar)[0]
    chainer_loss.backward()
    assert abs(float(chainer_loss.array) - torch_loss.item()) < 1e-5 * torch_loss.item()
    for (pt_name, module), (ch_name, link) in zip(torch_layers(model), net.layers(), strict=True):
        for name, value in module.named_parameters(recurse=False):
            expected = value.grad.numpy()
            got = getattr(link, PARAM_NAMES[name]).grad
            scale = np.abs(expected).max()
            assert scale > 0, (pt_name, name)
            assert np.abs(got - expected).max() < TOLERANCE * scale, (ch_name, name)
