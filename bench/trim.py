"""Vocabulary trimming on a real model: MiniLM-L6 (30,522 WordPiece pieces) on movies_en.

    python -m bench.trim            # probe on 1,000 train rows, test on 500 test rows
    python -m bench.trim --quick    # 300 / 200 rows
    python -m bench.trim --train-rows 2000 --test-rows 1300

No fine-tuned teacher is needed: the MiniLM encoder is frozen and only its classification head is
fitted (a logistic-regression probe on the pooled vector of ``--train-rows`` training sentences,
scikit-learn), which gives a real model with task accuracy in minutes of CPU. The model is then
exported twice with ``distill.export.exporter.export_model`` (ONNX FP32 + ONNX INT8): untrimmed,
and with ``trim_vocab: auto`` on the whole movies_en training text (what a recipe keeps). Each
artifact is packaged on its own to give the package size. Measured: vocabulary size, parameters,
FP32 and INT8 package MB, test accuracy of every artifact, the trimmed model's argmax agreement
with the untrimmed one. Writes bench/results/trim.md and .json.

``--e5``: also count what ``trim_vocab: auto`` keeps of multilingual-e5-small's SentencePiece
vocabulary for the reviews_zh training text, and the parameters of the reviews_zh tiny student
(4 of e5's layers, ``recipes/reviews_zh/tiny_from_e5small.yaml``) before and after; sizes only.

Not measured here: a fully fine-tuned teacher (hours of CPU on this machine), the accuracy and
package size of the reviews_zh and movies_en tiny students (they need trained students).
"""
import tempfile
import time
from pathlib import Path
from typing import Dict

import numpy as np

from bench.common import base_parser, machine, machine_line, md_table, results_dir, write_results


def fit_probe(teacher, texts, labels, max_len: int) -> None:
    """Fit the classification head on frozen pooled vectors (logistic regression), in place."""
    import paddle
    from sklearn.linear_model import LogisticRegression

    from distill.train.trainer import eval_mode

    feats = []
    with eval_mode(teacher.model), paddle.no_grad():
        for start in range(0, len(texts), 32):
            enc = teacher.tokenizer.encode(texts[start:start + 32], max_len=max_len)
            out = teacher.model.ernie(paddle.to_tensor(enc["input_ids"]),
                                      paddle.to_tensor(enc["token_type_ids"]),
                                      paddle.to_tensor(enc["attention_mask"]))
            feats.append(out["pooled"].numpy())                              # (B, H)
    x = np.concatenate(feats)                                                # (N, H)
    probe = LogisticRegression(max_iter=2000, C=1.0).fit(x, labels)
    coef, bias = probe.coef_[0], probe.intercept_[0]  # one score s -> logits (-s/2, s/2)
    weight = np.stack([-coef / 2, coef / 2], axis=1).astype("float32")      # (H, 2)
    teacher.model.classifier.weight.set_value(weight)
    teacher.model.classifier.bias.set_value(np.array([-bias / 2, bias / 2], dtype="float32"))


def e5_vocabulary(export: bool = False) -> Dict[str, object]:
    """What trimming keeps of e5's vocabulary for reviews_zh, and the tiny student's parameters;
    ``export``: also export the trimmed tiny student (initialised from e5's layers, untrained
    head) to ONNX FP32 + INT8 and package each, for the package sizes."""
    from distill.data.examples import read_examples
    from distill.data.fetch import fetch
    from distill.export.trim import kept_ids
    from students.tiny import TinyStudent, tiny_config_for
    from teachers.checkpoint import load_teacher

    teacher = load_teacher("e5-small", num_labels=2)
    train = read_examples(Path(fetch("reviews_zh")) / "train.tsv")
    max_len = 64  # the recipe's teacher.max_len
    keep, in_text = kept_ids(teacher.tokenizer, [e.text_a for e in train], "auto", max_len)
    tiny = TinyStudent(tiny_config_for(teacher.config, {"num_layers": 4}),
                       vocab_size=teacher.config.vocab_size, num_labels=2,
                       pad_id=teacher.tokenizer.pad_id)
    from distill.export.trim import count_parameters

    params = count_parameters(tiny)
    rows, hidden = teacher.config.vocab_size, teacher.config.hidden_size
    packages = {}
    if export:
        from distill.export.exporter import ExportConfig, LoadedModel, export_model
        from distill.export.package import build_package
        from students.tiny import init_from_teacher

        init_from_teacher(tiny, teacher.model)
        tiny.eval()
        test = read_examples(Path(fetch("reviews_zh")) / "test.tsv")[:200]
        labels = sorted({e.label for e in train})
        loaded = LoadedModel(tiny, teacher.tokenizer, labels, max_len, kind="tiny", name="tiny")
        with tempfile.TemporaryDirectory(prefix="bench-trim-e5-") as tmp:
            result = export_model(loaded, out_dir=Path(tmp) / "x", eval_examples=test,
                                  calib_examples=train[:200],
                                  config=ExportConfig(formats=("onnx", "onnx-int8"),
                                                      max_len=max_len, threads=1, timed=False,
                                                      trim_vocab="auto", calib_size=50,
                                                      max_accuracy_drop=0.99,
                                                      max_disagreement=None, auto_exclude=False),
                                  trim_texts=train)
            for report in result.reports:
                package = build_package([report], Path(tmp) / "x" / "encoder", labels,
                                        Path(tmp) / f"tiny-{report.format}.tar.gz",
                                        {"max_len": max_len})
                packages[report.format] = package.stat().st_size
    return {"packages_trimmed_bytes": packages,
            "tokenizer_pieces": teacher.tokenizer.vocab_size, "embedding_rows": rows,
            "kept": len(keep), "pieces_in_text": in_text, "texts": len(train),
            "hidden": hidden, "tiny_parameters_before": params,
            "tiny_parameters_after": params - (rows - len(keep)) * hidden,
            "teacher_parameters_before": count_parameters(teacher.model),
            "teacher_parameters_after": count_parameters(teacher.model)
            - (rows - len(keep)) * hidden}


def bench(quick: bool, train_rows: int = 0, test_rows: int = 0) -> Dict[str, object]:
    from distill.data.examples import read_examples
    from distill.data.fetch import fetch
    from distill.export.exporter import ExportConfig, LoadedModel, export_model
    from distill.export.measure import MeasureSettings
    from distill.export.package import build_package
    from teachers.checkpoint import load_teacher

    train_rows = train_rows or (300 if quick else 1000)
    test_rows = test_rows or (200 if quick else 500)
    max_len = 64
    info: Dict[str, object] = {"machine": machine(), "quick": quick, "train_rows": train_rows,
                               "test_rows": test_rows, "max_len": max_len}
    print(machine_line(info["machine"]), flush=True)
    data = Path(fetch("movies_en"))
    train = read_examples(data / "train.tsv")
    test = read_examples(data / "test.tsv")[:test_rows]
    labels = sorted({e.label for e in train})
    rng = np.random.default_rng(0)
    probe_rows = [train[i] for i in sorted(rng.permutation(len(train))[:train_rows])]
    teacher = load_teacher("minilm-l6", num_labels=len(labels))
    teacher.labels = labels
    start = time.perf_counter()
    fit_probe(teacher, [e.text_a for e in probe_rows],
              np.array([labels.index(e.label) for e in probe_rows]), max_len)
    info["probe_seconds"] = round(time.perf_counter() - start, 1)
    loaded = LoadedModel(teacher.model, teacher.tokenizer, labels, max_len, kind="teacher",
                         name="minilm-l6-probe")
    settings = MeasureSettings(warmup_runs=2, latency_runs=10, latency_sentences=10)
    rows = {}
    with tempfile.TemporaryDirectory(prefix="bench-trim-") as tmp:
        for name, trim in (("untrimmed", "off"), ("trimmed", "auto")):
            t0 = time.perf_counter()
            config = ExportConfig(formats=("onnx", "onnx-int8"), max_len=max_len, threads=1,
                                  trim_vocab=trim, max_accuracy_drop=0.99, max_disagreement=None,
                                  calib_size=50, measure=settings, auto_exclude=False)
            result = export_model(loaded, out_dir=Path(tmp) / name, eval_examples=test,
                                  calib_examples=train[:200], config=config,
                                  trim_texts=train if trim != "off" else None)
            row = {"reference": result.reference, "export_seconds": round(time.perf_counter() - t0)}
            for report in result.reports:
                package = build_package([report], Path(tmp) / name / "encoder", labels,
                                        Path(tmp) / f"{name}-{report.format}.tar.gz",
                                        {"max_len": max_len})
                row[report.format] = {"accuracy": report.test["accuracy"],
                                      "package_bytes": package.stat().st_size,
                                      "model_bytes": report.size_bytes,
                                      "argmax_agreement_vs_fp32": report.parity[
                                          "argmax_agreement"],
                                      "p50_ms": report.latency_ms_b1["p50"]}
            rows[name] = row
            print(f"{name}: {row}", flush=True)
    info["models"] = rows
    import os

    info["machine"]["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    return info


def markdown(info: Dict[str, object]) -> str:
    m = info["models"]
    trim = m["trimmed"]["reference"]["trim"]
    lines = ["### Vocabulary trimming (MiniLM-L6 with a fitted head, movies_en)", "",
             f"Measured on {machine_line(info['machine'])}; load average at the end "
             f"{info['machine']['load_average_end'][0]}. Head: logistic regression on the frozen "
             f"pooled vector of {info['train_rows']} training sentences; test: the first "
             f"{info['test_rows']} test sentences, max length {info['max_len']}; trimming kept "
             f"the pieces of all {trim['texts']} training sentences (`trim_vocab: auto`).", ""]
    rows = []
    for name in ("untrimmed", "trimmed"):
        r = m[name]
        vocab = trim["vocab_before"] if name == "untrimmed" else trim["vocab_after"]
        params = trim["parameters_before"] if name == "untrimmed" else trim["parameters_after"]
        rows.append([name, f"{vocab:,}", f"{params / 1e6:.1f}M",
                     f"{r['onnx']['package_bytes'] / 1e6:.1f}",
                     f"{r['onnx-int8']['package_bytes'] / 1e6:.1f}",
                     f"{100 * r['onnx']['accuracy']:.2f}", f"{100 * r['onnx-int8']['accuracy']:.2f}"])
    lines.append(md_table(["model", "vocabulary", "parameters", "FP32 package MB",
                           "INT8 package MB", "FP32 test acc %", "INT8 test acc %"], rows))
    e5 = info.get("e5")
    if e5:
        lines += ["", f"multilingual-e5-small on reviews_zh ({e5['texts']:,} training texts, max "
                      f"length 64): `trim_vocab: auto` keeps {e5['kept']:,} of "
                      f"{e5['embedding_rows']:,} embedding rows; the 4-layer tiny student "
                      f"{e5['tiny_parameters_before'] / 1e6:.1f}M -> "
                      f"{e5['tiny_parameters_after'] / 1e6:.1f}M parameters, the teacher "
                      f"{e5['teacher_parameters_before'] / 1e6:.1f}M -> "
                      f"{e5['teacher_parameters_after'] / 1e6:.1f}M"
                      + (f"; the trimmed tiny student (layers copied from e5, untrained head) "
                         f"packaged: FP32 {e5['packages_trimmed_bytes']['onnx'] / 1e6:.1f} MB, "
                         f"INT8 {e5['packages_trimmed_bytes']['onnx-int8'] / 1e6:.1f} MB"
                         if e5.get("packages_trimmed_bytes") else "")
                      + ". No accuracy: there is no trained tiny student to measure it on."]
    lines += ["", f"Trimmed vs untrimmed (dygraph FP32, same test rows): accuracy "
                  f"{100 * trim['test_before']['accuracy']:.2f} -> "
                  f"{100 * trim['test_after']['accuracy']:.2f} %, argmax agreement "
                  f"{100 * trim['argmax_agreement']:.2f} %. This bench exports both models "
                  f"whatever the change; with the default guard (max_accuracy_drop 0.005) "
                  f"this trimming would be "
                  f"{'rejected' if trim['test_before']['accuracy'] - trim['test_after']['accuracy'] > 0.005 else 'accepted'}"
                  f" (one test row is {100 / info['test_rows']:.1f} points)."]
    return "\n".join(lines)


def summary(info: Dict[str, object]) -> str:
    trim = info["models"]["trimmed"]["reference"]["trim"]
    int8 = [info["models"][n]["onnx-int8"]["package_bytes"] / 1e6 for n in ("untrimmed", "trimmed")]
    return (f"trim: MiniLM-L6 vocabulary {trim['vocab_before']:,} -> {trim['vocab_after']:,}, "
            f"INT8 package {int8[0]:.1f} -> {int8[1]:.1f} MB, accuracy "
            f"{100 * trim['test_before']['accuracy']:.2f} -> "
            f"{100 * trim['test_after']['accuracy']:.2f} %")


def main(argv=None) -> int:
    parser = base_parser(__doc__.split("\n")[0])
    parser.add_argument("--train-rows", type=int, default=0, help="rows the head is fitted on")
    parser.add_argument("--test-rows", type=int, default=0, help="test rows measured")
    parser.add_argument("--e5", action="store_true",
                        help="also count e5-small's kept vocabulary on reviews_zh")
    args = parser.parse_args(argv)
    info = bench(args.quick, args.train_rows, args.test_rows)
    if args.e5:
        info["e5"] = e5_vocabulary(export=not args.quick)
    path = write_results("trim", info, markdown(info), results_dir(args))
    print(f"wrote {path}")
    print(summary(info))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
