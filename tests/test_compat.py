"""The shims in common/compat.py: each one is needed on the pinned stack
(the upstream break is reproduced without it) and works with it.  Each
check runs in a fresh interpreter so import order cannot hide a break."""
import subprocess
import sys

from tests.conftest import ROOT

QUIET = "import os; os.environ['TF_CPP_MIN_LOG_LEVEL'] = '3'; import sys; sys.path.insert(0, '.');"


def _python(code):
    env = {"PATH": "/usr/bin:/bin", "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.run([sys.executable, "-c", QUIET + code], cwd=ROOT, capture_output=True,
                          text=True, timeout=300, env=env)
    return proc.returncode, proc.stdout + proc.stderr


def test_chainer_needs_and_gets_the_distutils_shim():
    code, out = _python("import chainer")
    assert code != 0 and "distutils" in out  # the break the shim works around
    code, out = _python("from common import compat; ch = compat.import_chainer(); "
                        "import chainer.functions as F, numpy as np; "
                        "print(ch.__version__, F.relu(np.array([-1.0, 2.0], 'f')).array.tolist())")
    assert code == 0, out
    assert "7.8.1 [0.0, 2.0]" in out
    assert "pkg_resources is deprecated" not in out


SLIM_GRAPH = """
import numpy as np
with tf.Graph().as_default() as graph:
    x = tf.placeholder(tf.float32, [None, 8, 8, 3])
    h = slim.conv2d(x, 4, 3, activation_fn=None)
    h = slim.batch_norm(h, is_training=True, scale=True)
    h = slim.fully_connected(slim.flatten(h), 5, activation_fn=None)
    h = slim.batch_norm(h, is_training=True, scale=True)   # rank 2: needs ops.Tensor
    updates = tf.get_collection(tf.GraphKeys.UPDATE_OPS)
    with tf.Session(graph=graph) as sess:
        sess.run(tf.global_variables_initializer())
        out, _ = sess.run([h, updates], {x: np.ones((2, 8, 8, 3), np.float32)})
print('slim', out.shape, len(updates))
"""


def test_tf_slim_needs_and_gets_its_aliases():
    plain = "import tensorflow.compat.v1 as tf, tf_slim as slim; from common import compat;"
    code, out = _python(plain + "compat.alias_ops_tensor()" + SLIM_GRAPH)
    assert code != 0 and "tf_keras.legacy_tf_layers" in out  # needs alias_tf_keras_legacy_layers
    code, out = _python(plain + "compat.alias_tf_keras_legacy_layers()" + SLIM_GRAPH)
    assert code != 0 and "has no attribute 'Tensor'" in out  # needs alias_ops_tensor
    code, out = _python("from common import compat; tf, slim = compat.import_tf_slim()" + SLIM_GRAPH)
    assert code == 0, out
    assert "slim (2, 5) 4" in out


def test_legacy_layers_alias_resolves():
    code, out = _python("from common import compat; compat.import_tf_slim(); "
                        "import importlib; m = importlib.import_module('tf_keras.legacy_tf_layers.normalization'); "
                        "print('alias', hasattr(m, 'BatchNormalization'))")
    assert code == 0, out
    assert "alias True" in out


def test_keras_eager_works_around_a_slim_graph_in_one_process():
    code, out = _python(
        "from common import compat; keras = compat.import_keras(); import numpy as np;"
        "a = keras.layers.Dense(2)(np.ones((1, 3), 'f'));"
        "tf, slim = compat.import_tf_slim()" + SLIM_GRAPH +
        "b = keras.layers.Dense(2)(np.ones((1, 3), 'f')); print('keras', a.shape, b.shape, keras.backend.backend())")
    assert code == 0, out
    assert "keras (1, 2) (1, 2) tensorflow" in out
