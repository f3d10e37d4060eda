"""Paddle side of the export: static inference model, PaddleSlim PTQ INT8, Paddle Inference runner.

    names = save_inference_model(model, "out/paddle")              # model.pdmodel + .pdiparams
    quantize_static("out/paddle", "out/paddle-int8", calib_batches, algo="hist")
    logits = PaddleRunner("out/paddle-int8", int8=True, threads=2)(feed)   # (B, C)

Facts this module relies on (docs/design.md, Paddle 2.6.2 / PaddleSlim 2.6.0):
* ``quant_post_static`` only accepts a ``paddle.io.DataLoader`` (built here over the calibration
  batches, ``batch_size=None`` so each item is one padded batch with its own length).
* The INT8 model is only fast under oneDNN INT8 (``enable_mkldnn`` + ``enable_mkldnn_int8``).
* PaddleSlim skips embedding lookups ("input of type INT") and the ``rnn`` op, so a BOW/CNN/RNN
  file would not shrink. ``store_weights_int8`` stores every remaining large 2-D FP32 weight as
  int8 with one scale per row and a ``cast`` + ``elementwise_mul`` in front of its consumer
  (weight-only INT8; Paddle Inference folds the constant at load time).
"""
import os
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np
import paddle
import paddle.nn as nn

from distill.core.io import atomic_path, read_json, write_json
from distill.text.encoders import INPUT_NAMES

MODEL_FILE, PARAMS_FILE = "model.pdmodel", "model.pdiparams"
PTQ_ALGOS = ("abs_max", "KL", "hist", "avg", "mse")  # PaddleSlim quant_post_static algorithms
RUNTIME_FILE = "runtime.json"  # how to run the artifact: {"mkldnn_int8": bool, "mode": ...}


class LogitsOnly(nn.Layer):
    """The export signature: three int64 (B, T) inputs -> logits (B, C); nothing else."""

    def __init__(self, model: nn.Layer):
        super().__init__()
        self.model = model

    def forward(self, input_ids, token_type_ids, attention_mask):
        out = self.model(input_ids, token_type_ids=token_type_ids, attention_mask=attention_mask)
        return out["logits"]  # (B, C)


def save_inference_model(model: nn.Layer, out_dir) -> List[str]:
    """``paddle.jit.save`` the model with dynamic batch and sequence dims; returns its input names.

    Inputs the model never reads (a BOW ignores ``token_type_ids``) are pruned from the feed list;
    runners feed by name, so callers always pass all three.
    """
    wrapper = LogitsOnly(model)
    was_training = model.training
    wrapper.eval()
    try:
        specs = [paddle.static.InputSpec([None, None], "int64", name) for name in INPUT_NAMES]
        static = paddle.jit.to_static(wrapper, input_spec=specs, full_graph=True)
        used = _used_inputs(static.forward.concrete_program)
        with atomic_path(out_dir) as tmp:
            paddle.jit.save(static, str(tmp / "model"),
                            input_spec=[s for s in specs if s.name in used])
    finally:
        if was_training:
            model.train()
    return [name for name in INPUT_NAMES if name in used]


def _used_inputs(concrete_program) -> set:
    """Names read (transitively) by the ops that produce the outputs."""
    needed = {v.name for v in concrete_program.outputs}
    for op in reversed(concrete_program.main_program.global_block().ops):
        if needed.intersection(op.output_arg_names):
            needed.update(op.input_arg_names)
    return needed


def tensorrt_versions() -> Dict[str, str]:
    """The TensorRT version this Paddle build was compiled against and the one its runtime
    loads (``"0.0.0"`` both when the build has no TensorRT, as the CPU wheel pinned here)."""
    from paddle import inference

    def text(version) -> str:
        return ".".join(str(int(v)) for v in version)

    try:
        runtime = text(inference.get_trt_runtime_version())
    except Exception:  # noqa: BLE001  (libnvinfer missing: the build has TRT, the machine not)
        runtime = "0.0.0"
    return {"compiled": text(inference.get_trt_compile_version()), "runtime": runtime}


def tensorrt_available() -> bool:
    """Whether Paddle Inference can use TensorRT here: a CUDA build compiled with TensorRT
    whose runtime library loads. Only says TensorRT can be configured, not that it ran."""
    if not paddle.device.is_compiled_with_cuda():
        return False
    versions = tensorrt_versions()
    return versions["compiled"] != "0.0.0" and versions["runtime"] != "0.0.0"


class PaddleRunner:
    """Paddle Inference predictor; call with a feed dict -> logits.

    On CPU (the default) a fixed thread count and oneDNN; with ``device="gpu:N"`` the GPU,
    in FP16 when ``half`` (Paddle Inference's mixed precision), through TensorRT subgraphs when
    ``tensorrt`` (the caller checks ``tensorrt_available()``; dynamic shapes from 1 x 1 up to
    ``max_batch`` x ``max_len``). The GPU paths are written for GPUs and have not run here."""

    def __init__(self, model_dir, int8: Optional[bool] = None, threads: int = 1,
                 mkldnn: bool = True, device: str = "cpu", half: bool = False,
                 tensorrt: bool = False, max_batch: int = 64, max_len: int = 512,
                 input_names: Sequence[str] = INPUT_NAMES):
        """``int8=None``: as the artifact's ``runtime.json`` says (oneDNN INT8 kernels or not)."""
        from paddle import inference

        model_dir = Path(model_dir)
        if int8 is None:
            runtime = model_dir / RUNTIME_FILE
            int8 = bool(read_json(runtime).get("mkldnn_int8")) if runtime.exists() else False
        self.int8 = int8
        config = inference.Config(str(model_dir / MODEL_FILE), str(model_dir / PARAMS_FILE))
        if device.startswith("gpu"):
            gpu_id = int(device.partition(":")[2] or 0)
            precision = inference.PrecisionType.Half if half else inference.PrecisionType.Float32
            config.enable_use_gpu(256, gpu_id, precision)
            if tensorrt:
                config.enable_tensorrt_engine(workspace_size=1 << 30, max_batch_size=max_batch,
                                              min_subgraph_size=3, precision_mode=precision,
                                              use_static=False, use_calib_mode=False)
                low = {n: [1, 1] for n in input_names}
                high = {n: [int(max_batch), int(max_len)] for n in input_names}
                opt = {n: [int(max_batch), max(1, int(max_len) // 2)] for n in input_names}
                config.set_trt_dynamic_shape_info(low, high, opt)
        else:
            config.disable_gpu()
            config.set_cpu_math_library_num_threads(int(threads))
            if mkldnn or int8:
                config.enable_mkldnn()
            if int8:
                config.enable_mkldnn_int8()
        config.disable_glog_info()
        self.predictor = inference.create_predictor(config)
        self.input_names = list(self.predictor.get_input_names())
        self._output = self.predictor.get_output_handle(self.predictor.get_output_names()[0])

    def __call__(self, feed: Dict[str, np.ndarray]) -> np.ndarray:
        for name in self.input_names:
            handle = self.predictor.get_input_handle(name)
            value = np.ascontiguousarray(feed[name], dtype=np.int64)
            handle.reshape(list(value.shape))
            handle.copy_from_cpu(value)
        self.predictor.run()
        return self._output.copy_to_cpu()  # (B, C)


class _CalibrationBatches(paddle.io.Dataset):
    """Each item is one already padded batch, as a tuple in the model's input order."""

    def __init__(self, batches: Sequence[Dict[str, np.ndarray]], names: Sequence[str]):
        self.items = [tuple(np.asarray(b[n], dtype=np.int64) for n in names) for b in batches]

    def __getitem__(self, index):
        return self.items[index]

    def __len__(self):
        return len(self.items)


def quantize_static(fp32_dir, out_dir, calib_batches: Sequence[Dict[str, np.ndarray]],
                    algo: str = "hist", weight_only_min_elements: int = 1024,
                    weight_quantize_type: str = "channel_wise_abs_max") -> Dict[str, object]:
    """PaddleSlim post-training static quantization of a saved inference model, for oneDNN INT8.

    ``calib_batches``: padded feed dicts (the calibration samples); ``algo``: one of PTQ_ALGOS.
    Then ``rewrite_quantized_model`` fixes what oneDNN would break and stores the weights
    PaddleSlim left alone as int8. Returns details for the report.
    """
    from paddleslim.quant import quant_post_static

    if algo not in PTQ_ALGOS:
        from distill.core.errors import UserError

        raise UserError(f"unknown PTQ algo '{algo}'; choose one of: {', '.join(PTQ_ALGOS)}")
    names = PaddleRunner(fp32_dir, int8=False).input_names
    paddle.enable_static()
    try:
        feed_program = paddle.static.Program()
        with paddle.static.program_guard(feed_program, paddle.static.Program()):
            feed_vars = [paddle.static.data(n, [None, None], "int64") for n in names]
        loader = paddle.io.DataLoader(_CalibrationBatches(calib_batches, names), batch_size=None,
                                      feed_list=feed_vars, return_list=False,
                                      places=paddle.CPUPlace())
        executor = paddle.static.Executor(paddle.CPUPlace())
        with atomic_path(out_dir) as tmp:
            ptq_dir = tmp.parent / "ptq"
            quant_post_static(executor, str(fp32_dir), str(ptq_dir), data_loader=loader,
                              model_filename=MODEL_FILE, params_filename=PARAMS_FILE,
                              save_model_filename=MODEL_FILE, save_params_filename=PARAMS_FILE,
                              batch_nums=len(calib_batches), algo=algo, onnx_format=True,
                              weight_quantize_type=weight_quantize_type)
            rewrite = rewrite_quantized_model(ptq_dir, tmp, executor, weight_only_min_elements)
            fraction = quantized_weight_fraction(tmp, executor)
            write_json(tmp / RUNTIME_FILE, {"mkldnn_int8": True, "mode": "ptq"})
    finally:
        paddle.disable_static()
    rows = int(sum(len(b[names[0]]) for b in calib_batches))
    return {"mode": "ptq", "algo": algo, "calibration_samples": rows, **rewrite,
            "quantized_weight_fraction": fraction}


def quantize_weight_only(fp32_dir, out_dir, min_elements: int = 1024) -> Dict[str, object]:
    """Weight-only INT8: every 2-D weight stored as int8, run with FP32 kernels (accurate, 4x
    smaller, no faster). The fallback when oneDNN INT8 kernels fail the accuracy guard."""
    paddle.enable_static()
    try:
        executor = paddle.static.Executor(paddle.CPUPlace())
        with atomic_path(out_dir) as tmp:
            rewrite = rewrite_quantized_model(fp32_dir, tmp, executor, min_elements)
            fraction = quantized_weight_fraction(tmp, executor)
            write_json(tmp / RUNTIME_FILE, {"mkldnn_int8": False, "mode": "weight-only"})
    finally:
        paddle.disable_static()
    return {"mode": "weight-only", **rewrite, "quantized_weight_fraction": fraction}


def cpu_has_vnni() -> Optional[bool]:
    """Whether the CPU has AVX512-VNNI/AVX-VNNI (None when unknown). Without VNNI, oneDNN's
    u8*s8 INT8 kernels use AVX2 ``vpmaddubsw`` whose 16-bit sums saturate (measured here: Paddle
    INT8 logits off by 0.9-7 on tiny students; ORT needs ``reduce_range`` for the same reason)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return None
    return "avx512_vnni" in flags or "avx_vnni" in flags or "amx_int8" in flags


def quantized_weight_fraction(model_dir, executor) -> float:
    """Fraction of the saved weight bytes stored as int8 (static mode)."""
    scope = paddle.static.Scope()
    with paddle.static.scope_guard(scope):
        program, _, _ = paddle.static.load_inference_model(
            os.path.join(str(model_dir), "model"), executor)
        total = small = 0
        for var in program.list_vars():
            if not var.persistable or var.name in ("feed", "fetch"):
                continue
            found = scope.find_var(var.name)
            if found is None:
                continue
            value = np.array(found.get_tensor())
            total += value.nbytes
            small += value.nbytes if value.dtype in (np.int8, np.uint8) else 0
    return small / total if total else 0.0


def rewrite_quantized_model(src_dir, dst_dir, executor, min_elements: int = 1024) -> Dict[str, list]:
    """Post-process PaddleSlim's INT8 model (static mode; ``quantize_static`` calls it):

    1. ``drop_exact_path_quant``: remove quantize/dequantize pairs on tensors computed from the
       inputs alone (masks, positions, gather indices, attention biases). PaddleSlim observes
       every op's output; oneDNN then runs that integer/mask arithmetic in INT8 and breaks it
       (measured: a BiLSTM student's reversal indices and a transformer's -1e4 attention bias).
    2. ``store_weights_int8``: every remaining large FP32 weight is stored as int8.
    """
    scope = paddle.static.Scope()
    with paddle.static.scope_guard(scope):
        program, feeds, fetches = paddle.static.load_inference_model(
            os.path.join(str(src_dir), "model"), executor)
        block = program.global_block()
        dropped = drop_exact_path_quant(block, feeds)
        stored = store_weights_int8(block, scope, min_elements)
        feed_vars = [block.var(n) for n in feeds]
        paddle.static.save_inference_model(os.path.join(str(dst_dir), "model"), feed_vars,
                                           fetches, executor, program=program)
    for extra in Path(dst_dir).glob("*.pdiparams.info"):
        extra.unlink()
    return {"weight_only_int8": stored, "unquantized_input_paths": dropped}


def drop_exact_path_quant(block, feeds: Sequence[str]) -> List[str]:
    """Remove activation quantize/dequantize pairs on tensors that depend on no weight."""
    free = set(feeds)  # tensors computed from the inputs and constants only
    for op in block.ops:
        if op.type in ("quantize_linear", "dequantize_linear"):
            if op.input("X")[0] in free:
                free.update(op.output_arg_names)
            continue
        inputs = [n for n in op.input_arg_names if n not in ("feed", "fetch")]
        weights = [n for n in inputs if block._find_var_recursive(n) is not None
                   and block._find_var_recursive(n).persistable]
        if not weights and all(n in free for n in inputs):
            free.update(op.output_arg_names)
    scaled = {n for op in block.ops if op.type == "scale" for n in op.output_arg_names}
    dropped: List[str] = []
    for index in reversed(range(len(block.ops))):
        op = block.ops[index]
        if op.type != "quantize_linear" or (op.input("X")[0] not in free
                                             and op.input("X")[0] not in scaled):
            continue
        source, quantized = op.input("X")[0], op.output("Y")[0]
        for later in list(block.ops):
            if later.type == "dequantize_linear" and later.input("X")[0] == quantized:
                _rename_input_everywhere(block, later.output("Y")[0], source)
                block._remove_op(list(block.ops).index(later))
        block._remove_op(index)
        dropped.append(source)
    return sorted(dropped)


def _rename_input_everywhere(block, old: str, new: str) -> None:
    for op in block.ops:
        if old in op.input_arg_names:
            op._rename_input(old, new)


def store_weights_int8(block, scope, min_elements: int = 1024) -> List[str]:
    """Store every 2-D FP32 weight with at least ``min_elements`` values that is not already
    INT8 as int8 with a per-row scale: ``w = cast(w_int8, float32) * scale (rows, 1)``, inserted
    before its first consumer. Returns the names of the rewritten weights.
    """
    from paddle.base import core

    place = paddle.CPUPlace()
    rewritten: List[str] = []
    done = {op.input("X")[0] for op in block.ops if op.type == "dequantize_linear"}
    replaced: Dict[str, str] = {}  # weight -> its dequantized output (shared weights)
    index = 0
    while index < len(block.ops):
        op = block.ops[index]
        if op.type in ("feed", "fetch", "quantize_linear", "dequantize_linear"):
            index += 1
            continue
        for slot in op.input_names:
            names = list(op.input(slot))
            for j, name in enumerate(names):
                if name in replaced:
                    names[j] = replaced[name]
                    continue
                var = block._find_var_recursive(name)
                if var is None or not var.persistable or name in done:
                    continue
                value = np.array(scope.find_var(name).get_tensor())
                if value.dtype != np.float32 or value.ndim != 2 or value.size < min_elements:
                    continue
                names[j] = replaced[name] = _insert_dequant(block, scope, place, index, name,
                                                            value, core)
                rewritten.append(name)
                index += 2  # the cast and the multiply now sit before ``op``
            op.desc.set_input(slot, names)
        index += 1
    return rewritten


def _insert_dequant(block, scope, place, index: int, name: str, value: np.ndarray, core) -> str:
    """Insert ``cast(int8 -> fp32) * scale`` for weight ``name`` at op ``index``; return its output."""
    peak = np.abs(value).max(axis=1)  # (rows,)
    peak[peak == 0] = 1.0
    q = np.clip(np.round(value / peak[:, None] * 127.0), -127, 127).astype(np.int8)  # (rows, cols)
    scale = (peak / 127.0).astype(np.float32)[:, None]  # (rows, 1)
    q_name, s_name = f"{name}@int8", f"{name}@row_scale"
    cast_name, out_name = f"{name}@cast", f"{name}@dequantized"
    block.create_var(name=q_name, shape=value.shape, dtype="int8", persistable=True)
    scope.var(q_name).get_tensor().set(q, place)
    block.create_var(name=s_name, shape=scale.shape, dtype="float32", persistable=True)
    scope.var(s_name).get_tensor().set(scale, place)
    block.create_var(name=cast_name, shape=value.shape, dtype="float32")
    block.create_var(name=out_name, shape=value.shape, dtype="float32")
    block._insert_op(index, type="cast", inputs={"X": [q_name]}, outputs={"Out": [cast_name]},
                     attrs={"in_dtype": core.VarDesc.VarType.INT8,
                            "out_dtype": core.VarDesc.VarType.FP32})
    block._insert_op(index + 1, type="elementwise_mul", inputs={"X": [cast_name], "Y": [s_name]},
                     outputs={"Out": [out_name]}, attrs={"axis": -1})
    return out_name


def dygraph_logits(model: nn.Layer, batches: Sequence[Dict[str, np.ndarray]]) -> np.ndarray:
    """The FP32 reference: the dygraph model in eval mode, no grad, (N, C) float32."""
    was_training = model.training
    model.eval()
    try:
        outs = []
        with paddle.no_grad():
            for b in batches:
                feed = {k: paddle.to_tensor(np.asarray(v, dtype=np.int64)) for k, v in b.items()}
                outs.append(model(feed["input_ids"], token_type_ids=feed.get("token_type_ids"),
                                  attention_mask=feed.get("attention_mask"))["logits"].numpy())
    finally:
        if was_training:
            model.train()
    return np.concatenate(outs, axis=0).astype(np.float32)


def weight_bytes(model_dir) -> Optional[int]:
    """Bytes of the params file (the weights alone)."""
    path = Path(model_dir) / PARAMS_FILE
    return path.stat().st_size if path.exists() else None
