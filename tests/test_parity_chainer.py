"""The Chainer AE and ConvAE are the same networks as the PyTorch ones
(DESIGN.md section 7): same layers with the same parameter counts, same
shapes, the same initialisation rule, and -- with the PyTorch weights copied
into the Chainer links -- the same outputs, loss and gradients on the same
input (max-abs difference below 1e-4, float32).

Both frameworks are NCHW and store weights in the same layouts, which the
copy checks shape by shape:

    PyTorch                               Chainer
      Linear.weight           (O, I)        Linear.W           (O, I)
      Conv2d.weight           (O, I, kh, kw)  Convolution2D.W    (O, I, kh, kw)
      ConvTranspose2d.weight  (I, O, kh, kw)  Deconvolution2D.W  (I, O, kh, kw)
      .bias                   (O,)          .b                 (O,)
"""
import numpy as np
import pytest

from tests.conftest import load_script

torch = pytest.importorskip("torch")

IMAGE_SHAPE = (64, 64, 3)
MODELS = {"ae": "AutoEncoder", "convae": "ConvAE"}  # the network of each question, in both scripts
PARAM_NAMES = {"weight": "W", "bias": "b"}          # PyTorch name -> Chainer name
TOLERANCE = 1e-4


def torch_model(question):
    pt = load_script(question, "pytorch")
    torch.manual_seed(0)
    return getattr(pt, MODELS[question])(IMAGE_SHAPE).eval()


def torch_layers(model):
    """[(name, module)] of the layers that hold parameters, in order."""
    return [(name, m) for name, m in model.named_modules() if list(m.parameters(recurse=False))]


def chainer_layers(model):
    """[(name, link)] of the links that hold parameters, in network order.
    A Chain keeps its children in a set, so order them here: the encoder's
    layers, then the decoder's, each by name (conv1, conv2, ...)."""
    leaves = [(name, link) for name, link in model.namedlinks(skipself=True)
              if not list(link.children())]
    return sorted(leaves, key=lambda item: (not item[0].startswith("/encoder/"), item[0]))


def network_input(script, question, images):
    """What the network of ``script`` takes: the flat NHWC vector (AE) or NCHW
    (a channels_last tensor view for PyTorch, an array for Chainer)."""
    return script.flatten(images) if question == "ae" else script.to_nchw(images)


def torch_input(question, images):
    value = network_input(load_script(question, "pytorch"), question, images)
    return torch.from_numpy(value) if isinstance(value, np.ndarray) else value


class ChainerNetwork:
    """The Chainer script's network for IMAGE_SHAPE, initialised as for training."""

    def __init__(self, question):
        self.script = load_script(question, "chainer")
        self.chainer = self.script.chainer
        self.script.cli.seed_everything(0)
        self.model = getattr(self.script, MODELS[question])(IMAGE_SHAPE)
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


@pytest.fixture(params=sorted(MODELS))
def networks(request):
    question = request.param
    return question, torch_model(question), ChainerNetwork(question)


def test_same_layers_and_parameter_counts(networks):
    _, model, net = networks
    torch_counts = [(name, sum(p.numel() for p in m.parameters(recurse=False)))
                    for name, m in torch_layers(model)]
    chainer_counts = [(name, sum(p.size for p in link.params())) for name, link in net.layers()]
    assert [c for _, c in chainer_counts] == [c for _, c in torch_counts], (chainer_counts, torch_counts)
    assert net.model.count_params() == sum(p.numel() for p in model.parameters())
    # the same kind of layer at each place
    kinds = {torch.nn.Linear: "Linear", torch.nn.Conv2d: "Convolution2D",
             torch.nn.ConvTranspose2d: "Deconvolution2D"}
    assert [type(link).__name__ for _, link in net.layers()] == [kinds[type(m)] for _, m in torch_layers(model)]


def test_same_shapes(networks):
    question, model, net = networks
    pt = load_script(question, "pytorch")
    images = np.zeros((2, *IMAGE_SHAPE), np.float32)
    with torch.no_grad():
        torch_codes = model.encoder(torch_input(question, images))
    with net.chainer.using_config("train", False), net.chainer.no_backprop_mode():
        chainer_codes = net.model.encoder(network_input(net.script, question, images))
    assert chainer_codes.shape == tuple(torch_codes.shape)  # both NCHW (or flat)
    outputs = net.script.reconstruct(net.model, images, net.device)
    assert outputs.shape == pt.reconstruct(model, images, "cpu").shape == images.shape


def test_same_initialisation_rule(networks):
    # Glorot-uniform weights and zero biases in both (not the same draws)
    _, model, net = networks
    for name, link in net.layers():
        w, b = link.W.array, link.b.array
        fan_in, fan_out = (w.shape[1], w.shape[0]) if w.ndim == 2 else (
            w.shape[1] * w.shape[2] * w.shape[3], w.shape[0] * w.shape[2] * w.shape[3])
        limit = np.sqrt(6.0 / (fan_in + fan_out))
        assert w.dtype == b.dtype == np.float32, name
        assert not b.any(), name
        assert np.abs(w).max() <= limit and np.abs(w).max() > 0.9 * limit, name
    for name, m in torch_layers(model):
        assert not m.bias.detach().numpy().any(), name


def test_same_outputs_with_the_same_weights(networks):
    question, model, net = networks
    net.load_torch(model)
    images = np.random.default_rng(0).uniform(-1, 1, (4, *IMAGE_SHAPE)).astype(np.float32)
    expected = load_script(question, "pytorch").reconstruct(model, images, "cpu")
    got = net.script.reconstruct(net.model, images, net.device)
    assert got.dtype == expected.dtype == np.float32
    assert np.abs(got - expected).max() < TOLERANCE, np.abs(got - expected).max()
    # and not trivially: the network does not output zeros or its input
    assert np.abs(got).max() > 0.1 and np.abs(got - images).max() > 0.1


def test_same_loss_and_gradients_with_the_same_weights(networks):
    # the same loss (a mean, not a sum) and so the same gradients for Adam
    question, model, net = networks
    pt = load_script(question, "pytorch")
    net.load_torch(model)
    images = np.random.default_rng(1).uniform(-1, 1, (4, *IMAGE_SHAPE)).astype(np.float32)
    x = torch_input(question, images)
    model.zero_grad()
    torch_loss = pt.reconstruction_loss(model(x), x)
    torch_loss.backward()
    x = network_input(net.script, question, images)
    net.model.cleargrads()
    chainer_loss = net.script.reconstruction_loss(net.model(x), x)
    chainer_loss.backward()
    assert abs(float(chainer_loss.array) - torch_loss.item()) < TOLERANCE * torch_loss.item()
    for (pt_name, module), (ch_name, link) in zip(torch_layers(model), net.layers(), strict=True):
        for name, value in module.named_parameters(recurse=False):
            expected = value.grad.numpy()
            got = getattr(link, PARAM_NAMES[name]).grad
            scale = np.abs(expected).max()
            assert scale > 0, (pt_name, name)
            assert np.abs(got - expected).max() < TOLERANCE * scale, (ch_name, name)
