"""Minibatch iteration with a resumable state.

Every epoch is a fresh permutation of all sample indices; an epoch hands
out each sample exactly once (no sample dropped or repeated).  When the
data set size is not a multiple of the batch size, the last batch of an
epoch is completed with the first samples of the next epoch's permutation,
so every batch has the same size and still nothing is skipped.
"""
import numpy as np


class Minibatches:
    """Endless iterator of index arrays of length ``batch_size``.

    >>> it = Minibatches(10, 4, np.random.default_rng(0))
    >>> idx = next(it)          # 4 indices into the data set
    The state (current permutation, position, generator state) is a plain
    JSON-able dict, so a resumed run draws the same batches as an
    uninterrupted one.
    """

    def __init__(self, n, batch_size, rng):
        if n <= 0:
            raise ValueError("the data set is empty")
        if batch_size <= 0:
            raise ValueError("batch size must be positive")
        self.n = int(n)
        self.batch_size = int(batch_size)
        self.rng = rng
        self.epoch = 0
        self._perm = rng.permutation(self.n)
        self._pos = 0

    def __iter__(self):
        return self

    def __next__(self):
        out = []
        need = self.batch_size
        while need:
            take = self._perm[self._pos:self._pos + need]
            out.append(take)
            need -= len(take)
            self._pos += len(take)
            if self._pos == self.n:
                self.epoch += 1
                self._perm = self.rng.permutation(self.n)
                self._pos = 0
        return np.concatenate(out)

    def state_dict(self):
        return {"n": self.n, "batch_size": self.batch_size, "epoch": self.epoch,
                "pos": self._pos, "perm": self._perm.tolist(),
                "rng": self.rng.bit_generator.state}

    def load_state_dict(self, state):
        if state["n"] != self.n:
            raise ValueError(f"checkpoint was made on {state['n']} samples, data has {self.n}")
        self.batch_size = int(state["batch_size"])
        self.epoch = int(state["epoch"])
        self._pos = int(state["pos"])
        self._perm = np.asarray(state["perm"], dtype=np.int64)
        self.rng.bit_generator.state = state["rng"]


class Feed:
    """Augmented minibatches of one data set, with a resumable state.

    ``next()`` returns ``images`` (float32 NHWC) -- or ``(images, masks)``
    when masks are given (identical geometry, masks nearest-neighbour), and
    ``labels`` as well when ``with_labels``.  Batch order and augmentation
    draw from two generators seeded from ``seed``, so the same seed gives
    the same minibatches in every framework and after a resume."""

    def __init__(self, images, batch_size, seed, augmenter=None, masks=None, labels=None):
        self.images = images
        self.masks = masks
        self.labels = labels
        self.augmenter = augmenter
        order_rng, self.aug_rng = [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(2)]
        self.batches = Minibatches(len(images), batch_size, order_rng)

    def next(self):
        idx = next(self.batches)
        images = self.images[idx]
        out = []
        if self.masks is not None:
            masks = self.masks[idx]
            if self.augmenter is not None:
                images, masks = self.augmenter.pair(images, masks, self.aug_rng)
            out = [images, masks]
        else:
            if self.augmenter is not None:
                images = self.augmenter(images, self.aug_rng)
            out = [images]
        if self.labels is not None:
            out.append(self.labels[idx])
        return out[0] if len(out) == 1 else tuple(out)

    def state_dict(self):
        return {"batches": self.batches.state_dict(), "augment_rng": self.aug_rng.bit_generator.state}

    def load_state_dict(self, state):
        self.batches.load_state_dict(state["batches"])
        self.aug_rng.bit_generator.state = state["augment_rng"]
