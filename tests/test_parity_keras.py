"""The Keras 3 AE and ConvAE are the same networks as the PyTorch ones
(DESIGN.md section 7): same layers with the same parameter counts, same
shapes, the same initialisation rule, and -- with the PyTorch weights copied
into the Keras layers -- the same outputs, loss and gradients on the same
input (max-abs difference below 1e-4, float32).

Keras is NHWC and stores weights as TensorFlow does (tests/convert.py):

    PyTorch                                Keras
      Linear.weight           (O, I)         Dense.kernel            (I, O)
      Conv2d.weight           (O, I, kh, kw)   Conv2D.kernel           (kh, kw, I, O)
      ConvTranspose2d.weight  (I, O, kh, kw)   Conv2DTranspose.kernel  (kh, kw, O, I)
      .bias                   (O,)           .bias                   (O,)

Both AE scripts flatten NHWC images the same way (``flatten``, a reshape
of the NHWC array, in the Data section), so the Dense kernels need no row
permutation.
"""
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


def keras_model(question):
    script = load_script(question, "keras")
    script.keras.utils.set_random_seed(0)
    return getattr(script, MODELS[question])(IMAGE_SHAPE)


def keras_layers(model):
    """[(name, layer)] of the layers that hold weights, in order: the
    encoder's, then the decoder's."""
    return [(f"{part}/{layer.name}", layer)
            for part in ("encoder", "decoder") for layer in model.get_layer(part).layers if layer.weights]


def torch_input(question, images):
    """What the PyTorch network takes: the flat NHWC vector (AE) or NCHW."""
    pt = load_script(question, "pytorch")
    return torch.from_numpy(pt.flatten(images)) if question == "ae" else pt.to_nchw(images)


def keras_input(question, images):
    """What the Keras network takes: the flat NHWC vector (AE) or NHWC."""
    return load_script(question, "keras").flatten(images) if question == "ae" else images


def torch_to_keras(module, name, value):
    """A PyTorch parameter (or its gradient) in the layout of the matching Keras weight."""
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
    """A PyTorch activation shape in Keras' layout (NCHW -> NHWC; flat stays)."""
    shape = tuple(shape)
    return (shape[0], *shape[2:], shape[1]) if len(shape) == 4 else shape


@pytest.fixture(params=sorted(MODELS))
def networks(request):
    question = request.param
    return question, torch_model(question), keras_model(question)


def copy_torch_weights(model, keras_net):
    """Load the PyTorch parameters into the Keras layers, layer by layer."""
    pairs = list(zip(torch_layers(model), keras_layers(keras_net), strict=True))
    for (_, module), (name, layer) in pairs:
        values = [torch_to_keras(module, n, p) for n, p in module.named_parameters(recurse=False)]
        assert [v.shape for v in values] == [tuple(w.shape) for w in layer.weights], name
        layer.set_weights(values)


def test_same_layers_and_parameter_counts(networks):
    _, model, keras_net = networks
    torch_counts = [(name, sum(p.numel() for p in m.parameters(recurse=False)))
                    for name, m in torch_layers(model)]
    keras_counts = [(name, layer.count_params()) for name, layer in keras_layers(keras_net)]
    assert [c for _, c in keras_counts] == [c for _, c in torch_counts], (keras_counts, torch_counts)
    assert keras_net.count_params() == sum(p.numel() for p in model.parameters())
    assert len(keras_net.trainable_weights) == len(list(model.parameters()))


def test_same_shapes(networks):
    question, model, keras_net = networks
    pt, script = load_script(question, "pytorch"), load_script(question, "keras")
    images = np.zeros((2, *IMAGE_SHAPE), np.float32)
    with torch.no_grad():
        torch_codes = model.encoder(torch_input(question, images))
    keras_codes = keras_net.get_layer("encoder")(keras_input(question, images))
    assert tuple(keras_codes.shape) == nhwc_shape(torch_codes.shape)
    keras_outputs = script.reconstruct(keras_net, images)
    assert keras_outputs.shape == pt.reconstruct(model, images, "cpu").shape == images.shape
    assert keras_net.output_shape == (None, *keras_input(question, images).shape[1:])


def test_same_initialisation_rule(networks):
    # Glorot-uniform weights and zero biases in both (not the same draws)
    _, model, keras_net = networks
    for name, layer in keras_layers(keras_net):
        w, b = (v.numpy() for v in layer.weights)
        receptive = int(np.prod(w.shape[:-2])) if w.ndim == 4 else 1
        fan_in, fan_out = (w.shape[-2] * receptive, w.shape[-1] * receptive)
        limit = np.sqrt(6.0 / (fan_in + fan_out))
        assert not b.any(), name
        assert np.abs(w).max() <= limit and np.abs(w).max() > 0.9 * limit, name
    for name, m in torch_layers(model):
        assert not m.bias.detach().numpy().any(), name


def test_same_outputs_with_the_same_weights(networks):
    question, model, keras_net = networks
    copy_torch_weights(model, keras_net)
    images = np.random.default_rng(0).uniform(-1, 1, (4, *IMAGE_SHAPE)).astype(np.float32)
    expected = load_script(question, "pytorch").reconstruct(model, images, "cpu")  # NCHW inside
    got = load_script(question, "keras").reconstruct(keras_net, images)           # NHWC throughout
    assert got.dtype == expected.dtype == np.float32
    assert np.abs(got - expected).max() < TOLERANCE, np.abs(got - expected).max()
    # and not trivially: the network does not output zeros or its input
    assert np.abs(got).max() > 0.1 and np.abs(got - images).max() > 0.1


def test_same_loss_and_gradients_with_the_same_weights(networks):
    question, model, keras_net = networks
    pt, script = load_script(question, "pytorch"), load_script(question, "keras")
    tf = script.tf
    copy_torch_weights(model, keras_net)
    images = np.random.default_rng(1).uniform(-1, 1, (4, *IMAGE_SHAPE)).astype(np.float32)

    model.train()
    model.zero_grad()
    x = torch_input(question, images)
    torch_loss = pt.reconstruction_loss(model(x), x)
    torch_loss.backward()
    torch_grads = [torch_to_keras(m, n, p.grad) for _, m in torch_layers(model)
                   for n, p in m.named_parameters(recurse=False)]

    with tf.GradientTape() as tape:
        x = keras_input(question, images)
        keras_loss = script.reconstruction_loss(keras_net(x, training=True), x)
    keras_grads = [g.numpy() for g in tape.gradient(keras_loss, keras_net.trainable_variables)]

    assert abs(float(keras_loss) - torch_loss.item()) < TOLERANCE
    assert len(keras_grads) == len(torch_grads)
    for got, expected in zip(keras_grads, torch_grads):
        assert got.shape == expected.shape
        assert np.abs(got - expected).max() < TOLERANCE * max(1.0, np.abs(expected).max())
