"""Data parallelism on CPU (gloo, 2 processes) and device selection/placement (no GPU needed)."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import paddle
import pytest

from distill.core.errors import UserError
from distill.train import distributed
from distill.train.device import (launched_gpu, layer_devices, parse_device, place_layers,
                                  place_name, route_device, select_device, use_amp)


def trainer_device(config):
    return select_device(config.device)

WORKER = Path(__file__).with_name("dp_step_worker.py")


def _env(threads=1):
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    for key in (distributed.RANK_ENV, distributed.WORLD_ENV):
        env.pop(key, None)
    return env


# ------------------------------------------------------------------------- device strings

@pytest.mark.parametrize("text,kind,index", [("auto", "auto", None), ("cpu", "cpu", None),
                                             ("gpu", "gpu", None), ("gpu:3", "gpu", 3),
                                             (" GPU:1 ", "gpu", 1)])
def test_parse_device(text, kind, index):
    spec = parse_device(text)
    assert (spec.kind, spec.index) == (kind, index)


@pytest.mark.parametrize("bad", ["cuda", "cpu:1", "gpu:", "gpu:x", "tpu:0", ""])
def test_parse_device_refuses(bad):
    with pytest.raises(UserError, match="auto, cpu, gpu or gpu:N"):
        parse_device(bad)


def test_launcher_gpu_list_wins_over_local_rank():
    # `launch --gpus 2,3`: rank 0 gets FLAGS_selected_gpus=2 and PADDLE_LOCAL_RANK=0
    env = {"FLAGS_selected_gpus": "2", "PADDLE_LOCAL_RANK": "0"}
    assert launched_gpu(env) == 2
    assert route_device("gpu", 4, env) == "gpu:2"
    assert route_device("auto", 4, {"FLAGS_selected_gpus": "3", "PADDLE_LOCAL_RANK": "1"}) == "gpu:3"
    assert route_device("gpu", 4, {"PADDLE_LOCAL_RANK": "1"}) == "gpu:1"  # no device list
    assert route_device("gpu", 4, {}) == "gpu:0"
    assert route_device("gpu:1", 4, env) == "gpu:1"  # an explicit id is kept
    assert route_device("auto", 0, env) == "cpu"
    assert route_device("cpu", 4, env) == "cpu"


def test_route_device_refuses_missing_gpus():
    with pytest.raises(UserError, match="sees no GPU"):
        route_device("gpu", 0, {})
    with pytest.raises(UserError, match="only 2 GPU"):
        route_device("gpu", 2, {"FLAGS_selected_gpus": "3"})
    with pytest.raises(UserError, match="FLAGS_selected_gpus"):
        launched_gpu({"FLAGS_selected_gpus": "a,b"})


def test_amp_only_on_gpu():
    assert not use_amp("cpu", True)
    assert use_amp("gpu:1", True) and not use_amp("gpu:0", False)


def test_every_module_of_the_loss_lands_on_the_model_device(tmp_path):
    """The trainer places the model, the loss's projection and the loss's online teacher on the
    model's device (on this CPU machine that device is the CPU; on GPUs, gpu:N)."""
    from distill.data.batching import BatchPlan, EncodedSet
    from distill.train.losses import LossContext, build_loss
    from distill.train.trainer import TrainConfig, Trainer
    from teachers.config import ErnieConfig
    from teachers.model import build_model

    teacher = build_model(ErnieConfig(vocab_size=40, hidden_size=16, num_layers=2, num_heads=2,
                                      intermediate_size=32), 2, seed=0)
    student = build_model(ErnieConfig(vocab_size=40, hidden_size=8, num_layers=1, num_heads=2,
                                      intermediate_size=16), 2, seed=1)
    loss = build_loss([{"name": "soft_ce", "weight": 1.0},
                       {"name": "hidden_mse", "weight": 1.0, "params": {"layers": [[1, 2]]}}],
                      teacher=teacher, context=LossContext(student_hidden=8, teacher_hidden=16))
    rng = np.random.default_rng(0)
    ids = rng.integers(1, 40, (8, 5))
    data = EncodedSet.from_padded(ids, np.ones_like(ids), labels=rng.integers(0, 2, 8))
    config = TrainConfig(epochs=1, batch_size=4, device="cpu", progress=False, max_steps=1)
    trainer = Trainer(student, loss, config, tmp_path)
    trainer.fit(BatchPlan(data, 4))
    model_place = layer_devices(student)
    assert model_place == {place_name(trainer_device(config))}
    for layer in (loss, loss.teacher, loss.terms[1].projection):
        assert layer_devices(layer) == model_place
    # place_layers moves all it is given (None skipped)
    place_layers("cpu", student, None, loss)
    assert layer_devices(loss) == model_place


# ------------------------------------------------------------------------- world / launcher

def test_world_from_launcher_environment():
    assert distributed.world({}) == distributed.World(0, 1)
    me = distributed.world({"PADDLE_TRAINER_ID": "1", "PADDLE_TRAINERS_NUM": "2"})
    assert me.distributed and not me.main and (me.rank, me.size) == (1, 2)
    with pytest.raises(UserError):
        distributed.world({"PADDLE_TRAINER_ID": "2", "PADDLE_TRAINERS_NUM": "2"})


def test_launch_command():
    cmd = distributed.launch_command(["run", "r.yaml"], nproc=2, log_dir="runs/x/launch",
                                     python="py")
    assert cmd == ["py", "-m", "paddle.distributed.launch", "--nproc_per_node", "2",
                   "--log_dir", "runs/x/launch", "py", "-u", "-m", "distill", "run", "r.yaml"]
    cmd = distributed.launch_command(["run"], nproc=4, nnodes=2, master="10.0.0.1:8090", python="py")
    assert cmd[3:9] == ["--nproc_per_node", "4", "--nnodes", "2", "--master", "10.0.0.1:8090"]
    with pytest.raises(UserError, match="--master"):
        distributed.launch_command(["run"], nproc=2, nnodes=2)
    with pytest.raises(UserError, match="host:port"):
        distributed.launch_command(["run"], nproc=2, nnodes=2, master="nohost")
    assert distributed.threads_per_process(2, cores=2) == 1
    assert distributed.threads_per_process(4, cores=2) == 1


def test_batch_must_split_over_ranks(tmp_path, monkeypatch):
    from distill.train.trainer import TrainConfig, Trainer

    monkeypatch.setenv("PADDLE_TRAINERS_NUM", "3")  # the trainer refuses before joining a group
    monkeypatch.setenv("PADDLE_TRAINER_ID", "0")
    trainer = Trainer(paddle.nn.Linear(2, 2), lambda o, b: (0, {}),
                      TrainConfig(batch_size=8, device="cpu"), tmp_path)
    with pytest.raises(UserError, match="split evenly over 3"):
        trainer.fit([{"inputs": {}}])


# ------------------------------------------------------------------------- one DP step

def _run_worker(out_dir: Path, nproc: int, micro: int, mode: str = "") -> None:
    args = [str(WORKER), str(out_dir), str(micro)] + ([mode] if mode else [])
    if nproc == 1:
        cmd = [sys.executable, *args]
    else:
        cmd = [sys.executable, "-m", "paddle.distributed.launch", "--nproc_per_node", str(nproc),
               "--log_dir", str(out_dir / "log"), *args]
    done = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=300)
    logs = "".join(p.read_text() for p in sorted((out_dir / "log").glob("workerlog.*"))) \
        if (out_dir / "log").exists() else ""
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:] + logs[-3000:]


def test_one_data_parallel_step_equals_one_process_step(tmp_path):
    """2 gloo processes, 4 rows each (in micro batches of 2: gradient accumulation), against one
    process over the same global batch of 8: identical on both ranks, equal within 1e-5."""
    _run_worker(tmp_path / "one", 1, 0)
    _run_worker(tmp_path / "two", 2, 2)
    single = np.load(tmp_path / "one" / "rank0.npz")
    rank0, rank1 = np.load(tmp_path / "two" / "rank0.npz"), np.load(tmp_path / "two" / "rank1.npz")
    assert sorted(single.files) == sorted(rank0.files) and "loss.scale" in single.files
    moved = 0.0
    for key in single.files:
        np.testing.assert_array_equal(rank0[key], rank1[key], err_msg=key)
        np.testing.assert_allclose(rank0[key], single[key], atol=1e-5, rtol=0, err_msg=key)
    # the step did change the weights (a no-op step would pass the checks above)
    paddle.seed(11)
    from importlib import util
    spec = util.spec_from_file_location("dp_step_worker", WORKER)
    worker = util.module_from_spec(spec)
    spec.loader.exec_module(worker)
    start = {f"model.{k}": v.numpy() for k, v in worker.Tiny().state_dict().items()}
    moved = max(float(np.abs(single[k] - v).max()) for k, v in start.items())
    assert moved > 1e-3
    # rank 0 alone wrote the checkpoint and the metrics
    assert (tmp_path / "two" / "train" / "last" / "trainer_state.json").exists()
    assert len((tmp_path / "two" / "train" / "metrics.jsonl").read_text().splitlines()) == 1


def test_intermediate_loss_step_is_data_parallel_too(tmp_path):
    """Hidden-state MSE with the teacher inside the loss and a trained projection: after one
    2-process step (no accumulation) the student and the projection equal a 1-process step."""
    _run_worker(tmp_path / "one", 1, 0, "hidden")
    _run_worker(tmp_path / "two", 2, 0, "hidden")
    single = np.load(tmp_path / "one" / "rank0.npz")
    rank0, rank1 = np.load(tmp_path / "two" / "rank0.npz"), np.load(tmp_path / "two" / "rank1.npz")
    assert any(k.startswith("loss.") and "projection" in k for k in single.files)
    for key in single.files:
        np.testing.assert_array_equal(rank0[key], rank1[key], err_msg=key)
        np.testing.assert_allclose(rank0[key], single[key], atol=1e-5, rtol=0, err_msg=key)


def test_early_stopping_and_best_epoch_are_rank_0s_on_every_rank(tmp_path):
    """Dev scores that differ by rank (falling on rank 0, rising on rank 1): both ranks take
    rank 0's broadcast numbers, stop after epoch 2 together and keep epoch 1 as the best."""
    import json

    _run_worker(tmp_path, 2, 0, "early")
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    for summary in ranks:
        assert (summary["epochs_run"], summary["best_epoch"], summary["stopped_early"]) == (2, 1, True)
        assert [d["accuracy"] for d in summary["dev_history"]] == [1.0, 0.5]
    assert ranks[0] == ranks[1]
    # rank 0 alone wrote the metrics: one line per epoch run
    assert len((tmp_path / "train" / "metrics.jsonl").read_text().splitlines()) == 2
