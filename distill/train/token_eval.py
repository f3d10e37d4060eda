"""Predict and score token tasks: per-token logits in input order, entity metrics (seqeval).

    evaluator = TokenEvaluator(task.tags, task.scheme)
    metrics = evaluator(model, TokenBatchPlan(dev_data, 128))   # {"f1", "precision", ...}
    Trainer(model, loss_fn, config, out, evaluator=evaluator)    # picks epochs by entity F1
"""
from typing import Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from distill.data.token_batching import gather_tokens
from distill.text.tags import decode_spans, encode_spans
from distill.text.viterbi import viterbi
from distill.train.metrics import entity_metrics


def _rows(model, batches: Iterable[Dict]) -> Iterator[Tuple[int, np.ndarray, Dict, int]]:
    """(row index, (W_i, C) token logits, batch, position in batch) for every row."""
    from distill.train.trainer import eval_mode, to_tensors

    with eval_mode(model):
        for batch in batches:
            logits = model(**to_tensors(batch["inputs"]))["logits"].astype("float32").numpy()
            rows = gather_tokens(logits, batch["token_index"])  # (B, W, C)
            for b, r in enumerate(batch["index"]):
                n = int(batch["token_count"][b])
                yield int(r), rows[b, :n] * batch["token_mask"][b, :n, None], batch, b


def predict_token_logits(model, batches: Iterable[Dict]) -> List[np.ndarray]:
    """Per sentence (in the batches' ``index`` order), (W, C) float32 logits of each token's
    first sub-token; tokens cut by ``max_len`` get 0. Eval mode, no gradients; modes restored."""
    out = {r: logits for r, logits, _, _ in _rows(model, batches)}
    return [out[i] for i in range(len(out))]


def tags_from_logits(logits: np.ndarray, tags: Sequence[str], scheme: str,
                     valid: Optional[np.ndarray] = None,
                     crf: Optional[Dict[str, np.ndarray]] = None) -> List[str]:
    """(W, C) logits -> a valid tag sequence of ``scheme`` (argmax, or Viterbi over the valid
    tokens with ``crf`` = ``{"transitions", "start", "end"}``; then the conlleval repair);
    tokens with ``valid`` False (cut by ``max_len``: the sentence's tail) are ``O``."""
    if crf is None:
        ids = list(logits.argmax(axis=-1))
    else:
        n = len(logits) if valid is None else int(np.asarray(valid, bool).sum())
        ids = viterbi(logits[:n], crf["transitions"], crf["start"], crf["end"]) + [0] * (len(logits) - n)
    names = [tags[i] for i in ids]
    if valid is not None:
        names = [n if ok else "O" for n, ok in zip(names, valid)]
    return encode_spans(len(names), decode_spans(names), scheme)


def crf_of(model) -> Optional[Dict[str, np.ndarray]]:
    """A CRF tagger's current transition parameters as arrays (None without a CRF)."""
    crf = getattr(model, "crf", None)
    return None if crf is None else crf.arrays()


class TokenEvaluator:
    """``evaluator(model, batches) -> entity metrics`` over batches that carry ``gold`` tags.

    Tokens cut by ``max_len`` are predicted ``O`` and scored against their gold tags. By default
    each predicted sentence is repaired into a valid sequence first (as the edge predictor
    decodes spans); ``raw=True`` scores the argmax tags as they are (strict seqeval then drops
    broken entities). A CRF tagger (``model.crf``) is decoded by Viterbi with its current
    transitions.
    """

    def __init__(self, tags: Sequence[str], scheme: str, raw: bool = False):
        self.tags, self.scheme, self.raw = list(tags), scheme, raw

    def __call__(self, model, batches: Iterable[Dict]) -> Dict[str, object]:
        gold, pred = {}, {}
        crf = crf_of(model)
        for r, logits, batch, b in _rows(model, batches):
            n = len(logits)
            gold[r] = [self.tags[i] for i in batch["gold"][b, :n]]
            if self.raw:
                pred[r] = [self.tags[i] for i in logits.argmax(-1)]
            else:
                pred[r] = tags_from_logits(logits, self.tags, self.scheme,
                                           batch["token_mask"][b, :n] > 0, crf)
        order = sorted(gold)
        return entity_metrics([gold[i] for i in order], [pred[i] for i in order], self.scheme)
