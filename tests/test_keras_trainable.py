"""The Keras-2 GAN ``trainable`` recipe under Keras 3: what actually happens.

The article (keras_dcgan_tips_article.json, "Kerasのtrainable") teaches the
Keras-2 recipe: compile D while it is trainable, set ``D.trainable = False``,
then build and compile ``combined = G -> D``, and never touch ``trainable``
again.  In Keras 2 this works because ``trainable`` is read when ``compile()``
collects the trainable weights for that model's train function, so D keeps
its "trainable" snapshot and ``combined`` keeps its "D frozen" snapshot.

Keras 3 (3.15, TensorFlow backend, default ``run_eagerly=False``) reads
``trainable`` neither at ``compile()`` nor at every call: ``train_step`` reads
``self.trainable_weights`` while the train function is *traced*, which is the
first ``train_on_batch``/``fit`` after ``compile()`` (``compile()`` resets
``train_function``); that traced function is then reused and the flag is not
read again.  Observed, step by step (asserted below):

1. Article recipe, generator step: D fixed, G changes (``combined`` was first
   traced while ``D.trainable`` was False).
2. Article recipe, ``D.train_on_batch``: trains nothing.  No exception; Keras
   warns ``UserWarning: The model does not have any trainable weights.`` and
   returns a loss.  D was compiled while trainable, but its train function is
   traced now, with ``D.trainable == False``.
3. ``D.trainable = True`` alone does NOT help afterwards: D's stale trace
   (no trainable weights) is reused, D stays unchanged, no warning this time.
   ``D.trainable = True`` followed by ``D.compile(...)`` (fresh optimizer)
   does: D changes, G stays fixed.  With ``D.trainable = False`` before the
   generator step, D stays fixed again.
4. Once both traces exist the flag is ignored: D keeps training even with
   ``D.trainable = False``, and the generator step keeps D fixed even with
   ``D.trainable = True``.  So "set ``trainable`` before each
   ``train_on_batch``" only works because each model's *first* step saw the
   right value (or because you re-compile).  With ``run_eagerly=True`` the
   flag is read at every call, but then each optimizer only accepts the
   variables it was built with (``ValueError: Unknown variable``).
   The robust Keras-3 way is a custom ``train_step``/loop that applies
   gradients to ``G.trainable_variables`` or ``D.trainable_variables``.
"""
import warnings

import numpy as np
import pytest

from common import compat

keras = compat.import_keras()
L = keras.layers

N = 16
_rng = np.random.default_rng(0)
Z = _rng.normal(size=(N, 4)).astype("float32")
X = _rng.normal(size=(N, 8)).astype("float32")
Y = (_rng.random((N, 1)) > 0.5).astype("float32")
ONES = np.ones((N, 1), "float32")

NO_WEIGHTS_MSG = "The model does not have any trainable weights"


def _adam():
    return keras.optimizers.Adam(1e-2)


def _article_recipe():
    """G (z:4 -> 8 features), D (8 -> 1, sigmoid), wired the Keras-2 way."""
    keras.utils.set_random_seed(0)
    G = keras.Sequential([keras.Input((4,)), L.Dense(8, activation="relu"), L.Dense(8)])
    D = keras.Sequential([keras.Input((8,)), L.Dense(8, activation="relu"),
                          L.Dense(1, activation="sigmoid")])
    D.compile(optimizer=_adam(), loss="binary_crossentropy")  # while trainable
    D.trainable = False
    combined = keras.Sequential([G, D])
    combined.compile(optimizer=_adam(), loss="binary_crossentropy")
    return G, D, combined


def _w(model):
    return [np.array(a, copy=True) for a in model.get_weights()]


def _same(a, b):
    return len(a) == len(b) and all(np.array_equal(p, q) for p, q in zip(a, b))


def _step(model, a, b, G, D):
    """One train_on_batch; returns (D changed, G changed, warning messages)."""
    d0, g0 = _w(D), _w(G)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.train_on_batch(a, b)
    return not _same(d0, _w(D)), not _same(g0, _w(G)), [str(w.message) for w in caught]


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_article_recipe_then_keras3_fix():
    G, D, combined = _article_recipe()

    # 1. Generator step with the article's recipe.
    d_changed, g_changed, _ = _step(combined, Z, ONES, G, D)
    assert not d_changed, "generator step must leave D's weights unchanged"
    assert g_changed, "generator step must change G's weights"

    # 2. D's step with the article's recipe: nothing trains (a warning, no raise).
    d_changed, g_changed, msgs = _step(D, X, Y, G, D)
    assert not d_changed, ("Keras 3: D.train_on_batch after the Keras-2 recipe "
                           "must train nothing (trainable read at first trace)")
    assert not g_changed, "D's step must never touch G"
    assert any(NO_WEIGHTS_MSG in m for m in msgs), (
        f"expected the warning {NO_WEIGHTS_MSG!r}, got {msgs}")

    # 3a. D.trainable = True without re-compiling: the stale trace is reused.
    D.trainable = True
    d_changed, g_changed, msgs = _step(D, X, Y, G, D)
    assert not d_changed, ("Keras 3.15: D.trainable=True alone does not help once "
                           "D's train function was traced frozen; re-compile needed")
    assert not g_changed

    # 3b. D.trainable = True + re-compile: D trains, G fixed.
    D.compile(optimizer=_adam(), loss="binary_crossentropy")
    d_changed, g_changed, msgs = _step(D, X, Y, G, D)
    assert d_changed, "after D.trainable=True and D.compile, D's step must change D"
    assert not g_changed, "D's step must leave G's weights unchanged"
    assert not any(NO_WEIGHTS_MSG in m for m in msgs), msgs

    # 3c. D.trainable = False before the generator step: D fixed, G changes.
    D.trainable = False
    d_changed, g_changed, _ = _step(combined, Z, ONES, G, D)
    assert not d_changed, "generator step must leave D's weights unchanged again"
    assert g_changed, "generator step must change G's weights again"


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_trainable_is_frozen_at_first_trace():
    """Toggling before each step 'works' only because of each model's first
    trace; after that the flag is ignored (point 4 of the module docstring)."""
    G, D, combined = _article_recipe()

    D.trainable = True  # D's first step sees True: no re-compile needed
    d_changed, g_changed, _ = _step(D, X, Y, G, D)
    assert d_changed and not g_changed, "first D step with trainable=True trains D only"
    D.trainable = False
    d_changed, g_changed, _ = _step(combined, Z, ONES, G, D)
    assert not d_changed and g_changed, "generator step trains G only"

    # Now the flag no longer matters: both traces are cached.
    D.trainable = False
    d_changed, _, _ = _step(D, X, Y, G, D)
    assert d_changed, "Keras 3.15: D still trains with D.trainable=False (cached trace)"
    D.trainable = True
    d_changed, g_changed, _ = _step(combined, Z, ONES, G, D)
    assert not d_changed and g_changed, (
        "Keras 3.15: generator step still keeps D fixed with D.trainable=True (cached trace)")
