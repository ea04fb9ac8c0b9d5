"""Framework-neutral code shared by every answer script.

Nothing in this package imports torch, tensorflow, keras or chainer: data
goes in and out as NumPy arrays (images float32 NHWC).  Modules:

- ``errors``     UsageError, the one exception that means "bad input"
- ``datasets``   imori / mnist / fashion_mnist / cifar10 loaders, downloads
- ``augment``    flips, rotation, padded crop, paired image+mask transforms
- ``batching``   the per-epoch reshuffling minibatch iterator
- ``pictures``   grids, input|output pairs, curves, scatter, interpolation
- ``cli``        the argument parser every script shares, seeding, main()
- ``runs``       output directory layout, metrics.csv, checkpoint metadata
- ``compat``     the small shims that make Chainer and tf-slim import
"""
