"""Edge package: ``NAME.tar.gz`` with the best accepted ONNX model, the encoder, labels,
preprocessing settings and a ``manifest.json`` that hashes every file. No Paddle here.

    from distill.export.package import build_package, PackageMeta
    path = build_package(reports, "out/encoder", ["neg", "pos"], "out/reviews-bow.tar.gz",
                         PackageMeta(teacher="minilm", student="bow", max_len=128))

Layout inside the archive (one top folder named like the archive); the first three are standard
files that ONNX Runtime and the ``tokenizers`` library read without any code of ours
(docs/edge.md has the ten lines)::

    NAME/model.onnx         the chosen artifact (onnx or onnx-int8: ``config.json`` says which)
    NAME/tokenizer.json     WordPiece/SentencePiece encoders in the ``tokenizers`` format (same
                            ids, truncation to max_length, padding to the longest row); word
                            students have none: their vocabulary and segmentation settings are
                            in ``encoder/vocab.txt`` and ``config.json``'s ``encoder`` field
    NAME/config.json        task, id2label/label2id, max_length, text_pairs, the model's input
                            names, model file and format, the encoder's settings
    NAME/encoder/...        files written by ``encoder.save`` (``encoder.json`` + vocab/model),
                            what ``distill.serve.predict`` loads
    NAME/manifest.json      toolkit version, teacher, student, creation time, the chosen format,
                            every artifact's report, and {relative path: sha256, size} per file
                            (integrity, not authenticity: see ``distill.serve.loader``)

Choice of model (``choose_best``): only accepted ONNX artifacts; the lowest batch-1 p50 latency
wins, but latencies within ``LATENCY_TIE`` (10 %) or ``LATENCY_TIE_MS`` (0.1 ms) of the fastest
count as a tie, and a tie goes to the smaller file (on edge devices size matters as much as a few
percent of speed, and a 0.01 ms difference on a sub-millisecond model is timing noise).
"""
import dataclasses
import datetime
import os
import shutil
import tarfile
import tempfile
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Union

from distill.core.errors import PackageError, UserError
from distill.core.io import MARKER, atomic_path, read_json, sha256_file, write_json
from distill.export.measure import ArtifactReport
from distill.text.encoders import INPUT_NAMES, load_encoder

PACKAGE_FORMATS = ("onnx", "onnx-int8")
LATENCY_TIE, LATENCY_TIE_MS = 0.10, 0.1
MODEL_FILE = "model.onnx"
MANIFEST, CONFIG, ENCODER_DIR = "manifest.json", "config.json", "encoder"
TOKENIZER_JSON = "tokenizer.json"
TASK = "text-classification"
SUFFIX = ".tar.gz"


@dataclasses.dataclass
class PackageMeta:
    """What the manifest and the predictor need besides the files."""

    teacher: str = ""
    student: str = ""
    max_len: int = 128
    text_pairs: bool = False  # True: the model was trained on (text_a, text_b) pairs
    input_names: Sequence[str] = INPUT_NAMES
    extra: Dict[str, Any] = dataclasses.field(default_factory=dict)
    # config.json fields set by the task (token packages: task, token, output)
    config: Dict[str, Any] = dataclasses.field(default_factory=dict)

    @classmethod
    def from_dict(cls, values: Optional[Dict[str, Any]]) -> "PackageMeta":
        values = dict(values or {})
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise UserError(f"package meta: unknown key(s) {', '.join(unknown)}; "
                            f"known: {', '.join(sorted(known))}")
        return cls(**values)


def choose_best(artifacts: Sequence[Union[ArtifactReport, Dict[str, Any]]],
                formats: Sequence[str] = PACKAGE_FORMATS) -> Optional[ArtifactReport]:
    """The accepted ONNX artifact to ship (see the module docstring), or None."""
    reports = [a if isinstance(a, ArtifactReport) else ArtifactReport.from_dict(a)
               for a in artifacts]
    candidates = [r for r in reports if r.accepted and r.format in formats]
    if not candidates:
        return None
    return fastest_then_smallest(candidates, latency=lambda r: r.latency_ms_b1["p50"],
                                 size=lambda r: r.size_bytes)


def best_student(candidates: Dict[str, Sequence[Union[ArtifactReport, Dict[str, Any]]]]):
    """``(name, artifact)`` of the student to package, or None when none has an accepted ONNX export.

    ``candidates`` maps student name -> its artifact reports. Each student's shippable artifact
    is its ``choose_best``; among those the highest *dev* accuracy wins (the guard's eval split),
    ties going to the lower batch-1 latency. Test accuracy is never read: it is only reported.
    """
    best = None
    for name, reports in candidates.items():
        choice = choose_best(reports)
        if choice is None:
            continue
        score = ((choice.dev or {}).get("accuracy", 0.0), -choice.latency_ms_b1["p50"])
        if best is None or score > best[0]:
            best = (score, name, choice)
    return None if best is None else (best[1], best[2])


def fastest_then_smallest(items: Sequence, latency, size):
    """The smallest of the items whose latency ties with the fastest (see the module docstring)."""
    fastest = min(latency(i) for i in items)
    limit = max(fastest * (1 + LATENCY_TIE), fastest + LATENCY_TIE_MS)
    return min((i for i in items if latency(i) <= limit), key=lambda i: (size(i), latency(i)))


def package_name(out_path) -> str:
    name = Path(out_path).name
    if not name.endswith(SUFFIX):
        raise UserError(f"{out_path}: a package file must end with {SUFFIX}")
    return name[: -len(SUFFIX)]


def build_package(artifacts: Sequence[Union[ArtifactReport, Dict[str, Any]]], encoder_dir,
                  labels: Sequence[str], out_path,
                  meta: Union[PackageMeta, Dict[str, Any], None] = None) -> Path:
    """Write ``out_path`` (``NAME.tar.gz``) atomically and return it.

    ``artifacts``: every measured artifact (all go into the manifest); the best accepted ONNX
    one is shipped. Raises ``PackageError`` when no ONNX artifact was accepted.
    """
    meta = meta if isinstance(meta, PackageMeta) else PackageMeta.from_dict(meta)
    name = package_name(out_path)
    reports = [a if isinstance(a, ArtifactReport) else ArtifactReport.from_dict(a)
               for a in artifacts]
    best = choose_best(reports)
    if best is None:
        summary = ", ".join(f"{r.format}: {'accepted' if r.accepted else r.reason}"
                            for r in reports) or "none"
        raise PackageError(f"no accepted ONNX artifact to package ({summary})")
    encoder_dir = Path(encoder_dir)
    if not (encoder_dir / "encoder.json").is_file():
        raise PackageError(f"{encoder_dir / 'encoder.json'}: missing; save the encoder first")
    if not labels:
        raise PackageError("no labels given for the package")
    from distill.core import __version__

    with tempfile.TemporaryDirectory(prefix=".package-", dir=Path(out_path).parent
                                     if Path(out_path).parent.exists() else None) as staging:
        root = Path(staging) / name
        root.mkdir()
        shutil.copyfile(best.path, root / MODEL_FILE)
        shutil.copytree(encoder_dir, root / ENCODER_DIR,  # not the tool's ownership marker
                        ignore=shutil.ignore_patterns(MARKER))
        write_json(root / CONFIG, standard_config(root / MODEL_FILE, encoder_dir, labels, meta,
                                                  best.format))
        encoder = load_encoder(encoder_dir)
        if hasattr(encoder, "hf_tokenizer"):
            encoder.hf_tokenizer(int(meta.max_len)).save(str(root / TOKENIZER_JSON))
        files = {rel: {"sha256": sha256_file(root / rel), "size_bytes": (root / rel).stat().st_size}
                 for rel in _relative_files(root)}
        write_json(root / MANIFEST, {
            "name": name,
            "toolkit": "ernie-distill", "toolkit_version": __version__,
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "teacher": meta.teacher, "student": meta.student,
            "model": {"format": best.format, "file": MODEL_FILE, "size_bytes": best.size_bytes,
                      "choice": f"accepted {'/'.join(PACKAGE_FORMATS)} artifact with the lowest "
                                f"batch-1 p50 latency; within {int(LATENCY_TIE * 100)}% counts "
                                f"as a tie, won by the smaller file"},
            "artifacts": [r.to_dict() for r in reports],
            "files": files,
            "extra": meta.extra,
        })
        with atomic_path(out_path) as tmp:
            with tarfile.open(tmp, "w:gz") as tar:
                tar.add(root / MANIFEST, arcname=f"{name}/{MANIFEST}")
                for rel in sorted(files):
                    tar.add(root / rel, arcname=f"{name}/{rel}")
    return Path(out_path)


def standard_config(model_path: Path, encoder_dir: Path, labels: Sequence[str],
                    meta: PackageMeta, fmt: str) -> Dict[str, Any]:
    """``config.json``: what a runtime needs besides ``model.onnx`` and ``tokenizer.json``."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    inputs = [i.name for i in session.get_inputs()]
    encoder_meta = read_json(Path(encoder_dir) / "encoder.json")
    encoder: Dict[str, Any] = {"type": encoder_meta.get("type"), "files": f"{ENCODER_DIR}/"}
    if encoder_meta.get("type") == "words":
        language = encoder_meta.get("language", "en")
        encoder.update({
            "vocab_file": f"{ENCODER_DIR}/{encoder_meta.get('vocab_file', 'vocab.txt')}",
            "language": language, "lowercase": encoder_meta.get("lowercase", True),
            "segmentation": ("jieba.lcut (default dictionary), whitespace tokens dropped"
                             if language == "zh" else
                             "regex words, numbers, clitics and punctuation "
                             "(distill.text.words.split_english)"),
            "ids": "line i of vocab_file is id i; unknown words -> [UNK]; an empty text -> one "
                   "[UNK]; pairs -> a [SEP] b with token_type_ids 0 then 1",
        })
    else:
        encoder["tokenizer_file"] = TOKENIZER_JSON
    return {
        "task": TASK,
        "id2label": {str(i): label for i, label in enumerate(labels)},
        "label2id": {label: i for i, label in enumerate(labels)},
        "max_length": int(meta.max_len),
        "text_pairs": bool(meta.text_pairs),
        "input_names": inputs,
        "inputs": "int64 (batch, tokens) each; attention_mask 1 for tokens, 0 for padding",
        "output": "logits (batch, num_labels); softmax gives the probabilities",
        "model_file": MODEL_FILE,
        "format": fmt,
        "encoder": encoder,
        "teacher": meta.teacher, "student": meta.student,
        **meta.config,
    }


def _relative_files(root: Path) -> List[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*")
                  if p.is_file() and p.name != MANIFEST)


def describe(reports: Sequence[Union[ArtifactReport, Dict[str, Any]]]) -> str:
    """One line per artifact for the CLI: format, size, dev (guard) and test accuracy, speed,
    accepted/reason."""
    lines = []
    for r in reports:
        r = r if isinstance(r, ArtifactReport) else ArtifactReport.from_dict(r)
        dev = f"{100 * r.dev['accuracy']:.2f}%" if r.dev else "n/a"
        test = f"{100 * r.test['accuracy']:.2f}%" if r.test else "n/a"
        state = "accepted" if r.accepted else f"REJECTED: {r.reason}"
        lines.append(f"{r.format:<12}{r.size_bytes / 1e6:>9.2f} MB  dev {dev:>7}  test {test:>7}  "
                     f"p50 {r.latency_ms_b1['p50']:.2f} ms  b32 {r.throughput_b32:.0f}/s  {state}")
    return os.linesep.join(lines)
