"""Weight-layout conversions from PyTorch to TensorFlow/Keras, for the
parity tests (pure NumPy: arrays in, float32 arrays out).

PyTorch stores                      TensorFlow / Keras store
  Conv2d weight      (O, I, kh, kw)   conv kernel            (kh, kw, I, O)   HWIO
  ConvTranspose2d    (I, O, kh, kw)   conv-transpose kernel  (kh, kw, O, I)
  Linear weight      (O, I)           Dense kernel           (I, O)
Biases are the same 1-D vectors in both.
"""
import numpy as np


def torch_to_tf_conv(weight):
    """Conv2d weight OIHW (out, in, kh, kw) -> TF/Keras HWIO (kh, kw, in, out)."""
    return np.ascontiguousarray(np.asarray(weight, np.float32).transpose(2, 3, 1, 0))


def torch_to_tf_deconv(weight):
    """ConvTranspose2d weight (in, out, kh, kw) -> TF/Keras conv-transpose
    kernel (kh, kw, out, in).  The kernel is not flipped: both frameworks
    compute the transposed convolution as the gradient of the same
    cross-correlation."""
    return np.ascontiguousarray(np.asarray(weight, np.float32).transpose(2, 3, 1, 0))


def torch_to_tf_dense(weight):
    """Linear weight (out, in) -> Dense kernel (in, out)."""
    return np.ascontiguousarray(np.asarray(weight, np.float32).T)
