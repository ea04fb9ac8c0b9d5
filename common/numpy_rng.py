"""NumPy's global generator (the one Chainer's initialisers and random
functions draw from) saved to and restored from an .npz of plain arrays, so
that a resumed run continues the same random stream; never unpickles."""
import numpy as np

from common import runs


def save(path):
    """Write the state of ``np.random``'s global MT19937 generator to ``path``."""
    _, key, pos, has_gauss, gauss = np.random.get_state()
    np.savez(path, key=key, pos=pos, has_gauss=has_gauss, gauss=gauss)


def load(path):
    """Restore the state saved by ``save``; a missing or broken file is one
    line naming it (``runs.reading``)."""
    rng = runs.load_npz(path)
    with runs.reading(path):
        np.random.set_state(("MT19937", rng["key"], int(rng["pos"]), int(rng["has_gauss"]), float(rng["gauss"])))
