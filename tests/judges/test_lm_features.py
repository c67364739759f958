"""Residual-stream features of a chat LM (alignkit.judges.recipe.lm_features) on the tiny random Llama."""

from __future__ import annotations

import numpy as np
import pytest

from alignkit.errors import AlignkitError

P = ["How do I bake bread?", "Tell me a joke", ""]
C = ["Mix flour, water, salt and yeast, knead, let it rise and bake it at 230 C for 30 minutes.",
     "Why did the chicken cross the road? To get to the other side.", ""]


@pytest.fixture(scope="module")
def lm():
    from alignkit.judges.recipe.lm_features import LMHidden

    return LMHidden("tiny-random-llama", layers=(1, 2), batch_size=2)


def test_shapes_and_layers(lm):
    f = lm.features(P, C)
    assert sorted(f) == [1, 2]
    for k in (1, 2):
        assert f[k].shape == (3, 2 * lm.hidden) and f[k].dtype == np.float32
        assert np.isfinite(f[k]).all()
    assert not np.allclose(f[1], f[2])              # different layers give different states
    assert not np.allclose(f[1][0], f[1][1])        # different texts give different states
    assert len(lm.base.layers) == 2                 # only the layers up to the deepest requested one are kept


def test_batching_and_padding_do_not_change_features(lm):
    together = lm.features(P, C)
    alone = [lm.features([p], [c]) for p, c in zip(P, C)]
    for k in (1, 2):
        np.testing.assert_allclose(together[k], np.concatenate([a[k] for a in alone]), atol=1e-4)


def test_the_completion_not_only_the_prompt_matters(lm):
    a = lm.features([P[0], P[0]], [C[0], "I'm sorry, I can't help with that."])[2]
    assert not np.allclose(a[0], a[1])
    # the mean is over completion tokens only: a different prompt changes it less than a different completion
    b = lm.features(["Explain bread baking please, step by step"], [C[0]])[2]
    assert np.linalg.norm(b[0] - a[0]) < np.linalg.norm(a[1] - a[0])


def test_truncated_model_keeps_only_needed_layers():
    from alignkit.judges.recipe.lm_features import LMHidden

    one = LMHidden("tiny-random-llama", layers=(1,))
    assert len(one.base.layers) == 1
    two = LMHidden("tiny-random-llama", layers=(1, 2))
    np.testing.assert_allclose(one.features(P, C)[1], two.features(P, C)[1], atol=1e-5)


@pytest.mark.parametrize("layers", [(0,), (3,), ()])
def test_layers_out_of_range_are_a_user_error(layers):
    from alignkit.judges.recipe.lm_features import LMHidden

    with pytest.raises(AlignkitError, match="within 1..2"):
        LMHidden("tiny-random-llama", layers=layers)
