"""The linear-chain CRF: its loss against brute-force enumeration in NumPy, padding that never
counts, Paddle's Viterbi (paddle.text.viterbi_decode) equal to the NumPy one packages run."""
import itertools

import numpy as np
import paddle

from distill.text.viterbi import log_partition, path_score, viterbi
from students.crf import LinearChainCRF


def _crf(c, seed=0):
    rng = np.random.default_rng(seed)
    crf = LinearChainCRF(c)
    for name in ("transitions", "start", "end"):
        p = getattr(crf, name)
        p.set_value(rng.normal(size=p.shape).astype("float32"))
    return crf, crf.arrays()


def test_numpy_reference_is_brute_force():
    rng = np.random.default_rng(1)
    c, w = 3, 4
    _, a = _crf(c)
    em = rng.normal(size=(w, c))
    scores = {p: path_score(em, p, a["transitions"], a["start"], a["end"])
              for p in itertools.product(range(c), repeat=w)}
    best = max(scores, key=scores.get)
    assert viterbi(em, a["transitions"], a["start"], a["end"]) == list(best)
    total = np.log(np.exp(list(scores.values())).sum())
    np.testing.assert_allclose(log_partition(em, a["transitions"], a["start"], a["end"]), total,
                               rtol=1e-10)


def test_nll_matches_numpy_and_padding_never_counts():
    rng = np.random.default_rng(2)
    c, lengths = 4, [5, 2, 1, 0]  # the last row has no tags (an augmented row): loss 0
    crf, a = _crf(c, seed=3)
    w = max(lengths) + 2  # padding past every row
    em = rng.normal(size=(len(lengths), w, c)).astype("float32")
    tags = rng.integers(0, c, size=(len(lengths), w))
    mask = np.zeros((len(lengths), w), "float32")
    for i, n in enumerate(lengths):
        mask[i, :n] = 1
        tags[i, n:] = -1
    nll = crf.nll(paddle.to_tensor(em), paddle.to_tensor(tags), paddle.to_tensor(mask)).numpy()
    for i, n in enumerate(lengths):
        if n == 0:
            assert nll[i] == 0
            continue
        want = (log_partition(em[i, :n], a["transitions"], a["start"], a["end"])
                - path_score(em[i, :n], tags[i, :n], a["transitions"], a["start"], a["end"]))
        np.testing.assert_allclose(nll[i], want, rtol=1e-4, atol=1e-4)
    # padding's emissions and tags change nothing, in value or gradient
    em2 = em.copy()
    em2[mask == 0] = 100.0
    x = paddle.to_tensor(em2, stop_gradient=False)
    again = crf.nll(x, paddle.to_tensor(tags), paddle.to_tensor(mask))
    np.testing.assert_allclose(again.numpy(), nll, rtol=1e-5, atol=1e-5)
    again.sum().backward()
    assert np.abs(x.grad.numpy()[mask == 0]).max() == 0.0


def test_paddle_viterbi_equals_numpy_viterbi():
    rng = np.random.default_rng(4)
    c, lengths = 5, [6, 3, 1]
    crf, a = _crf(c, seed=5)
    em = rng.normal(size=(3, 6, c)).astype("float32")
    paths = crf.decode(paddle.to_tensor(em), paddle.to_tensor(np.array(lengths, "int64")))
    for i, n in enumerate(lengths):
        assert paths[i] == viterbi(em[i, :n], a["transitions"], a["start"], a["end"])
