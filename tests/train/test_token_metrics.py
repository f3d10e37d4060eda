"""distill.train.metrics.entity_metrics: seqeval strict entity scores for BIO/BIOES/BMES."""
import pytest

from distill.train.metrics import entity_metrics


def test_strict_scores_per_type():
    gold = [["B-PER", "M-PER", "E-PER", "O", "S-LOC"], ["B-ORG", "E-ORG"]]
    pred = [["B-PER", "M-PER", "E-PER", "O", "S-ORG"], ["B-ORG", "E-ORG"]]
    m = entity_metrics(gold, pred, "bmes")
    assert m["precision"] == pytest.approx(2 / 3) and m["recall"] == pytest.approx(2 / 3)
    assert m["per_type"]["PER"]["f1"] == 1.0 and m["per_type"]["LOC"]["recall"] == 0.0
    assert m["token_accuracy"] == pytest.approx(6 / 7)


def test_strict_mode_rejects_a_scheme_breaking_prediction():
    # conlleval would read "I-PER I-PER" as an entity; strict BIO does not
    m = entity_metrics([["O", "B-PER", "I-PER"]], [["O", "I-PER", "I-PER"]], "bio")
    assert m["f1"] == 0.0 and m["token_accuracy"] == pytest.approx(2 / 3)


def test_lengths_must_match():
    with pytest.raises(ValueError, match="sentence 0"):
        entity_metrics([["O"]], [["O", "O"]], "bio")
