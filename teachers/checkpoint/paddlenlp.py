"""PaddleNLP model folders, both ways: read ``save_pretrained`` output (families ernie,
ernie_gram, ernie_m) and say whether / how a teacher can be written as one."""
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List

from distill.text.ernie_tokenizers import ErnieMTokenizer, ErnieTinyTokenizer
from distill.text.tokenizer import TokenizerError, WordPieceTokenizer
from teachers.checkpoint.base import CheckpointError, RawCheckpoint, Teacher
from teachers.checkpoint.files import (config_from_json, config_labels, load_pdparams,
                                       load_safetensors, read_json_file, wordpiece_tokenizer)
from teachers.checkpoint.names import SCHEMES


@dataclass(frozen=True)
class PaddleNLPFamily:
    """What a PaddleNLP model class fixes that its config.json may not say."""

    model_type: str           # config.json "model_type" and the parameter prefix
    class_prefix: str         # ErnieForSequenceClassification -> "Ernie"
    layer_norm_eps: float     # every LayerNorm of the model runs with this epsilon
    defaults: Dict[str, Any]  # the config class's defaults for keys config.json may omit
    position_offset: int = 0
    token_types: bool = True
    ffn_4h: bool = False      # the FFN is 4 x hidden_size whatever intermediate_size says
    zero_pad: bool = True     # word embedding built with padding_idx: the pad token reads zeros


PADDLENLP_FAMILIES = {
    # ErniePretrainedModel._init_weights sets every LayerNorm epsilon to 1e-12 (config ignored)
    "ernie": PaddleNLPFamily("ernie", "Ernie", 1e-12, dict(
        vocab_size=30522, type_vocab_size=16, task_type_vocab_size=3, use_task_id=False,
        task_id=0, max_position_embeddings=512, pad_token_id=0)),
    # ErnieGramModel: epsilon 1e-5; its embeddings have embedding_size columns and no mapping to
    # hidden_size, so only embedding_size == hidden_size runs (ernie-gram-zh: 768 = 768)
    "ernie_gram": PaddleNLPFamily("ernie_gram", "ErnieGram", 1e-5, dict(
        vocab_size=18018, type_vocab_size=2, max_position_embeddings=512, pad_token_id=0)),
    # ErnieMModel: no token types, position ids start at 2 (XLM-R style), pad id 1, epsilon
    # 1e-5, FFN width 4 x hidden (its intermediate_size is never read)
    "ernie_m": PaddleNLPFamily("ernie_m", "ErnieM", 1e-5, dict(
        vocab_size=250002, max_position_embeddings=514, pad_token_id=1),
        position_offset=2, token_types=False, ffn_4h=True, zero_pad=False),
}


def _paddlenlp_family(data: dict, tensors: Dict[str, Any], where: str) -> PaddleNLPFamily:
    """The family from config.json's model_type, else its class name, else the tensor prefix."""
    model_type = data.get("model_type")
    if model_type is None:
        names = list(data.get("architectures") or []) + [data.get("init_class") or ""]
        for family in sorted(PADDLENLP_FAMILIES.values(), key=lambda f: -len(f.class_prefix)):
            if any(n.startswith(family.class_prefix) and not n[len(family.class_prefix):][:1]
                   .islower() for n in names if n):
                model_type = family.model_type
                break
    if model_type is None:
        prefixes = {name.split(".", 1)[0] for name in tensors}
        model_type = next((f for f in ("ernie_gram", "ernie_m", "ernie") if f in prefixes),
                          "ernie")
    if model_type not in PADDLENLP_FAMILIES:
        raise CheckpointError(f"{where}: model_type {model_type!r} is not an ERNIE family this "
                              f"tool runs (supported: {', '.join(PADDLENLP_FAMILIES)})")
    return PADDLENLP_FAMILIES[model_type]


def is_paddlenlp_names(names: List[str]) -> bool:
    """PaddleNLP/Paddle layers name encoder blocks ``encoder.layers.N`` (HF: ``encoder.layer.N``)."""
    return any(".encoder.layers." in n or n.startswith("encoder.layers.") for n in names)


def _paddlenlp_tokenizer(directory: Path, family: PaddleNLPFamily):
    """The model's own tokenizer from PaddleNLP's files (tokenizer_config.json, else the files
    present): ERNIE Tiny's SentencePiece + word dictionary, ERNIE-M's SentencePiece + vocab, or
    WordPiece (vocab.txt)."""
    cfg_path = directory / "tokenizer_config.json"
    cfg = read_json_file(cfg_path) if cfg_path.exists() else {}
    cls_name = str(cfg.get("tokenizer_class") or "")
    specials = {k: cfg[k] for k in ("unk_token", "cls_token", "sep_token", "pad_token",
                                    "mask_token") if isinstance(cfg.get(k), str)}
    has = lambda name: (directory / name).exists()  # noqa: E731
    if not cls_name:  # no tokenizer_config.json: the files present, else the model's family
        if has(ErnieTinyTokenizer.MODEL_FILE) and has(ErnieTinyTokenizer.WORD_DICT_FILE):
            cls_name = "ErnieTinyTokenizer"
        elif has(ErnieMTokenizer.MODEL_FILE) or (family.model_type == "ernie_m"
                                                 and not has("vocab.txt")):
            cls_name = "ErnieMTokenizer"
    try:
        if cls_name.startswith("ErnieTiny"):
            return ErnieTinyTokenizer.from_files(
                directory, lowercase=bool(cfg.get("do_lower_case", True)), **specials)
        if cls_name.startswith("ErnieM"):
            return ErnieMTokenizer.from_files(
                directory, lowercase=bool(cfg.get("do_lower_case", False)), **specials)
        return wordpiece_tokenizer(directory, paddlenlp=True)
    except TokenizerError as err:
        raise CheckpointError(f"{directory}: tokenizer: {err}") from None


def read_paddlenlp(directory: Path) -> RawCheckpoint:
    """PaddleNLP ``save_pretrained`` output: ``config.json`` (or the older ``model_config.json``)
    + ``model_state.pdparams`` or ``model.safetensors``, families ernie (1.0/2.0/3.0/Tiny),
    ernie_gram and ernie_m, with the model's own tokenizer files."""
    cfg_path = directory / "config.json"
    cfg_path = cfg_path if cfg_path.exists() else directory / "model_config.json"
    data = read_json_file(cfg_path)
    if (directory / "model_state.pdparams").exists():
        tensors = load_pdparams(directory / "model_state.pdparams")
    else:
        tensors = load_safetensors(directory / "model.safetensors")
    family = _paddlenlp_family(data, tensors, str(cfg_path))
    while isinstance(data.get("init_args"), list) and data["init_args"] \
            and isinstance(data["init_args"][0], dict):
        data = data["init_args"][0]
    data = {**family.defaults, **{k: v for k, v in data.items() if v is not None}}
    if family.model_type == "ernie_gram" and \
            int(data.get("embedding_size") or data["hidden_size"]) != int(data["hidden_size"]):
        raise CheckpointError(
            f"{cfg_path}: embedding_size {data['embedding_size']} differs from hidden_size "
            f"{data['hidden_size']}; PaddleNLP's ErnieGramModel has no projection between them "
            f"and cannot run such a model either")
    data["layer_norm_eps"] = family.layer_norm_eps  # the model class fixes it, whatever is written
    overrides: Dict[str, Any] = dict(family=family.model_type,
                                     position_offset=family.position_offset,
                                     zero_pad_embedding=family.zero_pad)
    if not family.token_types:
        overrides["type_vocab_size"] = 0
    if family.ffn_4h:
        overrides["intermediate_size"] = 4 * int(data["hidden_size"])
    if family.model_type != "ernie":
        overrides.update(use_task_id=False, task_type_vocab_size=0)
    else:
        overrides["task_id"] = int(data.get("task_id") or 0)
    config = config_from_json(data, str(cfg_path), layer_norm_eps=family.layer_norm_eps,
                              **overrides)
    labels = config_labels(data)
    return RawCheckpoint(directory, SCHEMES.get("paddlenlp"), config, tensors,
                         _paddlenlp_tokenizer(directory, family), directory.name, labels=labels)


def paddlenlp_problems(teacher: Teacher) -> List[str]:
    """Why ``teacher`` cannot be written as a PaddleNLP model folder (empty list: it can)."""
    config, tok = teacher.config, teacher.tokenizer
    family = PADDLENLP_FAMILIES[config.family]
    problems = []
    if config.pooling != "cls":
        problems.append(f"it pools by {config.pooling!r} and PaddleNLP's sequence classifiers "
                        f"read the [CLS] pooler")
    if abs(config.layer_norm_eps - family.layer_norm_eps) > 1e-15:
        problems.append(f"its LayerNorm epsilon is {config.layer_norm_eps:g} and PaddleNLP's "
                        f"{family.model_type} runs every LayerNorm with {family.layer_norm_eps:g}")
    if config.position_offset != family.position_offset:
        problems.append(f"its positions start at {config.position_offset}, PaddleNLP's "
                        f"{family.model_type} starts them at {family.position_offset}")
    if (config.type_vocab_size > 0) != family.token_types:
        problems.append(f"type_vocab_size = {config.type_vocab_size} does not fit "
                        f"{family.model_type}")
    if family.ffn_4h and config.intermediate_size != 4 * config.hidden_size:
        problems.append(f"its FFN is {config.intermediate_size} wide and PaddleNLP's "
                        f"{family.model_type} always uses 4 x hidden = {4 * config.hidden_size}")
    if config.use_task_id and family.model_type != "ernie":
        problems.append(f"{family.model_type} has no task-type embeddings")
    if isinstance(tok, WordPieceTokenizer):
        if tok.strip_accents is not None and tok.strip_accents != tok.lowercase:
            problems.append("its WordPiece tokenizer strips accents without lowercasing (or the "
                            "reverse), which PaddleNLP's ErnieTokenizer cannot do")
    elif not isinstance(tok, (ErnieTinyTokenizer, ErnieMTokenizer)):
        problems.append(f"its {type(tok).__name__} has no PaddleNLP ERNIE tokenizer")
    return problems


def paddlenlp_config(teacher: Teacher) -> Dict[str, Any]:
    """PaddleNLP's config.json for ``{Family}ForSequenceClassification``."""
    c = teacher.config
    family = PADDLENLP_FAMILIES[c.family]
    data: Dict[str, Any] = {
        "architectures": [f"{family.class_prefix}ForSequenceClassification"],
        "model_type": family.model_type, "vocab_size": c.vocab_size,
        "hidden_size": c.hidden_size, "num_hidden_layers": c.num_layers,
        "num_attention_heads": c.num_heads, "intermediate_size": c.intermediate_size,
        "hidden_act": c.hidden_act, "hidden_dropout_prob": c.hidden_dropout,
        "attention_probs_dropout_prob": c.attention_dropout,
        "max_position_embeddings": c.max_position_embeddings,
        "initializer_range": c.initializer_range, "pad_token_id": c.pad_token_id,
        "id2label": {str(i): name for i, name in enumerate(teacher.labels)},
        "label2id": {name: i for i, name in enumerate(teacher.labels)},
    }
    if family.model_type == "ernie":
        data.update(type_vocab_size=c.type_vocab_size, use_task_id=c.use_task_id,
                    task_id=c.task_id, task_type_vocab_size=c.task_type_vocab_size or 3,
                    layer_norm_eps=family.layer_norm_eps, pool_act="tanh")
    elif family.model_type == "ernie_gram":
        data.update(type_vocab_size=c.type_vocab_size, embedding_size=c.hidden_size)
    return data


def paddlenlp_tokenizer_config(tok) -> Dict[str, Any]:
    cls_name = {ErnieTinyTokenizer: "ErnieTinyTokenizer", ErnieMTokenizer: "ErnieMTokenizer"}.get(
        type(tok), "ErnieTokenizer")
    return {"tokenizer_class": cls_name, "do_lower_case": bool(tok.lowercase),
            "unk_token": tok.unk_token, "cls_token": tok.cls_token, "sep_token": tok.sep_token,
            "pad_token": tok.pad_token, "mask_token": tok.mask_token}


def paddlenlp_state(teacher: Teacher) -> Dict[str, Any]:
    """The model's state under PaddleNLP's names for its family (``ernie_m.embeddings...``)."""
    prefix = PADDLENLP_FAMILIES[teacher.config.family].model_type
    return {(prefix + name[len("ernie"):] if name.startswith("ernie.") else name): value
            for name, value in teacher.model.state_dict().items()}
