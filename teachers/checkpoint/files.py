"""File readers the checkpoint formats share: JSON configs, WordPiece vocabularies, ``.pdparams``
(restricted loader, never unpickles code) and safetensors, each failing with ``CheckpointError``."""
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np

from distill.core.io import read_json
from distill.core.safe_pickle import StateFileError, load_state_dict
from distill.text.tokenizer import WordPieceTokenizer
from teachers.checkpoint.base import CheckpointError
from teachers.config import ConfigError, ErnieConfig


def read_json_file(path: Path) -> dict:
    return read_json(path, CheckpointError)


def config_from_json(data: dict, where: str, layer_norm_eps: float, pooling: str = "cls",
                     **overrides) -> ErnieConfig:
    """ErnieConfig from BERT/ERNIE/PaddleNLP-style keys (num_hidden_layers, ...)."""
    # PaddleNLP's model_config.json nests the base model's kwargs in "init_args"
    while isinstance(data.get("init_args"), list) and data["init_args"] \
            and isinstance(data["init_args"][0], dict):
        data = data["init_args"][0]

    def need(key, *alts):
        for k in (key,) + alts:
            if k in data:
                return data[k]
        raise CheckpointError(f"{where}: key '{key}' is missing")
    hidden = int(need("hidden_size"))
    values = dict(
        vocab_size=int(need("vocab_size")), hidden_size=hidden,
        num_layers=int(need("num_hidden_layers", "num_layers")),
        num_heads=int(need("num_attention_heads", "num_heads")),
        intermediate_size=int(data.get("intermediate_size") or 4 * hidden),
        hidden_act=str(data.get("hidden_act", "gelu")),
        max_position_embeddings=int(data.get("max_position_embeddings", 512)),
        type_vocab_size=int(data.get("sent_type_vocab_size") or data.get("type_vocab_size") or 2),
        task_type_vocab_size=int(data.get("task_type_vocab_size") or 0),
        use_task_id=bool(data.get("use_task_id", False)),
        layer_norm_eps=float(data.get("layer_norm_eps", layer_norm_eps)),
        hidden_dropout=float(data.get("hidden_dropout_prob", 0.1)),
        attention_dropout=float(data.get("attention_probs_dropout_prob", 0.1)),
        pad_token_id=int(data.get("pad_token_id") or 0),
        initializer_range=float(data.get("initializer_range", 0.02)), pooling=pooling)
    values.update(overrides)
    try:
        return ErnieConfig.from_dict(values, where=where)
    except ConfigError as err:
        raise CheckpointError(str(err)) from None


def wordpiece_tokenizer(directory: Path, paddlenlp: bool = False) -> WordPieceTokenizer:
    """WordPiece from ``vocab.txt``; ``paddlenlp``: PaddleNLP ErnieTokenizer's conventions."""
    vocab = directory / "vocab.txt"
    if not vocab.exists():
        raise CheckpointError(f"{directory}: vocab.txt is missing")
    lowercase = True
    for name in ("tokenizer_config.json",):
        if (directory / name).exists():
            lowercase = bool(read_json_file(directory / name).get("do_lower_case", True))
    return WordPieceTokenizer(vocab, lowercase=lowercase, paddlenlp=paddlenlp)


def load_pdparams(path: Path) -> Dict[str, np.ndarray]:
    """Weights from a ``paddle.save``'d file, read by the restricted loader (never unpickles code)."""
    try:
        return load_state_dict(path)
    except StateFileError as err:
        raise CheckpointError(str(err)) from None


def load_safetensors(path: Path) -> Dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    try:
        return load_file(str(path))
    except Exception as err:  # noqa: BLE001
        raise CheckpointError(f"{path}: cannot read ({type(err).__name__}: {err})") from None


def safetensors_names(path: Path) -> List[str]:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="numpy") as fh:
            return list(fh.keys())
    except Exception as err:  # noqa: BLE001
        raise CheckpointError(f"{path}: cannot read ({type(err).__name__}: {err})") from None


def config_labels(data: dict) -> Optional[List[str]]:
    """Label names from ``id2label`` when they are not the generated ``LABEL_0``, ... ones."""
    id2label = data.get("id2label")
    if not isinstance(id2label, dict) or not id2label:
        return None
    try:
        labels = [str(id2label.get(str(i), id2label.get(i))) for i in range(len(id2label))]
    except (TypeError, ValueError):
        return None
    return None if labels == [f"LABEL_{i}" for i in range(len(labels))] else labels
