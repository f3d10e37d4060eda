"""Quantization-aware training (QAT) for Paddle INT8: fake-quant wrapping, INT8 save, kernel check.

    quanter = wrap_for_qat(model)              # in place: Linear layers get fake quant/dequant
    ... train ``model`` briefly (``distill.export.qat`` runs the project's trainer) ...
    info = save_qat_model(quanter, model, "out/paddle-int8")      # runs with oneDNN INT8
    int8_kernels("out/paddle-int8")   # {"int8_ops": {"fc": 14, ...}, "fp32_ops": {...}, ...}

Facts this module relies on (measured 2026-12-01, Paddle 2.6.2 / PaddleSlim 2.6.0, docs/design.md):
* PaddleSlim's dygraph ``QAT`` wraps ``paddle.quantization.ImperativeQuantAware``: per-channel
  abs-max weights and moving-average abs-max activations on every ``Linear``; with
  ``onnx_format=True`` the saved program holds ``quantize_linear``/``dequantize_linear`` pairs,
  the same form PaddleSlim's PTQ writes, so ``PaddleRunner(int8=True)`` (``enable_mkldnn_int8``)
  turns it into oneDNN INT8 kernels: on a tiny transformer the optimized program had all 14
  ``fc`` ops with ``mkldnn_data_type = int8`` (``int8_kernels`` reads that program back).
* Run with FP32 kernels, the saved QAT program matches the fake-quant dygraph model within 0.04
  logits; with oneDNN INT8 on this AVX2 CPU without VNNI it moved logits by up to 2.7 and
  flipped 1.6 % of the answers (u8*s8 sums saturate), hence the export guard still judges it.
* 7-bit weights (``weight_bits=7``, the ONNX Runtime remedy for saturation) do not help here:
  oneDNN re-derives 8-bit weight scales and agreement fell to 81 %; weights stay 8-bit.
* Embedding lookups are not quantized by QAT; ``rewrite_quantized_model`` stores them (and any
  other large 2-D weight left in FP32) as int8 with per-row scales, as for PTQ.
"""
import tempfile
from collections import Counter
from pathlib import Path
from typing import Dict, Sequence

import paddle
import paddle.nn as nn

from distill.backends.paddle_inference import (MODEL_FILE, PARAMS_FILE, RUNTIME_FILE,
                                               quantized_weight_fraction, rewrite_quantized_model)
from distill.core.io import atomic_path, write_json
from distill.text.encoders import INPUT_NAMES

QAT_LAYER_TYPES = ("Linear",)  # what PaddleSlim wraps; attention's activation matmuls stay FP32


def wrap_for_qat(model: nn.Layer, layer_types: Sequence[str] = QAT_LAYER_TYPES,
                 moving_rate: float = 0.9):
    """Insert fake quant/dequant around every layer of ``layer_types`` of ``model`` (in place).

    Returns the PaddleSlim ``QAT`` object that must save the model (``save_qat_model``).
    Train the model afterwards: the activation scales are moving averages over training steps.
    """
    from paddleslim import QAT

    quanter = QAT(config={"weight_quantize_type": "channel_wise_abs_max",
                          "activation_quantize_type": "moving_average_abs_max",
                          "weight_bits": 8, "activation_bits": 8, "moving_rate": float(moving_rate),
                          "quantizable_layer_type": list(layer_types), "onnx_format": True})
    quanter.quantize(model)
    return quanter


def save_qat_model(quanter, model: nn.Layer, out_dir, input_names: Sequence[str] = INPUT_NAMES,
                   weight_only_min_elements: int = 1024) -> Dict[str, object]:
    """Save the fake-quant ``model`` as a Paddle Inference INT8 model in ``out_dir`` (atomically).

    ``input_names``: the feed names the FP32 export kept (inputs the model never reads are
    dropped, as ``save_inference_model`` does). Then ``rewrite_quantized_model`` removes
    quantization of input-only tensors and stores the remaining large weights as int8, and
    ``runtime.json`` tells ``PaddleRunner`` to use oneDNN INT8. Returns details for the report.
    """
    specs = [paddle.static.InputSpec([None, None], "int64", name) for name in INPUT_NAMES]
    kept = [n for n in INPUT_NAMES if n in input_names]  # (B, T) int64 each
    wrapper = _FEEDS[len(kept)](model, kept)
    was_training = model.training
    model.eval()
    try:
        with atomic_path(out_dir) as tmp:
            raw = tmp.parent / (tmp.name + "-raw")
            quanter.save_quantized_model(wrapper, str(raw / "model"),
                                         input_spec=[s for s in specs if s.name in input_names])
            paddle.enable_static()
            try:
                executor = paddle.static.Executor(paddle.CPUPlace())
                fake_quant = _op_counts(raw)
                rewrite = rewrite_quantized_model(raw, tmp, executor, weight_only_min_elements)
                fraction = quantized_weight_fraction(tmp, executor)
            finally:
                paddle.disable_static()
            for extra in raw.glob("*"):
                extra.unlink()
            raw.rmdir()
            write_json(tmp / RUNTIME_FILE, {"mkldnn_int8": True, "mode": "qat"})
    finally:
        if was_training:
            model.train()
    return {"mode": "qat", "fake_quant_ops": {k: v for k, v in fake_quant.items()
                                              if k in ("quantize_linear", "dequantize_linear")},
            **rewrite, "quantized_weight_fraction": fraction}


class _Feeds(nn.Layer):
    """Logits from only the kept feeds (dy2static needs named parameters, not ``*inputs``)."""

    def __init__(self, model: nn.Layer, names: Sequence[str]):
        super().__init__()
        self.model, self.names = model, list(names)

    def logits(self, values) -> paddle.Tensor:
        given = dict(zip(self.names, values))
        return self.model(given["input_ids"], token_type_ids=given.get("token_type_ids"),
                          attention_mask=given.get("attention_mask"))["logits"]  # (B, C)


class _Feeds1(_Feeds):
    def forward(self, x0):
        return self.logits([x0])


class _Feeds2(_Feeds):
    def forward(self, x0, x1):
        return self.logits([x0, x1])


class _Feeds3(_Feeds):
    def forward(self, x0, x1, x2):
        return self.logits([x0, x1, x2])


_FEEDS = {1: _Feeds1, 2: _Feeds2, 3: _Feeds3}


def _op_counts(model_dir) -> Dict[str, int]:
    """Op types of a saved inference program (static mode must be on)."""
    program, _, _ = paddle.static.load_inference_model(
        str(Path(model_dir) / "model"), paddle.static.Executor(paddle.CPUPlace()))
    return dict(Counter(op.type for op in program.global_block().ops))


def int8_kernels(model_dir, threads: int = 1) -> Dict[str, object]:
    """What Paddle Inference really runs for an INT8 artifact: load it with oneDNN INT8, save the
    optimized program and count its ops by ``mkldnn_data_type`` (``int8_ops``: op type -> count
    of ops computing in INT8; ``fp32_ops`` likewise; ``quantize_ops``: inserted FP32->INT8
    conversions). ``int8_ops`` empty means the model runs no INT8 kernel at all."""
    from paddle import inference
    from paddle.base import core

    model_dir = Path(model_dir)
    with tempfile.TemporaryDirectory() as tmp:
        config = inference.Config(str(model_dir / MODEL_FILE), str(model_dir / PARAMS_FILE))
        config.disable_gpu()
        config.set_cpu_math_library_num_threads(int(threads))
        config.enable_mkldnn()
        config.enable_mkldnn_int8()
        config.disable_glog_info()
        config.enable_save_optim_model(True)
        config.set_optim_cache_dir(tmp)
        inference.create_predictor(config)
        optimized = sorted(Path(tmp).glob("*optimized*.pdmodel"))
        if not optimized:
            return {"int8_ops": {}, "fp32_ops": {}, "quantize_ops": 0,
                    "error": "Paddle Inference saved no optimized program"}
        desc = core.ProgramDesc(optimized[0].read_bytes())  # keep alive: block points into it
        block = desc.block(0)
        int8: Counter = Counter()
        fp32: Counter = Counter()
        quantize = 0
        for i in range(block.op_size()):
            op = block.op(i)
            quantize += op.type() == "quantize"
            if op.has_attr("mkldnn_data_type"):
                (int8 if op.attr("mkldnn_data_type") == "int8" else fp32)[op.type()] += 1
    return {"int8_ops": dict(int8), "fp32_ops": dict(fp32), "quantize_ops": int(quantize)}

