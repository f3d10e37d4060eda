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
manifest's sha256 before anything is loaded; a missing, extra or altered file is refused.
"""
import tarfile
import tempfile
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Union

import numpy as np

from distill.core.errors import PackageError, UserError
from distill.core.io import read_json, sha256_file
from distill.core.runtime import usable_cores

MANIFEST, PREPROCESS, ENCODER_DIR = "manifest.json", "preprocess.json", "encoder"


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
                 text_pairs: bool, manifest: Dict[str, Any]):
        self.session, self.encoder = session, encoder
        self.labels, self.max_len, self.text_pairs = list(labels), int(max_len), bool(text_pairs)
        self.manifest = manifest
        self.input_names = [i.name for i in session.get_inputs()]

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
            probs = softmax(self.logits(list(texts[start:start + batch_size]), chunk_b))
            for row in probs:
                results.append({"label": self.labels[int(row.argmax())],
                                "probabilities": {l: float(p) for l, p in zip(self.labels, row)}})
        return results

    def logits(self, texts: List[str], texts_b: Optional[List[str]] = None) -> np.ndarray:
        """Raw (B, C) logits for one batch."""
        enc = self.encoder.encode(texts, texts_b, max_len=self.max_len)
        feed = {n: np.ascontiguousarray(enc[n], dtype=np.int64) for n in self.input_names}
        return self.session.run(None, feed)[0]


def _check_texts(texts, what: str) -> List[str]:
    if isinstance(texts, str):
        texts = [texts]
    texts = list(texts)
    if not texts:
        raise UserError(f"{what}: no input texts given")
    for i, text in enumerate(texts, 1):
        if not isinstance(text, str):
            raise UserError(f"{what}: text {i} is a {type(text).__name__}, not a string")
        if not text.strip():
            raise UserError(f"{what}: text {i} is empty")
    return texts


def load_package(path, threads: Optional[int] = None) -> Predictor:
    """Open a ``.tar.gz`` package (or its unpacked folder), verify every file, load it."""
    path = Path(path)
    if path.is_dir():
        return _load_dir(path, threads)
    if not path.is_file():
        raise PackageError(f"{path}: package not found")
    with tempfile.TemporaryDirectory(prefix="distill-package-") as tmp:
        try:
            with tarfile.open(path, "r:gz") as tar:
                tar.extractall(tmp, filter="data")
        except (tarfile.TarError, OSError, EOFError) as err:
            raise PackageError(f"{path}: not a readable .tar.gz package ({err})") from None
        roots = [p for p in Path(tmp).iterdir()]
        if len(roots) != 1 or not roots[0].is_dir():
            raise PackageError(f"{path}: expected one top folder in the archive, found "
                               f"{', '.join(sorted(p.name for p in roots)) or 'nothing'}")
        return _load_dir(roots[0], threads, shown=path)


def verify_package_dir(root: Path, shown=None) -> Dict[str, Any]:
    """Check files against ``manifest.json``; return the manifest. Raises ``PackageError``."""
    shown = shown or root
    manifest_path = root / MANIFEST
    if not manifest_path.is_file():
        raise PackageError(f"{shown}: {MANIFEST} is missing")
    try:
        manifest = read_json(manifest_path)
        listed = manifest["files"]
    except (ValueError, KeyError, TypeError) as err:
        raise PackageError(f"{shown}: {MANIFEST} is unreadable ({err})") from None
    for rel, entry in sorted(listed.items()):
        file = root / rel
        if not file.is_file():
            raise PackageError(f"{shown}: file {rel} is missing (listed in {MANIFEST})")
        if sha256_file(file) != entry.get("sha256"):
            raise PackageError(f"{shown}: file {rel} does not match its sha256 in {MANIFEST} "
                               f"(corrupted or modified)")
    present = {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}
    extra = sorted(present - set(listed) - {MANIFEST})
    if extra:
        raise PackageError(f"{shown}: file {extra[0]} is not listed in {MANIFEST}")
    for needed in (PREPROCESS, f"{ENCODER_DIR}/encoder.json"):
        if needed not in listed:
            raise PackageError(f"{shown}: file {needed} is missing (not in {MANIFEST})")
    return manifest


def _load_dir(root: Path, threads: Optional[int], shown=None) -> Predictor:
    from distill.text.encoders import load_encoder

    manifest = verify_package_dir(root, shown)
    pre = read_json(root / PREPROCESS)
    model_file = pre.get("model_file", "model.onnx")
    if model_file not in manifest["files"]:
        raise PackageError(f"{shown or root}: file {model_file} is missing (not in {MANIFEST})")
    encoder = load_encoder(root / ENCODER_DIR)
    session = onnx_session(root / model_file, threads)
    return Predictor(session, encoder, pre["labels"], pre["max_len"], pre.get("text_pairs", False),
                     manifest)


# ------------------------------------------------------------------------------------- CLI
