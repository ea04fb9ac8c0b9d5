"""The TF-Slim VAE is the same network as the PyTorch one (DESIGN.md
section 7): same layers with the same parameter counts, same shapes, and --
with the PyTorch weights copied into the TF variables -- the same encoder
means and log-variances, the same decoded images for the same z and the
same negative ELBO for the same eps (max-abs difference below 1e-4,
float32)."""
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
    if isinstance(module, torch.nn.Linear):
        return torch_to_tf_dense(value)
    raise TypeError(f"no conversion for {type(module).__name__}")


@pytest.fixture(scope="module")
def tf_slim():
    from common import compat
    return compat.import_tf_slim()


class TFNetwork:
    """The TF-Slim script's inference graph, in its own graph and session,
    initialised as for training."""

    def __init__(self, latent_dim, tf, slim):
        self.script = load_script("vae", "tf_slim")
        self.graph = tf.Graph()
        with self.graph.as_default():
            tf.set_random_seed(0)
            self.model = self.script.inference_graph(IMAGE_SHAPE, latent_dim)
            self.variables = slim.get_model_variables()
            init_op = tf.global_variables_initializer()
        self.graph.finalize()
        self.sess = tf.Session(graph=self.graph)
        self.sess.run(init_op)

    def load(self, values):
        """Assign NumPy arrays to the model variables, in order: each
        variable's initializer run with its initial value fed, so no op
        is added to the finalised graph."""
        with self.graph.as_default():
            self.sess.run([v.initializer for v in self.variables],
                          feed_dict={v.initial_value: value for v, value in zip(self.variables, values)})

    def close(self):
        self.sess.close()


@pytest.fixture(params=LATENT_DIMS, ids=[f"z{d}" for d in LATENT_DIMS])
def networks(request, tf_slim):
    latent_dim = request.param
    pt = load_script("vae", "pytorch")
    torch.manual_seed(0)
    model = pt.VAE(IMAGE_SHAPE, latent_dim).eval()
    net = TFNetwork(latent_dim, *tf_slim)
    yield latent_dim, pt, model, net
    net.close()


def test_same_layers_and_parameter_counts(networks):
    _, _, model, net = networks
    torch_counts = [(name, sum(p.numel() for p in m.parameters(recurse=False)))
                    for name, m in torch_layers(model)]
    tf_counts = [(scope, sum(int(np.prod(v.shape)) for v in vs)) for scope, vs in tf_layers(net.variables)]
    # encoder hidden, mu, logvar; decoder hidden, logits
    assert len(tf_counts) == len(torch_counts) == 5, (tf_counts, torch_counts)
    assert [c for _, c in tf_counts] == [c for _, c in torch_counts], (tf_counts, torch_counts)
    assert [s.split("/")[0] for s, _ in tf_counts] == [n.split(".")[0] for n, _ in torch_counts]
    assert sum(c for _, c in tf_counts) == sum(p.numel() for p in model.parameters())


def test_same_shapes(networks):
    latent_dim, pt, model, net = networks
    images = np.zeros((3, *IMAGE_SHAPE), np.float32)
    z = np.zeros((5, latent_dim), np.float32)
    torch_mu, torch_logvar = pt.encode(model, images, "cpu")
    tf_mu, tf_logvar = net.script.encode(net.sess, net.model, images)
    assert tf_mu.shape == tf_logvar.shape == torch_mu.shape == torch_logvar.shape == (3, latent_dim)
    tf_decoded = net.script.decode(net.sess, net.model, z, IMAGE_SHAPE)
    assert tf_decoded.shape == pt.decode(model, z, IMAGE_SHAPE, "cpu").shape == (5, *IMAGE_SHAPE)
    assert net.script.model_info(IMAGE_SHAPE, latent_dim) == pt.model_info(IMAGE_SHAPE, latent_dim)


def test_same_initialisation_rule(networks):
    # Glorot-uniform weights and zero biases in both (not the same draws)
    _, _, model, net = networks
    for scope, (weights, biases) in tf_layers(net.variables):
        w, b = net.sess.run([weights, biases])
        limit = np.sqrt(6.0 / (w.shape[0] + w.shape[1]))
        assert not b.any(), scope
        assert np.abs(w).max() <= limit and np.abs(w).max() > 0.8 * limit, scope
    for name, m in torch_layers(model):
        assert not m.bias.detach().numpy().any(), name


def test_same_outputs_with_the_same_weights(networks):
    latent_dim, pt, model, net = networks
    values = []
    for _, module in torch_layers(model):
        values += [torch_to_tf(module, name, p) for name, p in module.named_parameters(recurse=False)]
    assert [v.shape for v in values] == [tuple(v.shape) for v in net.variables]
    net.load(values)
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 1, (6, *IMAGE_SHAPE)).astype(np.float32)
    # the encoder: the same mu and logvar
    torch_mu, torch_logvar = pt.encode(model, images, "cpu")
    tf_mu, tf_logvar = net.script.encode(net.sess, net.model, images)
    assert np.abs(tf_mu - torch_mu).max() < TOLERANCE, np.abs(tf_mu - torch_mu).max()
    assert np.abs(tf_logvar - torch_logvar).max() < TOLERANCE, np.abs(tf_logvar - torch_logvar).max()
    # the decoder: the same images for the same z (spread over the prior's range)
    z = latent.gaussian(16, latent_dim, seed=0, stream=latent.TEST_SAMPLES) * 2
    expected = pt.decode(model, z, IMAGE_SHAPE, "cpu")
    got = net.script.decode(net.sess, net.model, z, IMAGE_SHAPE)
    assert got.dtype == expected.dtype == np.float32
    assert np.abs(got - expected).max() < TOLERANCE, np.abs(got - expected).max()
    # and not trivially: the decoded pixels vary with z
    assert got.std(axis=0).max() > 0.01
    # the whole network and the loss: the same negative ELBO and terms for the same eps
    eps = latent.gaussian(len(images), latent_dim, seed=0, stream=latent.TEST_EPS)
    expected_terms = pt.evaluate(model, images, eps, "cpu")
    got_terms = net.script.evaluate(net.sess, net.model, images, eps)
    for key in ("loss", "bce", "kl"):
        assert got_terms[key] == pytest.approx(expected_terms[key], rel=1e-5, abs=1e-4), key
