"""Standard files: model.onnx + tokenizer.json + config.json run with ONNX Runtime and `tokenizers`
alone (the docs/edge.md recipe, no code of ours) and give the predictor's logits."""
import json
import tarfile

import numpy as np

from distill.serve.predict import load_package


def test_onnx_runtime_and_tokenizers_alone_reproduce_the_predictor(teacher_package, tmp_path):
    package, _ = teacher_package
    texts = ["good great fun w1", "bad awful w2 w3 w4", "superb", "dull boring poor w5 w6 w7"]
    expected = load_package(package, threads=1).logits(texts)

    # -- what docs/edge.md tells a user to do: only onnxruntime, tokenizers, json, numpy ------
    import onnxruntime as ort
    from tokenizers import Tokenizer

    with tarfile.open(package) as tar:
        tar.extractall(tmp_path, filter="data")
    root = tmp_path / "teacher"
    config = json.loads((root / "config.json").read_text())
    tokenizer = Tokenizer.from_file(str(root / "tokenizer.json"))
    session = ort.InferenceSession(str(root / config["model_file"]))
    encodings = tokenizer.encode_batch(texts)
    columns = {"input_ids": "ids", "token_type_ids": "type_ids", "attention_mask": "attention_mask"}
    feed = {name: np.array([getattr(e, columns[name]) for e in encodings], dtype=np.int64)
            for name in config["input_names"]}
    logits = session.run(None, feed)[0]
    labels = [config["id2label"][str(i)] for i in logits.argmax(-1)]
    # ---------------------------------------------------------------------------------------

    np.testing.assert_allclose(logits, expected, atol=1e-5)
    assert labels == [r["label"] for r in load_package(package).predict(texts)]
    assert config["task"] == "text-classification" and config["max_length"] == 24
    assert config["encoder"] == {"type": "wordpiece", "files": "encoder/",
                                 "tokenizer_file": "tokenizer.json"}
    long_text = " ".join(["great"] * 100)
    assert len(tokenizer.encode(long_text).ids) == config["max_length"]  # truncation built in
