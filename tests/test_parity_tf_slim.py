"""The TF-Slim AE and ConvAE are the same networks as the PyTorch ones
(DESIGN.md section 7): same layers with the same parameter counts, same
shapes, and -- with the PyTorch weights copied into the TF variables -- the
same outputs on the same input (max-abs difference below 1e-4, float32)."""
import numpy as np
import pytest

from tests.conftest import load_script
from tests.convert import torch_to_tf_conv, torch_to_tf_deconv, torch_to_tf_dense

torch = pytest.importorskip("torch")

IMAGE_SHAPE = (64, 64, 3)
MODELS = {"ae": "AutoEncoder", "convae": "ConvAE"}  # the network of each question, in both scripts
TOLERANCE = 1e-4


def torch_model(question):
    pt = load_script(question, "pytorch")
    torch.manual_seed(0)
    return getattr(pt, MODELS[question])(IMAGE_SHAPE).eval()


def torch_layers(model):
    """[(name, module)] of the layers that hold parameters, in order."""
    return [(name, m) for name, m in model.named_modules() if list(m.parameters(recurse=False))]


def tf_layers(variables):
    """[(scope, [variables])] grouped by layer scope, in creation order."""
    layers = {}
    for v in variables:
        layers.setdefault(v.op.name.rsplit("/", 1)[0], []).append(v)
    return list(layers.items())


def torch_to_tf(module, name, value):
    """A PyTorch parameter in the layout of the matching TF variable."""
    value = value.detach().numpy()
    if name == "bias":
        return value
    if isinstance(module, torch.nn.Conv2d):
        return torch_to_tf_conv(value)
    if isinstance(module, torch.nn.ConvTranspose2d):
        return torch_to_tf_deconv(value)
    if isinstance(module, torch.nn.Linear):
        return torch_to_tf_dense(value)
    raise TypeError(f"no conversion for {type(module).__name__}")


def nhwc_shape(shape):
    """A PyTorch activation shape in TF's layout (NCHW -> NHWC; flat stays)."""
    shape = tuple(shape)
    return (shape[0], *shape[2:], shape[1]) if len(shape) == 4 else shape


@pytest.fixture(scope="module")
def tf_slim():
    from common import compat
    return compat.import_tf_slim()


class TFNetwork:
    """The TF-Slim script's inference graph for IMAGE_SHAPE, in its own
    graph and session, initialised as for training."""

    def __init__(self, question, tf, slim):
        self.script = load_script(question, "tf_slim")
        self.tf = tf
        self.graph = tf.Graph()
        with self.graph.as_default():
            tf.set_random_seed(0)
            self.model = self.script.inference_graph(IMAGE_SHAPE)
            self.codes = self.script.Encoder(self.model[0], reuse=True)
            self.variables = slim.get_model_variables()
            init_op = tf.global_variables_initializer()
        self.sess = tf.Session(graph=self.graph)
        self.sess.run(init_op)

    def load(self, values):
        """Assign NumPy arrays to the model variables, in order."""
        with self.graph.as_default():
            self.sess.run([v.assign(value) for v, value in zip(self.variables, values)])

    def close(self):
        self.sess.close()


@pytest.fixture(params=sorted(MODELS))
def networks(request, tf_slim):
    question = request.param
    net = TFNetwork(question, *tf_slim)
    yield question, torch_model(question), net
    net.close()


def test_same_layers_and_parameter_counts(networks):
    _, model, net = networks
    torch_counts = [(name, sum(p.numel() for p in m.parameters(recurse=False)))
                    for name, m in torch_layers(model)]
    tf_counts = [(scope, sum(int(np.prod(v.shape)) for v in vs)) for scope, vs in tf_layers(net.variables)]
    assert [c for _, c in tf_counts] == [c for _, c in torch_counts], (tf_counts, torch_counts)
    assert sum(c for _, c in tf_counts) == sum(p.numel() for p in model.parameters())


def test_same_shapes(networks):
    question, model, net = networks
    pt = load_script(question, "pytorch")
    images = np.zeros((2, *IMAGE_SHAPE), np.float32)
    torch_in = torch.from_numpy(pt.flatten(images)) if question == "ae" else pt.to_nchw(images)
    tf_in = net.script.flatten(images) if question == "ae" else images
    with torch.no_grad():
        torch_codes = model.encoder(torch_in)
    tf_codes = net.sess.run(net.codes, {net.model[0]: tf_in})
    assert tf_codes.shape == nhwc_shape(torch_codes.shape)
    tf_outputs = net.script.reconstruct(net.sess, net.model, images)
    assert tf_outputs.shape == pt.reconstruct(model, images, "cpu").shape == images.shape


def test_same_initialisation_rule(networks):
    # Glorot-uniform weights and zero biases in both (not the same draws)
    _, model, net = networks
    for scope, (weights, biases) in tf_layers(net.variables):
        w, b = net.sess.run([weights, biases])
        fan_in, fan_out = (w.shape[0], w.shape[1]) if w.ndim == 2 else (
            w.shape[0] * w.shape[1] * w.shape[2], w.shape[0] * w.shape[1] * w.shape[3])
        limit = np.sqrt(6.0 / (fan_in + fan_out))
        assert not b.any(), scope
        assert np.abs(w).max() <= limit and np.abs(w).max() > 0.9 * limit, scope
    for name, m in torch_layers(model):
        assert not m.bias.detach().numpy().any(), name


def test_same_outputs_with_the_same_weights(networks):
    question, model, net = networks
    values = []
    for _, module in torch_layers(model):
        values += [torch_to_tf(module, name, p) for name, p in module.named_parameters(recurse=False)]
    assert [v.shape for v in values] == [tuple(v.shape) for v in net.variables]
    net.load(values)
    images = np.random.default_rng(0).uniform(-1, 1, (4, *IMAGE_SHAPE)).astype(np.float32)
    expected = load_script(question, "pytorch").reconstruct(model, images, "cpu")  # NCHW inside
    got = net.script.reconstruct(net.sess, net.model, images)                      # NHWC throughout
    assert got.dtype == expected.dtype == np.float32
    assert np.abs(got - expected).max() < TOLERANCE, np.abs(got - expected).max()
    # and not trivially: the network does not output zeros or its input
    assert np.abs(got).max() > 0.1 and np.abs(got - images).max() > 0.1
