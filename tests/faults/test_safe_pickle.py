"""Family 1: a crafted pickle in a checkpoint is refused before it can run anything."""
import collections
import os
import pickle

import numpy as np
import paddle
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from distill.core.errors import UserError
from distill.core.safe_pickle import (RefusedGlobal, StateFileError, load_state, load_state_dict,
                                      loads_state)


class MakeDir:
    """Unpickling this calls os.mkdir(target): the payload the restricted loader must not run."""

    def __init__(self, target):
        self.target = str(target)

    def __reduce__(self):
        return (os.mkdir, (self.target,))


def payload_state(target) -> dict:
    return {"linear.weight": np.ones((2, 2), np.float32), "evil": MakeDir(target)}


def test_paddle_state_dict_reads_like_paddle_load(tmp_path):
    layer = paddle.nn.Linear(3, 2)
    paddle.save(layer.state_dict(), str(tmp_path / "m.pdparams"))
    mine = load_state_dict(tmp_path / "m.pdparams")
    theirs = paddle.load(str(tmp_path / "m.pdparams"), return_numpy=True)
    assert sorted(mine) == sorted(theirs) == ["bias", "weight"]
    for key in mine:
        np.testing.assert_array_equal(mine[key], theirs[key])
    other = paddle.nn.Linear(3, 2)
    other.set_state_dict(mine)
    np.testing.assert_array_equal(other.weight.numpy(), layer.weight.numpy())


def test_nested_state_and_paddle21_tensors(tmp_path):
    t = paddle.to_tensor(np.arange(6, dtype=np.float32).reshape(2, 3))
    paddle.save({"acc": {"w/moment1": t}, "scheduler": {"last_epoch": 3, "last_lr": 0.1},
                 "scaler": {}, "list": [1, "a", None, (2.5, True)]}, str(tmp_path / "o.pdopt"))
    state = load_state(tmp_path / "o.pdopt")
    np.testing.assert_array_equal(state["acc"]["w/moment1"], t.numpy())
    assert state["scheduler"] == {"last_epoch": 3, "last_lr": 0.1}
    assert state["list"] == [1, "a", None, (2.5, True)]


def test_protocol2_and_ordered_dict(tmp_path):
    obj = collections.OrderedDict(w=np.arange(4, dtype=np.int64), s=np.float32(1.5))
    (tmp_path / "p2.pdparams").write_bytes(pickle.dumps(obj, protocol=2))
    state = load_state(tmp_path / "p2.pdparams")
    np.testing.assert_array_equal(state["w"], np.arange(4))
    assert state["s"] == np.float32(1.5)


@pytest.mark.parametrize("protocol", [2, 4])
def test_payload_refused_without_running(tmp_path, protocol):
    target = tmp_path / "pwned"
    path = tmp_path / "model_state.pdparams"
    path.write_bytes(pickle.dumps(payload_state(target), protocol=protocol))
    with pytest.raises(RefusedGlobal) as info:
        load_state_dict(path)
    assert not target.exists()
    msg = str(info.value)
    assert str(path) in msg and "mkdir" in msg and isinstance(info.value, UserError)


def test_object_arrays_and_foreign_types_refused(tmp_path):
    path = tmp_path / "o.pdparams"
    path.write_bytes(pickle.dumps({"w": np.array([1, "x"], dtype=object)}))
    with pytest.raises(StateFileError, match="Python objects"):
        load_state(path)
    path.write_bytes(pickle.dumps({"w": {1, 2}}))  # a set: not a state-dict container
    with pytest.raises(StateFileError, match="builtins.set"):
        load_state(path)
    path.write_bytes(pickle.dumps({"w": collections.Counter("ab")}))
    with pytest.raises(RefusedGlobal, match="collections.Counter"):
        load_state(path)


def test_truncated_empty_folder_missing(tmp_path):
    layer = paddle.nn.Linear(3, 2)
    paddle.save(layer.state_dict(), str(tmp_path / "m.pdparams"))
    data = (tmp_path / "m.pdparams").read_bytes()
    (tmp_path / "t.pdparams").write_bytes(data[: len(data) // 2])
    with pytest.raises(StateFileError, match="truncated or corrupt"):
        load_state(tmp_path / "t.pdparams")
    (tmp_path / "e.pdparams").write_bytes(b"")
    with pytest.raises(StateFileError, match="empty"):
        load_state(tmp_path / "e.pdparams")
    (tmp_path / "d.pdparams").mkdir()
    with pytest.raises(StateFileError, match="folder"):
        load_state(tmp_path / "d.pdparams")
    with pytest.raises(StateFileError, match="missing"):
        load_state(tmp_path / "nope.pdparams")
    (tmp_path / "l.pdparams").write_bytes(pickle.dumps([np.zeros(2)]))
    with pytest.raises(StateFileError, match="expected a dict"):
        load_state_dict(tmp_path / "l.pdparams")


def test_deep_nesting_is_a_clean_error():
    deep = b"\x80\x02" + b"]" * 100000 + b"a" * 99999 + b"."  # lists nested 100000 deep
    with pytest.raises(StateFileError):
        loads_state(deep)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=512))
def test_random_bytes_never_traceback(data):
    try:
        loads_state(data)
    except StateFileError:
        pass


_plain = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=5), kids, max_size=4),
    max_leaves=20)


@settings(max_examples=200, deadline=None)
@given(_plain, st.integers(0, 200))
def test_plain_structures_round_trip_and_mutations_are_clean(obj, cut):
    data = pickle.dumps({"x": obj, "w": np.zeros(3, np.float32)}, protocol=4)
    state = loads_state(data)
    assert state["x"] == obj
    mutated = bytearray(data)
    if mutated:
        mutated[cut % len(mutated)] ^= 0x5A
    try:
        loads_state(bytes(mutated))
    except StateFileError:
        pass


def test_huge_memo_index_is_refused_before_allocating():
    # LONG_BINPUT 0x7ffffff0: the C unpickler would zero a ~16 GB memo table for it
    with pytest.raises(StateFileError, match="memo index"):
        loads_state(b"\x80\x02]r\xf0\xff\xff\x7f.")
