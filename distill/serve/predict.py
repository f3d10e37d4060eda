"""Predict with an edge package (``NAME.tar.gz`` from ``distill export --package``). No Paddle.

    distill predict reviews-bow.tar.gz "great phone, long battery" "screen broke in a week"
    distill predict reviews-bow.tar.gz --input texts.txt --json --batch-size 64

``--input``: a .txt file has one text per line; .tsv/.jsonl/.csv files are read with
``distill.data.examples.read_examples`` (``text_a`` and, for pair models, ``text_b`` columns).

In Python::

    from distill.serve.predict import load_package
    predictor = load_package("reviews-bow.tar.gz")
    predictor.predict(["great phone"])  # [{"label": "pos", "probabilities": {"neg": 0.03, "pos": 0.97}}]

This module imports only numpy, onnxruntime and the encoder libraries (``distill``,
``teachers``, ``students`` package inits are Paddle-free). Every file is checked against the
manifest (size, then sha256) before anything is loaded; a missing, extra or altered file, a path
leaving the package, a malformed manifest or config, a model that ONNX Runtime cannot load or
whose output size differs from the number of labels is refused with a ``PackageError`` naming
the file and field (``distill.serve.loader``). The manifest is integrity, not authenticity.
"""
import tempfile
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Union

import numpy as np

from distill.core.errors import PackageError, UserError
from distill.core.runtime import usable_cores
from distill.serve.loader import (CONFIG, ENCODER_DIR, MANIFEST, PackageConfig, PackageLimits,
                                  check_encoder_files, check_manifest, extract_archive,
                                  read_config, read_json_file, verify_dir)


def onnx_session(path, threads: Optional[int] = None):
    """An ONNX Runtime CPU session with a fixed intra-op thread count (default: usable cores)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = int(threads or usable_cores())
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=-1, keepdims=True)  # (B, C)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


class Predictor:
    """A loaded package: encoder + ONNX Runtime session + labels. Use ``load_package``."""

    def __init__(self, session, encoder, labels: Sequence[str], max_len: int,
                 text_pairs: bool, manifest: Dict[str, Any],
                 config: Optional[PackageConfig] = None, shown=None):
        self.session, self.encoder = session, encoder
        self.labels, self.max_len, self.text_pairs = list(labels), int(max_len), bool(text_pairs)
        self.manifest, self.config, self.shown = manifest, config, shown
        self.input_names = [i.name for i in session.get_inputs()]

    def check_model(self) -> None:
        """Refuse a model whose inputs we cannot feed or whose output size is not len(labels)."""
        from distill.text.encoders import INPUT_NAMES

        model_file = self.config.model_file if self.config else "model.onnx"
        unknown = [n for n in self.input_names if n not in INPUT_NAMES]
        if unknown:
            raise PackageError(f"{self.shown}: {model_file} takes input {unknown[0]!r}; a package "
                               f"model may take only {', '.join(INPUT_NAMES)}")
        probe = ["a"], (["a"] if self.text_pairs else None)
        try:
            logits = self.logits(*probe)
        except Exception as err:  # noqa: BLE001 - ONNX Runtime's own error types
            raise PackageError(f"{self.shown}: {model_file} does not run on encoded text "
                               f"({str(err).splitlines()[0][:200] if str(err) else err!r})"
                               ) from None
        if logits.ndim != 2 or logits.shape != (1, len(self.labels)):
            raise PackageError(f"{self.shown}: {model_file} gives outputs of shape "
                               f"{tuple(logits.shape)} for one text, but {CONFIG} field "
                               f"'id2label' has {len(self.labels)} labels")

    def predict(self, texts: Union[str, Sequence[str]], texts_b: Optional[Sequence[str]] = None,
                batch_size: int = 32) -> List[Dict[str, Any]]:
        """Label and class probabilities for each text (and its pair, for pair models)."""
        texts = _check_texts(texts, "texts")
        if texts_b is not None:
            texts_b = _check_texts(texts_b, "texts_b")
            if len(texts_b) != len(texts):
                raise UserError(f"texts_b has {len(texts_b)} texts but texts has {len(texts)}")
        if self.text_pairs and texts_b is None:
            raise UserError("this package's model reads text pairs: give texts_b "
                            "(CLI: an --input .tsv/.jsonl/.csv file with a text_b column)")
        if not self.text_pairs and texts_b is not None:
            raise UserError("this package's model reads single texts; texts_b must be omitted")
        if batch_size < 1:
            raise UserError(f"batch_size must be at least 1, got {batch_size}")
        results: List[Dict[str, Any]] = []
        for start in range(0, len(texts), batch_size):
            chunk_b = None if texts_b is None else list(texts_b[start:start + batch_size])
            results += self.results(self.logits(list(texts[start:start + batch_size]), chunk_b))
        return results

    def results(self, logits: np.ndarray) -> List[Dict[str, Any]]:
        """One ``{"label", "score", "probabilities"}`` per row of (B, C) logits."""
        probs = softmax(logits)  # (B, C)
        labels = self.labels
        out = []
        for best, row in zip(probs.argmax(axis=-1).tolist(), probs.tolist()):
            out.append({"label": labels[best], "score": row[best],
                        "probabilities": dict(zip(labels, row))})
        return out

    def logits(self, texts: List[str], texts_b: Optional[List[str]] = None) -> np.ndarray:
        """Raw (B, C) logits for one batch."""
        return self.run(self.feed(texts, texts_b))

    def feed(self, texts: List[str], texts_b: Optional[List[str]] = None) -> Dict[str, np.ndarray]:
        """The model inputs for one batch: int64 (B, T) arrays by input name."""
        enc = self.encoder.encode(texts, texts_b, max_len=self.max_len)
        return {n: np.ascontiguousarray(enc[n], dtype=np.int64) for n in self.input_names}

    def run(self, feed: Dict[str, np.ndarray]) -> np.ndarray:
        """(B, C) logits of ONNX Runtime for ``feed`` (releases the GIL while it computes)."""
        return np.asarray(self.session.run(None, feed)[0])


def _check_texts(texts, what: str) -> List[str]:
    if isinstance(texts, str):
        texts = [texts]
    if not isinstance(texts, (list, tuple)):
        raise UserError(f"{what}: expected a list of strings, got a {type(texts).__name__}")
    texts = list(texts)
    if not texts:
        raise UserError(f"{what}: no input texts given")
    for i, text in enumerate(texts, 1):
        if not isinstance(text, str):
            raise UserError(f"{what}: text {i} is a {type(text).__name__}, not a string")
        if not text.strip():
            raise UserError(f"{what}: text {i} is empty")
    return texts


def load_package(path, threads: Optional[int] = None,
                 limits: PackageLimits = PackageLimits()) -> Predictor:
    """Open a ``.tar.gz`` package (or its unpacked folder), verify every file, load it.

    See ``distill.serve.loader`` for what is checked (sizes, paths, manifest and config schema).
    """
    path = Path(path)
    if path.is_dir():
        return _load_dir(path, threads, limits)
    if not path.is_file():
        raise PackageError(f"{path}: package not found")
    with tempfile.TemporaryDirectory(prefix="distill-package-") as tmp:
        root = extract_archive(path, Path(tmp), limits)
        return _load_dir(root, threads, limits, shown=path, verified=True)


def verify_package_dir(root: Path, shown=None) -> Dict[str, Any]:
    """Check files against ``manifest.json``; return the manifest. Raises ``PackageError``."""
    return verify_dir(Path(root), shown)


def _load_dir(root: Path, threads: Optional[int], limits: PackageLimits, shown=None,
              verified: bool = False) -> Predictor:
    from distill.text.encoders import load_encoder

    shown = shown or root
    manifest = (check_manifest(read_json_file(root / MANIFEST, MANIFEST, shown, limits), shown)
                if verified else verify_dir(root, shown, limits))
    listed = manifest["files"]
    config = read_config(root, listed, shown, limits)
    encoder_json = f"{ENCODER_DIR}/encoder.json"
    if encoder_json not in listed:
        raise PackageError(f"{shown}: file {encoder_json} is missing (not in {MANIFEST})")
    check_encoder_files(read_json_file(root / encoder_json, encoder_json, shown, limits),
                        listed, shown)
    try:
        encoder = load_encoder(root / ENCODER_DIR)
    except UserError as err:
        raise PackageError(f"{shown}: {encoder_json}: cannot load the encoder ({err})") from None
    except (TypeError, ValueError, KeyError, AttributeError, RuntimeError, OSError) as err:
        raise PackageError(f"{shown}: {encoder_json}: cannot load the encoder "
                           f"({type(err).__name__}: {err})") from None
    try:
        session = onnx_session(root / config.model_file, threads)
    except Exception as err:  # noqa: BLE001 - ONNX Runtime's own error types for a bad graph
        raise PackageError(f"{shown}: {config.model_file} is not a model ONNX Runtime can load "
                           f"({str(err).splitlines()[0][:200] if str(err) else type(err).__name__})"
                           ) from None
    if config.task == "token-classification":  # NER: entity spans (distill.serve.tokens)
        from distill.serve.tokens import TokenPredictor

        predictor = TokenPredictor(session, encoder, config.labels, config.max_len, False,
                                   manifest, config=config, shown=shown, **config.token)
    else:
        predictor = Predictor(session, encoder, config.labels, config.max_len,
                              config.text_pairs, manifest, config=config, shown=shown)
    predictor.check_model()
    return predictor
