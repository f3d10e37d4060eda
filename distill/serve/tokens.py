"""Entity spans from a token-classification package (NER). No Paddle: numpy, ONNX Runtime, encoders.

    predictor = load_package("msra-lstm.tar.gz")       # a TokenPredictor for token packages
    predictor.predict(["张三在北京工作"])
    # [{"text": "张三在北京工作", "entities": [
    #     {"start": 0, "end": 2, "type": "PER", "text": "张三", "score": 0.98},
    #     {"start": 3, "end": 5, "type": "LOC", "text": "北京", "score": 0.95}]}]

A text is split into tokens with their character offsets (``config.json`` ``token.unit``: every
non-space character, or every whitespace-separated word), encoded with the package's encoder
(``distill.text.token_encoding``), run through ONNX Runtime (logits per sub-token), read at each
token's first sub-token, and decoded: argmax tags (a CRF tagger's package, ``token.crf``:
the Viterbi path, ``distill.text.viterbi``), repaired into a valid sequence of the scheme
and read as spans (``distill.text.tags``). ``start``/``end`` are character offsets into the
text (``text[start:end]`` is the entity); ``score`` is the mean, over the entity's tokens, of
the probability of the tag it was decoded from. Tokens beyond ``max_length`` sub-tokens are
not tagged (never part of an entity).
"""
from typing import Any, Dict, List, Optional, Sequence, Union

import numpy as np

from distill.core.errors import PackageError, UserError
from distill.text.tags import decode_spans, encode_spans
from distill.text.token_encoding import encode_token_rows, split_text
from distill.text.viterbi import crf_arrays, viterbi

TOKEN_TASK = "token-classification"


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=-1, keepdims=True)  # (W, C)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


class TokenPredictor:
    """A loaded token-classification package; ``predict`` returns entity spans per text.

    Built by ``distill.serve.predict.load_package`` (same attributes as its ``Predictor``)."""

    def __init__(self, session, encoder, labels: Sequence[str], max_len: int, text_pairs: bool,
                 manifest: Dict[str, Any], config=None, shown=None, scheme: str = "bio",
                 unit: str = "char", crf: Optional[Dict[str, Any]] = None):
        self.session, self.encoder = session, encoder
        self.labels, self.max_len, self.text_pairs = list(labels), int(max_len), False
        self.manifest, self.config, self.shown = manifest, config, shown
        self.input_names = [i.name for i in session.get_inputs()]
        self.scheme, self.unit = scheme, unit
        self.crf = crf_arrays(crf) if crf else None

    def check_model(self) -> None:
        model_file = self.config.model_file if self.config else "model.onnx"
        try:
            logits, first = self.token_logits([["a", "b"]])
        except Exception as err:  # noqa: BLE001 - ONNX Runtime's own error types
            raise PackageError(f"{self.shown}: {model_file} does not run on encoded tokens "
                               f"({str(err).splitlines()[0][:200] if str(err) else err!r})"
                               ) from None
        if logits.ndim != 3 or logits.shape[0] != 1 or logits.shape[2] != len(self.labels):
            raise PackageError(f"{self.shown}: {model_file} gives outputs of shape "
                               f"{tuple(logits.shape)} for one text; a token model gives "
                               f"(1, tokens, {len(self.labels)}) for the labels of 'id2label'")

    def token_logits(self, rows: List[List[str]]):
        """(B, T, C) sub-token logits and the first sub-token position of each token."""
        ids, first = encode_token_rows(self.encoder, rows, max_len=self.max_len)
        width = max(len(r) for r in ids)
        input_ids = np.full((len(ids), width), self.encoder.pad_id, dtype=np.int64)  # (B, T)
        mask = np.zeros((len(ids), width), dtype=np.int64)  # (B, T)
        for b, row in enumerate(ids):
            input_ids[b, :len(row)], mask[b, :len(row)] = row, 1
        feed = {"input_ids": input_ids, "token_type_ids": np.zeros_like(input_ids),
                "attention_mask": mask}
        feed = {n: feed[n] for n in self.input_names}
        return np.asarray(self.session.run(None, feed)[0]), first

    def predict(self, texts: Union[str, Sequence[str]], texts_b: Optional[Sequence[str]] = None,
                batch_size: int = 32) -> List[Dict[str, Any]]:
        """``{"text", "entities": [{"start", "end", "type", "text", "score"}]}`` per text."""
        if texts_b is not None:
            raise UserError("a token-classification package reads single texts; omit texts_b")
        if isinstance(texts, str):
            texts = [texts]
        if not isinstance(texts, (list, tuple)) or not texts:
            raise UserError("texts: expected a non-empty list of strings")
        if batch_size < 1:
            raise UserError(f"batch_size must be at least 1, got {batch_size}")
        for i, text in enumerate(texts, 1):
            if not isinstance(text, str):
                raise UserError(f"texts: text {i} is a {type(text).__name__}, not a string")
        results: List[Dict[str, Any]] = []
        for start in range(0, len(texts), batch_size):
            chunk = list(texts[start:start + batch_size])
            pieces = [split_text(t, self.unit) for t in chunk]
            tagged = [i for i, p in enumerate(pieces) if p]
            decoded: Dict[int, List[Dict[str, Any]]] = {i: [] for i in range(len(chunk))}
            if tagged:
                logits, first = self.token_logits([[tok for tok, _, _ in pieces[i]] for i in tagged])
                for row, i in enumerate(tagged):
                    decoded[i] = self._spans(chunk[i], pieces[i], logits[row], first[row])
            results += [{"text": text, "entities": decoded[i]} for i, text in enumerate(chunk)]
        return results

    def _spans(self, text: str, pieces, logits: np.ndarray, first: List[int]):
        """Entities of one text from its (T, C) sub-token logits."""
        positions = np.array([max(p, 0) for p in first], dtype=np.int64)
        probs = softmax(logits[positions])  # (W, C)
        if self.crf is None:
            ids = list(probs.argmax(axis=-1))
        else:  # cut tokens (first -1) are the tail of the text: Viterbi over the others
            n = sum(p >= 0 for p in first)
            ids = viterbi(logits[positions[:n]], **self.crf) + [0] * (len(first) - n)
        names = [self.labels[int(k)] if p >= 0 else "O" for k, p in zip(ids, first)]
        tags = encode_spans(len(names), decode_spans(names), self.scheme)
        index = {label: i for i, label in enumerate(self.labels)}
        entities = []
        for s, e, kind in decode_spans(tags):
            score = float(np.mean([probs[j, index[tags[j]]] if tags[j] in index else 0.0
                                   for j in range(s, e)]))
            begin, end = pieces[s][1], pieces[e - 1][2]
            entities.append({"start": begin, "end": end, "type": kind, "text": text[begin:end],
                             "score": score})
        return entities
