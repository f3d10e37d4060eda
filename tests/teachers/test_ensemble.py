"""Teacher ensembles: the two combination rules against NumPy by hand, weights chosen on dev."""
import numpy as np
import pytest

from distill.core.errors import UserError
from teachers.ensemble import choose_weights, combine, simplex_grid


def test_mean_of_logits_and_mean_of_probabilities():
    a = np.array([[2.0, 0.0], [0.0, 1.0]], dtype=np.float32)
    b = np.array([[0.0, 4.0], [1.0, 0.0]], dtype=np.float32)
    np.testing.assert_allclose(combine([a, b], [0.25, 0.75], "logits"), 0.25 * a + 0.75 * b, rtol=1e-6)
    np.testing.assert_allclose(combine([a, b], [1, 3], "logits"), 0.25 * a + 0.75 * b, rtol=1e-6)

    def softmax(z):
        e = np.exp(z - z.max(1, keepdims=True))
        return e / e.sum(1, keepdims=True)

    mixed = combine([a, b], [0.5, 0.5], "probabilities")
    np.testing.assert_allclose(softmax(mixed), 0.5 * softmax(a) + 0.5 * softmax(b), rtol=1e-5)
    with pytest.raises(UserError, match="rule"):
        combine([a, b], [1, 1], "median")
    with pytest.raises(UserError, match="2 ensemble weights for 1"):
        combine([a], [1, 1])


def test_grid_covers_the_simplex():
    grid = simplex_grid(3, 0.1)
    assert len(grid) == 66 and all(abs(w.sum() - 1) < 1e-9 for w in grid)
    assert len(simplex_grid(2, 0.5)) == 3
    with pytest.raises(UserError, match="divide 1"):
        simplex_grid(2, 0.3)


def test_weights_chosen_on_dev_favour_the_teacher_that_is_right_on_dev():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    good = np.eye(2)[y] * 2 + rng.normal(0, 0.3, (200, 2))       # right on every row
    noisy = rng.normal(0, 1.0, (200, 2))                         # chance
    info = choose_weights([noisy, good], y, "logits", "dev")
    assert info["chosen_on"] == "dev" and info["weights"][1] > info["weights"][0]
    assert info["dev_accuracy"] == pytest.approx(1.0)
    assert info["members_dev_accuracy"][1] == 1.0 and info["members_dev_accuracy"][0] < 0.7
    # two equally good teachers: the tie goes to equal weights
    assert choose_weights([good, good], y, "logits", "dev")["weights"] == [0.5, 0.5]
    assert choose_weights([noisy, good], y, weights="equal")["weights"] == [0.5, 0.5]
    assert choose_weights([noisy, good], y, weights=[1, 3])["weights"] == [0.25, 0.75]
    with pytest.raises(UserError, match="'dev', 'equal'"):
        choose_weights([noisy, good], y, weights="best")
