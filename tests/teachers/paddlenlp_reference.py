"""Reference side of the parity tests: runs in the PaddleNLP venv (``make test-parity`` builds it),
never in the project's. Standalone on purpose: it imports nothing from this repository.

    .venv-parity/bin/python tests/teachers/paddlenlp_reference.py JOBS.json

JOBS.json (written by ``test_parity.py``)::

    {"models": [{"name", "family": "ernie|ernie_gram|ernie_m|hf_ernie", "config": {...},
                 "num_labels", "seed", "dir", "safetensors": bool, "batch": "x.npz"}],
     "tokenizers": [{"kind": "ernie|ernie-tiny|ernie-m", "dir", "texts": "t.json", "out"}],
     "roundtrip": [{"dir", "texts": "t.json", "max_len", "out"}]}

models: PaddleNLP's (or transformers') classifier is built from the configuration with seeded
random weights, saved with ``save_pretrained`` into ``dir``, loaded back with
``from_pretrained`` and run on the batch; ``dir/reference.npz`` gets sequence_output,
pooled_output and logits. tokenizers: PaddleNLP's tokenizer class reads the files in ``dir`` and
encodes the texts alone and as pairs (no truncation, then max_length 24); ids go to ``out``.
roundtrip: ``AutoTokenizer``/``AutoModelForSequenceClassification.from_pretrained(dir)`` encode
and classify the texts; logits go to ``out``.
"""
import json
import sys
import zlib  # noqa: F401  (before paddle: Paddle's bundled zlib otherwise breaks later imports)

import numpy as np

import paddle  # noqa: E402

PADDLE_CLASSES = {
    "ernie": ("ErnieConfig", "ErnieForSequenceClassification", "ernie"),
    "ernie_gram": ("ErnieGramConfig", "ErnieGramForSequenceClassification", "ernie_gram"),
    "ernie_m": ("ErnieMConfig", "ErnieMForSequenceClassification", "ernie_m"),
}
TOKENIZERS = {"ernie": "ErnieTokenizer", "ernie-tiny": "ErnieTinyTokenizer",
              "ernie-m": "ErnieMTokenizer"}


def paddle_model(job):
    import paddlenlp.transformers as T

    config_cls, model_cls, base = PADDLE_CLASSES[job["family"]]
    paddle.seed(job["seed"])
    model = getattr(T, model_cls)(getattr(T, config_cls)(num_labels=job["num_labels"],
                                                         **job["config"]))
    model.save_pretrained(job["dir"], safe_serialization=bool(job.get("safetensors")))
    model = T.AutoModelForSequenceClassification.from_pretrained(job["dir"])
    model.eval()
    batch = np.load(job["batch"])
    feed = {"input_ids": paddle.to_tensor(batch["input_ids"]),
            "attention_mask": paddle.to_tensor(batch["attention_mask"].astype("float32"))}
    if job["family"] != "ernie_m":
        feed["token_type_ids"] = paddle.to_tensor(batch["token_type_ids"])
    with paddle.no_grad():
        seq, pooled = getattr(model, base)(**feed)[:2]
        logits = model(**feed)
    logits = logits[0] if isinstance(logits, (tuple, list)) else logits
    np.savez(f"{job['dir']}/reference.npz", sequence_output=seq.numpy(),
             pooled_output=pooled.numpy(), logits=logits.numpy())


def hf_model(job):
    import torch
    from transformers import ErnieConfig, ErnieForSequenceClassification

    torch.manual_seed(job["seed"])
    model = ErnieForSequenceClassification(ErnieConfig(num_labels=job["num_labels"],
                                                       **job["config"]))
    model.save_pretrained(job["dir"], safe_serialization=True)
    model = ErnieForSequenceClassification.from_pretrained(job["dir"])
    model.eval()
    batch = np.load(job["batch"])
    feed = {k: torch.from_numpy(batch[k]) for k in ("input_ids", "token_type_ids",
                                                    "attention_mask")}
    with torch.no_grad():
        enc = model.ernie(**feed)
        logits = model(**feed).logits
    np.savez(f"{job['dir']}/reference.npz", sequence_output=enc.last_hidden_state.numpy(),
             pooled_output=enc.pooler_output.numpy(), logits=logits.numpy())


def tokenize(job):
    import paddlenlp.transformers as T

    tok = getattr(T, TOKENIZERS[job["kind"]]).from_pretrained(job["dir"])
    texts = json.load(open(job["texts"], encoding="utf-8"))
    half = len(texts) // 2
    out = {"single": [tok(t)["input_ids"] for t in texts],
           "pair": [tok(a, text_pair=b)["input_ids"] for a, b in zip(texts[:half], texts[half:])],
           "pair_types": [tok(a, text_pair=b).get("token_type_ids")
                          for a, b in zip(texts[:half], texts[half:])],
           "pair24": [tok(a, text_pair=b, max_length=24, truncation=True)["input_ids"]
                      for a, b in zip(texts[:half], texts[half:])],
           "tokens": [tok.tokenize(t) for t in texts]}
    json.dump(out, open(job["out"], "w", encoding="utf-8"), ensure_ascii=False)


def roundtrip(job):
    from paddlenlp.transformers import AutoModelForSequenceClassification, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(job["dir"])
    model = AutoModelForSequenceClassification.from_pretrained(job["dir"])
    model.eval()
    texts = json.load(open(job["texts"], encoding="utf-8"))
    enc = tok(texts, max_length=job["max_len"], truncation=True, padding=True,
              return_attention_mask=True)
    feed = {"input_ids": paddle.to_tensor(enc["input_ids"]),
            "attention_mask": paddle.to_tensor(np.asarray(enc["attention_mask"], "float32"))}
    if "token_type_ids" in enc and model.base_model_prefix != "ernie_m":
        feed["token_type_ids"] = paddle.to_tensor(enc["token_type_ids"])
    with paddle.no_grad():
        logits = model(**feed)
    logits = logits[0] if isinstance(logits, (tuple, list)) else logits
    np.savez(job["out"], logits=logits.numpy(), input_ids=np.asarray(enc["input_ids"]),
             classes=np.array([type(model).__name__, type(tok).__name__]))


def _error_path(job):
    return job.get("out") or f"{job['dir']}/reference"


def main(path):
    """Runs every job; a failing one leaves ``<out>.error`` with its traceback (the test shows
    it) instead of stopping the others."""
    import traceback

    jobs = json.load(open(path, encoding="utf-8"))
    runs = [(hf_model if job["family"] == "hf_ernie" else paddle_model, job)
            for job in jobs.get("models", [])]
    runs += [(tokenize, job) for job in jobs.get("tokenizers", [])]
    runs += [(roundtrip, job) for job in jobs.get("roundtrip", [])]
    for fn, job in runs:
        try:
            fn(job)
        except Exception:  # noqa: BLE001
            with open(_error_path(job) + ".error", "w", encoding="utf-8") as fh:
                fh.write(traceback.format_exc())
    print("reference done", flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
