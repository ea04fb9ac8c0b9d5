"""Small import shims, one place for all of them.

Each shim works around one upstream break and says which.  Nothing here
imports a framework at module import time: the ``import_*`` functions are
called by the answer scripts, which then own the framework modules.
``tests/test_compat.py`` fails if any shim stops being needed-and-working.
"""
import importlib
import importlib.util
import os
import sys
import types
import warnings


def _quiet_tensorflow():
    # TensorFlow prints C++ start-up chatter (oneDNN, CPU features) to stderr;
    # readers of an exercise script want to see their own output.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def _import_tensorflow_quietly():
    """TF 2.21 writes start-up notices (absl, oneDNN, missing CUDA drivers)
    straight to file descriptor 2 while importing, whatever
    TF_CPP_MIN_LOG_LEVEL says.  Point fd 2 at /dev/null for the import only;
    Python exceptions still propagate and print afterwards."""
    _quiet_tensorflow()
    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    saved, null = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 2)
    try:
        return importlib.import_module("tensorflow")
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(null)


def remove_distutils_shim():
    """Chainer 7.8.1 imports ``numpy.distutils`` at import time, which fails
    under setuptools' distutils shim (setuptools >= 60 installs a
    ``DistutilsMetaFinder`` on ``sys.meta_path`` that hands out its own
    ``distutils``).  Removing the finder before the import is equivalent to
    starting Python with ``SETUPTOOLS_USE_DISTUTILS=stdlib``.  Returns the
    number of finders removed."""
    before = len(sys.meta_path)
    sys.meta_path[:] = [f for f in sys.meta_path
                        if type(f).__name__ != "DistutilsMetaFinder"]
    return before - len(sys.meta_path)


def stub_numpy_distutils():
    """On Python >= 3.12 NumPy 1.26 ships no ``numpy.distutils`` (the stdlib
    ``distutils`` it builds on is gone), but Chainer 7.8.1's
    ``_environment_check.py`` imports ``numpy.distutils.system_info`` at
    import time.  Chainer calls only ``system_info.get_info('blas_opt')``,
    and only on macOS, to warn about Accelerate; the stub's ``get_info``
    returns ``{}`` (no BLAS information, so that warning is never given).
    Does nothing where the real package exists.  Returns True if the stub
    was installed."""
    numpy = importlib.import_module("numpy")
    if importlib.util.find_spec("numpy.distutils") is not None:
        return False
    package = types.ModuleType("numpy.distutils")
    package.__path__ = []
    system_info = types.ModuleType("numpy.distutils.system_info")
    system_info.get_info = lambda name, notfound_action=0: {}
    package.system_info = system_info
    sys.modules["numpy.distutils"] = package
    sys.modules["numpy.distutils.system_info"] = system_info
    numpy.distutils = package
    return True


def import_chainer():
    """Import and return ``chainer`` (7.8.1, the last release) on this stack."""
    if "chainer" not in sys.modules:
        if not stub_numpy_distutils():   # Python 3.12: no numpy.distutils
            remove_distutils_shim()      # Python 3.11: the real one
        with warnings.catch_warnings():
            # chainer/_environment_check.py imports the deprecated
            # pkg_resources API; harmless with setuptools < 81 (pinned).
            warnings.filterwarnings("ignore", message="pkg_resources is deprecated")
            warnings.filterwarnings("ignore", category=DeprecationWarning)
            importlib.import_module("chainer")
    return sys.modules["chainer"]


def alias_tf_keras_legacy_layers():
    """TF 2.21's ``tensorflow/python/layers/normalization.py`` (used by
    tf-slim's ``batch_norm``) lazily imports
    ``tf_keras.legacy_tf_layers.normalization``, but tf-keras 2.21 keeps that
    module at ``tf_keras.src.legacy_tf_layers``.  Register the old names."""
    src = importlib.import_module("tf_keras.src.legacy_tf_layers")
    sys.modules.setdefault("tf_keras.legacy_tf_layers", src)
    for name in ("normalization", "base", "core", "convolutional", "pooling"):
        try:
            mod = importlib.import_module(f"tf_keras.src.legacy_tf_layers.{name}")
        except ImportError:  # pragma: no cover - depends on tf-keras layout
            continue
        sys.modules.setdefault(f"tf_keras.legacy_tf_layers.{name}", mod)


def alias_ops_tensor():
    """tf-slim 1.1.0's rank-2 ``batch_norm`` reads ``ops.Tensor``; TF moved
    the class to ``tensorflow.python.framework.tensor.Tensor`` and dropped
    the alias from ``ops``.  Put it back."""
    ops = importlib.import_module("tensorflow.python.framework.ops")
    tensor = importlib.import_module("tensorflow.python.framework.tensor")
    if not hasattr(ops, "Tensor"):
        ops.Tensor = tensor.Tensor


def import_tf_slim():
    """Import TensorFlow and tf-slim 1.1.0 on TF 2.21; returns ``(tf, slim)``
    where ``tf`` is ``tensorflow.compat.v1``.  Build graphs inside
    ``with tf.Graph().as_default():`` and run them in a ``tf.Session``; do not
    disable eager execution globally (that would break Keras 3 in the same
    process)."""
    tensorflow = _import_tensorflow_quietly()
    alias_tf_keras_legacy_layers()
    alias_ops_tensor()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        slim = importlib.import_module("tf_slim")
    # tf-slim builds its layers through the deprecated tf.layers classes,
    # which warn on every call; the answers use them on purpose.
    warnings.filterwarnings("ignore", message=r".*is deprecated and will be removed")
    tensorflow.get_logger().setLevel("ERROR")
    return tensorflow.compat.v1, slim


def import_keras():
    """Import Keras 3 on the TensorFlow backend (the answers' custom train
    steps use ``tf.GradientTape``)."""
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    _import_tensorflow_quietly()
    keras = importlib.import_module("keras")
    if keras.backend.backend() != "tensorflow":
        raise RuntimeError(f"the Keras answers need KERAS_BACKEND=tensorflow, not {keras.backend.backend()}")
    return keras
