"""Packages shared by the serve tests: a toy BOW (word vocabulary) and a tiny WordPiece teacher."""
import pytest


@pytest.fixture(scope="session")
def package(toy_sentiment, tmp_path_factory):
    """``toy.tar.gz``: the toy BOW student exported to ONNX FP32 + INT8, best one packaged."""
    from distill.export.exporter import ExportConfig, export_model

    out = tmp_path_factory.mktemp("export")
    config = ExportConfig(formats=("onnx", "onnx-int8"), timed=False, threads=1, max_len=24,
                          eval_batch_size=16)
    result = export_model(toy_sentiment["model"], toy_sentiment["vocab"], out,
                          eval_examples=toy_sentiment["test"], labels=toy_sentiment["labels"],
                          config=config, package="toy", meta={"teacher": "none"})
    return result.package


@pytest.fixture(scope="session")
def teacher_package(toy_sentiment, tmp_path_factory):
    """A random 2-layer WordPiece teacher packaged as FP32 ONNX; returns (package, teacher)."""
    from distill.export.exporter import ExportConfig, export_model
    from distill.text.tokenizer import WordPieceTokenizer, write_wordpiece_vocab
    from teachers.checkpoint import random_teacher, save_teacher
    from teachers.config import ErnieConfig

    tmp = tmp_path_factory.mktemp("teacher")
    write_wordpiece_vocab([e.text_a for e in toy_sentiment["train"]], tmp / "vocab.txt")
    tokenizer = WordPieceTokenizer(tmp / "vocab.txt")
    config = ErnieConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_layers=2,
                         num_heads=2, intermediate_size=64, max_position_embeddings=64)
    teacher = random_teacher(config, tokenizer, num_labels=2, seed=3, labels=["neg", "pos"])
    teacher.max_len = 24
    save_teacher(teacher, tmp / "teacher")
    result = export_model(tmp / "teacher", out_dir=tmp / "out",
                          eval_examples=toy_sentiment["test"][:24],
                          config=ExportConfig(formats=("onnx",), timed=False, threads=1,
                                              max_disagreement=None, max_accuracy_drop=0.99),
                          package="teacher")
    return result.package, teacher
