"""A small, clearly-scoped MSRA NER probe (NOT the full task): e5-small token teacher fine-tuned on a
sample, plain vs distilled character taggers, soft-label storage (float16 vs top-k), ONNX INT8 F1.

    nice -n 10 python -m bench.msra_probe --out runs/bench-msra-probe     # resumable per step

What it measures, all on seeded samples of MSRA (``distill fetch msra_ner``): the teacher
(multilingual-e5-small + token head) is fine-tuned on ``--teacher-train`` training sentences
for one epoch; the students see ``--student-train`` training sentences (+ their tag-aligned
augmented copies when distilled); dev and test are samples of ``--dev`` / ``--test`` sentences
of the real dev/test splits. One seed. Results go to ``OUT/results.json`` after every step
(an interrupted probe re-reads finished steps). The numbers are a probe of whether the parts
work on real data, not the 3-seed table the issue asks for.
"""
import argparse
import json
import os
import random
import time
from pathlib import Path

import numpy as np


def _sample(rows, n, seed):
    if n >= len(rows):
        return list(rows)
    keep = sorted(random.Random(seed).sample(range(len(rows)), n))
    return [rows[i] for i in keep]


def main(argv=None) -> int:
    import distill  # noqa: F401  (Paddle import order)
    from distill.data.augment.augmenter import mask_token_for
    from distill.data.augment.tokens import TokenAugmentConfig, augment_token_examples
    from distill.data.fetch import load_builtin_token_task
    from distill.export.exporter import ExportConfig
    from distill.export.token_export import export_token_model
    from distill.train.trainer import TrainConfig
    from students.train_tokens import default_token_train_config, train_token_student
    from teachers.token_model import (finetune_token_teacher, load_token_teacher,
                                      token_teacher)
    from teachers.checkpoint import load_teacher
    from teachers.token_soft_labels import pack, packed_bytes, token_soft_labels, unpack

    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default="runs/bench-msra-probe")
    parser.add_argument("--teacher-train", type=int, default=1500)
    parser.add_argument("--student-train", type=int, default=2000)
    parser.add_argument("--dev", type=int, default=300)
    parser.add_argument("--test", type=int, default=1000)
    parser.add_argument("--kinds", default="cnn,lstm")
    parser.add_argument("--plain-only", action="store_true",
                        help="no teacher: plain taggers and their INT8 export only")
    parser.add_argument("--epochs", type=int, default=8, help="plain taggers' epochs")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results_path = out / "results.json"
    results = json.loads(results_path.read_text()) if results_path.exists() else {}

    def save(key, value):
        results[key] = value
        results["load_average"] = list(os.getloadavg())
        results_path.write_text(json.dumps(results, indent=2, ensure_ascii=False))
        print(key, json.dumps(value, ensure_ascii=False)[:400], flush=True)

    full = load_builtin_token_task("msra_ner")
    train = _sample(full.train, args.student_train, 0)
    task = type(full)("msra_ner-probe", train, _sample(full.dev, args.dev, 1),
                      _sample(full.test, args.test, 2), full.tags, full.scheme, full.unit)
    save("setup", {"train_sentences": len(task.train), "dev_sentences": len(task.dev),
                   "test_sentences": len(task.test), "teacher_train": args.teacher_train,
                   "note": "seeded samples of MSRA; one seed; not the full task"})

    if args.plain_only:
        for kind in args.kinds.split(","):
            _plain_and_int8(kind, task, out, args.epochs, save, results)
        return 0
    teacher_dir = out / "teacher"
    if not (teacher_dir / "teacher" / "teacher.json").exists():
        teacher = token_teacher(load_teacher("e5-small"), task.tags, seed=0)
        ft_task = type(task)(task.name, task.train[:args.teacher_train], task.dev, task.test,
                             task.tags, task.scheme, task.unit)
        start = time.time()
        result = finetune_token_teacher(teacher, ft_task, TrainConfig(
            epochs=1, batch_size=16, lr=1e-4, warmup_ratio=0.1, eval_metric="f1", seed=0,
            progress=False), teacher_dir, max_len=128)
        save("teacher", {"dev": result["dev"], "test": result["test"],
                         "train_time_s": result["train_time_s"],
                         "wall_s": round(time.time() - start, 1)})
    teacher = load_token_teacher(teacher_dir / "teacher")

    aug = augment_token_examples(task.train, TokenAugmentConfig(
        n_iter=2, p_mask=0.1, p_entity=0.3, p_ng=0.25, ngram_range=(8, 40),
        mask_token=mask_token_for(teacher.tokenizer)), task.scheme)
    rows = list(task.train) + aug
    start = time.time()
    soft32 = token_soft_labels(teacher, rows, out / "labels", batch_size=64, storage="float32",
                               progress=False)
    if "labels" not in results:
        flat = np.concatenate(soft32)
        sizes = {name: packed_bytes(pack(flat, name, 3)) for name in ("float32", "float16", "topk")}
        save("labels", {"sentences": len(rows), "augmented": len(aug), "tokens": int(len(flat)),
                        "bytes": sizes, "wall_s": round(time.time() - start, 1)})
    variants = {"float16": [unpack(pack(x, "float16")) for x in soft32],
                "topk3": [unpack(pack(x, "topk", 3)) for x in soft32]}

    for kind in args.kinds.split(","):
        config = {"cnn": {"emb_dim": 128, "filter_sizes": [3, 5], "num_filters": 128,
                          "num_layers": 2},
                  "lstm": {"emb_dim": 128, "hidden_size": 128}}[kind]
        runs = [("plain", None, None, 8)] + [(f"distilled_{name}", soft, aug, 4)
                                             for name, soft in variants.items()
                                             if kind == "cnn" or name == "float16"]
        for label, soft, augmented, epochs in runs:
            key = f"{kind}_{label}"
            if key in results:
                continue
            train_config = default_token_train_config(kind, epochs=epochs, batch_size=32,
                                                      lr=2e-3, patience=2, progress=False)
            start = time.time()
            result = train_token_student(kind, config, task, out / key, train_config,
                                         teacher_logits=soft, augmented=augmented,
                                         loss=None if soft is None else "soft_ce:0.5,hard_ce:0.5",
                                         max_len=128, progress=False)
            entry = {"dev": result["dev"], "test": result["test"],
                     "params": result["parameters"], "wall_s": round(time.time() - start, 1)}
            if label == "distilled_float16":
                export = export_token_model(out / key / "student", out / key / "export",
                                            eval_examples=task.dev, test_examples=task.test,
                                            calib_examples=task.train, tags=task.tags,
                                            scheme=task.scheme,
                                            config=ExportConfig(formats=("onnx", "onnx-int8"),
                                                                threads=1, calib_size=100))
                entry["exports"] = [{"format": r.format, "size_bytes": r.size_bytes,
                                     "dev_f1": (r.dev or {}).get("f1"),
                                     "test_f1": (r.test or {}).get("f1"),
                                     "f1_drop_points": r.details.get("f1_drop_points"),
                                     "latency_ms_b1_p50": r.latency_ms_b1["p50"],
                                     "accepted": r.accepted, "reason": r.reason}
                                    for r in export.reports]
            save(key, entry)
    return 0


def _plain_and_int8(kind, task, out, epochs, save, results):
    """A plain tagger on gold tags, then its ONNX FP32/INT8 export judged on dev entity F1."""
    from distill.export.exporter import ExportConfig
    from distill.export.token_export import export_token_model
    from students.train_tokens import default_token_train_config, train_token_student

    key = f"{kind}_plain_only"
    if key in results:
        return
    config = {"cnn": {"emb_dim": 128, "filter_sizes": [3, 5], "num_filters": 128,
                      "num_layers": 2},
              "lstm": {"emb_dim": 128, "hidden_size": 128}}[kind]
    start = time.time()
    result = train_token_student(kind, config, task, out / key, default_token_train_config(
        kind, epochs=epochs, batch_size=32, lr=2e-3, patience=2, progress=False), max_len=128,
        progress=False)
    export = export_token_model(out / key / "student", out / key / "export",
                                eval_examples=task.dev, test_examples=task.test,
                                calib_examples=task.train, tags=task.tags, scheme=task.scheme,
                                config=ExportConfig(formats=("onnx", "onnx-int8"), threads=1,
                                                    calib_size=100))
    save(key, {"dev": result["dev"], "test": result["test"], "params": result["parameters"],
               "epochs_run": result["fit"]["epochs_run"], "wall_s": round(time.time() - start, 1),
               "exports": [{"format": r.format, "size_bytes": r.size_bytes,
                            "dev_f1": (r.dev or {}).get("f1"), "test_f1": (r.test or {}).get("f1"),
                            "f1_drop_points": r.details.get("f1_drop_points"),
                            "token_argmax_agreement": r.parity["argmax_agreement"],
                            "latency_ms_b1_p50": r.latency_ms_b1["p50"],
                            "accepted": r.accepted, "reason": r.reason}
                           for r in export.reports]})


if __name__ == "__main__":
    raise SystemExit(main())
