"""Vocabulary trimming: keep only the pieces a task uses, shrink the embedding table to match.

    from distill.export.trim import trim_model
    trimmed, report = trim_model(loaded, train_and_augmented_texts, "auto", max_len=128)

``export.trim_vocab`` (recipe) / ``ExportConfig.trim_vocab``:

* ``off`` — keep the vocabulary (default);
* ``auto`` — keep the special tokens and every piece that occurs in the task's text (training +
  augmented rows, as the model reads them: encoded with ``max_len``);
* ``N`` (an integer) — ``auto`` plus the N most probable pieces of the tokenizer (SentencePiece:
  the highest unigram scores; WordPiece: the first N entries of vocab.txt, which BERT/ERNIE order
  roughly by frequency), a margin for words the training text does not have.

The embedding rows of the kept pieces are copied in their old order (ids are remapped, the
special tokens keep their order) and the tokenizer is rewritten with only those pieces, so every
other piece becomes the unknown token, the same way wherever the trimmed tokenizer is used
(export, the package's ``tokenizer.json`` and encoder, prediction). Text made only of kept pieces
encodes to exactly the remapped ids (greedy WordPiece and unigram Viterbi both pick the same
pieces when only unused ones are removed), so the trimmed model gives the untrimmed model's
logits on the training text; on new text, pieces outside the kept set become unknown tokens.
``distill.export.exporter`` measures the trimmed model's accuracy on the eval rows against the
untrimmed one and rejects the trimming (exporting the untrimmed model) if it loses more than
``max_accuracy_drop``, like INT8.

Word students (BOW/CNN/RNN) do not need it: their vocabulary is built from the same training +
augmented text (``WordVocab.build``, capped by ``max_size``), so every row is already a word of
the task and trimming with that text removes nothing; ``trim_model`` says so and returns the
model unchanged.
"""
import collections
import dataclasses
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np

from distill.core.errors import UserError

TrimSetting = Union[str, int]


@dataclasses.dataclass
class TrimReport:
    """What trimming kept and what it saved (``accepted``/``reason`` set by the exporter)."""

    setting: str
    vocab_before: int
    vocab_after: int
    parameters_before: int
    parameters_after: int
    pieces_in_text: int = 0
    texts: int = 0
    accepted: bool = True
    reason: str = ""
    test_before: Optional[Dict[str, float]] = None
    test_after: Optional[Dict[str, float]] = None
    argmax_agreement: Optional[float] = None

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)


def parse_setting(value: Any) -> Optional[TrimSetting]:
    """``None`` for off, ``"auto"``, or the number of extra top pieces; UserError otherwise."""
    if value is None or value is False or value == "off":
        return None
    if value == "auto":
        return "auto"
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    raise UserError(f"trim_vocab: expected auto, off or a number of extra pieces (>= 0), got "
                    f"{value!r}")


def count_pieces(encoder, texts: Sequence[str], max_len: int, batch: int = 256) \
        -> collections.Counter:
    """How often each id occurs in ``texts`` encoded as the model reads them (padding excluded)."""
    counts: collections.Counter = collections.Counter()
    for start in range(0, len(texts), batch):
        enc = encoder.encode(list(texts[start:start + batch]), max_len=max_len)
        ids = enc["input_ids"][enc["attention_mask"] > 0]  # (N,) real tokens only
        counts.update(ids.tolist())
    return counts


def _special_ids(encoder) -> List[int]:
    names = ("pad_token", "unk_token", "cls_token", "sep_token", "mask_token", "bos_token",
             "eos_token")
    ids = {encoder.token_to_id(getattr(encoder, n)) for n in names if hasattr(encoder, n)}
    return sorted(i for i in ids if i is not None)


def _top_pieces(encoder, n: int) -> List[int]:
    if n <= 0:
        return []
    if encoder.kind == "sentencepiece":  # ordinary pieces by unigram log-probability
        from sentencepiece import sentencepiece_model_pb2 as pb

        normal = pb.ModelProto.SentencePiece.NORMAL
        scores = np.array([p.score if p.type == normal else -np.inf
                           for p in _proto(encoder).pieces], dtype=np.float64)
        order = np.argsort(-scores, kind="stable")[:n]
        return [int(i) for i in order if np.isfinite(scores[i])]
    return list(range(min(n, encoder.vocab_size)))


def _proto(encoder):
    from sentencepiece import sentencepiece_model_pb2 as pb

    proto = pb.ModelProto()
    proto.ParseFromString(encoder._proto)
    return proto


def kept_ids(encoder, texts: Sequence[str], setting: TrimSetting, max_len: int) \
        -> Tuple[List[int], int]:
    """Sorted old ids to keep, and how many distinct pieces the text itself uses."""
    counts = count_pieces(encoder, texts, max_len)
    keep = set(counts) | set(_special_ids(encoder))
    if isinstance(setting, int):
        keep |= set(_top_pieces(encoder, setting))
    return sorted(keep), len(counts)


def trim_tokenizer(encoder, keep: Sequence[int]):
    """The same tokenizer with only the pieces ``keep`` (old ids, sorted); new id = position."""
    if encoder.kind == "wordpiece":
        from distill.text.tokenizer import WordPieceTokenizer

        return WordPieceTokenizer([encoder.tokens[i] for i in keep], lowercase=encoder.lowercase,
                                  strip_accents=encoder.strip_accents,
                                  unk_token=encoder.unk_token, cls_token=encoder.cls_token,
                                  sep_token=encoder.sep_token, pad_token=encoder.pad_token,
                                  mask_token=encoder.mask_token,
                                  paddlenlp=getattr(encoder, "paddlenlp", False))
    if encoder.kind == "sentencepiece":
        from distill.text.tokenizer import SentencePieceTokenizer

        proto = _proto(encoder)
        old = list(proto.pieces)
        new_id = {old_id: i for i, old_id in enumerate(keep)}
        del proto.pieces[:]
        for old_id in keep:
            proto.pieces.append(old[old_id])
        spec = proto.trainer_spec
        for field in ("unk_id", "bos_id", "eos_id", "pad_id"):
            value = getattr(spec, field)
            if value >= 0:
                setattr(spec, field, new_id[value])
        spec.vocab_size = len(keep)
        return SentencePieceTokenizer(proto.SerializeToString(), prefix=encoder.prefix,
                                      bos_token=encoder.bos_token, eos_token=encoder.eos_token,
                                      pad_token=encoder.pad_token, unk_token=encoder.unk_token,
                                      mask_token=encoder.mask_token)
    raise UserError(f"trim_vocab: cannot trim a {encoder.kind!r} encoder")


def _word_embedding(model, rows: int):
    """(parent layer, attribute name, layer) of the word embedding table with ``rows`` rows."""
    import paddle

    found = []
    for name, layer in model.named_sublayers():
        if isinstance(layer, paddle.nn.Embedding) and name.split(".")[-1] == "word_embeddings":
            found.append(name)
    if len(found) != 1:
        raise UserError(f"trim_vocab: expected one word_embeddings table in the model, found "
                        f"{len(found)}")
    path = found[0].split(".")
    parent = model
    for part in path[:-1]:
        parent = getattr(parent, part)
    return parent, path[-1], getattr(parent, path[-1])


def count_parameters(model) -> int:
    return int(sum(int(np.prod(p.shape)) for p in model.parameters()))


def trim_model(loaded, texts: Sequence[str], setting: Any, max_len: int):
    """``(trimmed LoadedModel, TrimReport)``; the input model is left untouched (a deep copy is
    trimmed). Word-vocabulary models come back unchanged with a report saying why."""
    import copy

    import paddle

    setting = parse_setting(setting)
    encoder = loaded.encoder
    before = count_parameters(loaded.model)
    label = "off" if setting is None else str(setting)
    if setting is None or getattr(encoder, "kind", None) not in ("wordpiece", "sentencepiece"):
        report = TrimReport(label, encoder.vocab_size, encoder.vocab_size, before, before,
                            texts=len(texts), accepted=setting is None)
        if setting is not None:
            report.reason = ("word vocabulary: built from the training text already, nothing to "
                             "trim")
        return loaded, report
    texts = [t for t in texts if t]
    if not texts:
        raise UserError("trim_vocab: no training texts to decide which pieces to keep")
    keep, in_text = kept_ids(encoder, texts, setting, max_len)
    new_encoder = trim_tokenizer(encoder, keep)
    model = copy.deepcopy(loaded.model)
    parent, attr, table = _word_embedding(model, encoder.vocab_size)
    weight = table.weight.numpy()                                  # (V, H)
    if max(keep) >= weight.shape[0]:
        raise UserError(f"trim_vocab: the tokenizer has ids up to {max(keep)} but the embedding "
                        f"table only {weight.shape[0]} rows")
    new_table = paddle.nn.Embedding(len(keep), weight.shape[1])
    new_table.weight.set_value(weight[np.asarray(keep)])          # (V', H)
    setattr(parent, attr, new_table)
    inner = getattr(model, "model", None)
    for obj in (model, getattr(model, "config", None), getattr(model, "ernie_config", None),
                getattr(inner, "config", None)):
        if obj is not None and hasattr(obj, "vocab_size"):
            try:
                obj.vocab_size = len(keep)
            except (AttributeError, dataclasses.FrozenInstanceError):
                pass
    model.eval()
    trimmed = dataclasses.replace(loaded, model=model, encoder=new_encoder)
    report = TrimReport(label, encoder.vocab_size, new_encoder.vocab_size, before,
                        count_parameters(model), pieces_in_text=in_text, texts=len(texts))
    return trimmed, report


def texts_of(examples: Iterable[Any]) -> List[str]:
    """Both sides of every example (``text_a``/``text_b``) or plain strings."""
    out: List[str] = []
    for e in examples:
        if isinstance(e, str):
            out.append(e)
            continue
        out.append(e.text_a)
        if getattr(e, "text_b", None):
            out.append(e.text_b)
    return out
