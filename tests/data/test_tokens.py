"""distill.data.tokens + distill.text.tags: token readers, scheme validation/repair, span round trips."""
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from distill.core.errors import DataError
from distill.data.tokens import (TokenExample, load_token_task, read_token_examples, split_off,
                                 tag_ids, write_token_examples)
from distill.text import tags as tagging


def write(path, text):
    path.write_bytes(text.encode("utf-8"))
    return path


CONLL = "中 B-LOC\r\n国 E-LOC\r\n人 O\r\n\r\n张 B-PER\r\n三 E-PER\r\n\r\n"


# ------------------------------------------------------------------------------ reading

def test_conll_reads_sentences_with_crlf_and_lines(tmp_path):
    rows = read_token_examples(write(tmp_path / "train.txt", CONLL))
    assert rows.scheme == "bioes"  # B/E only: the smallest scheme covering them
    assert [r.tokens for r in rows] == [("中", "国", "人"), ("张", "三")]
    assert [r.tags for r in rows] == [("B-LOC", "E-LOC", "O"), ("B-PER", "E-PER")]
    assert [r.line for r in rows] == [1, 5]


def test_conll_2003_columns_and_docstart(tmp_path):
    text = "-DOCSTART- -X- -X- O\n\nEU NNP B-NP B-ORG\nrejects VBZ B-VP O\n\n"
    (row,) = read_token_examples(write(tmp_path / "eng.conll", text), scheme="bio")
    assert row.tokens == ("EU", "rejects") and row.tags == ("B-ORG", "O")


def test_jsonl_and_write_round_trip(tmp_path):
    rows = [TokenExample(("a", "b"), ("B-X", "I-X")), TokenExample(("c",), ("O",))]
    for name in ("r.jsonl", "r.txt"):
        write_token_examples(tmp_path / name, rows)
        assert list(read_token_examples(tmp_path / name)) == rows


@pytest.mark.parametrize("name, text, line, field, words", [
    ("bad_tag.txt", "a O\nb X-PER\n", 2, "tags", "prefix 'X'"),
    ("malformed.txt", "a O\nb PER\n", 2, "tags", "PREFIX-TYPE"),
    ("ragged.txt", "a B-X\nb I-X extra\n", 2, None, "ragged line"),
    ("no_tag.txt", "a\nb\n", 1, "tags", "token TAG"),
    ("scheme.txt", "a O\nb O\nc I-PER\n", 3, "tags", "after 'O'"),
    ("mixed.txt", "a I-X\nb M-X\n", None, "tags", "fit none of the schemes"),
    ("len.jsonl", '{"tokens": ["a", "b"], "tags": ["O"]}\n', 1, "tags", "1 tags for 2 tokens"),
    ("missing.jsonl", '\n{"tokens": ["a"]}\n', 2, "tags", "missing field"),
    ("space.jsonl", '{"tokens": ["a b"], "tags": ["O"]}\n', 1, "tokens", "whitespace"),
    ("json.jsonl", '{"tokens": [}\n', 1, None, "malformed JSON"),
])
def test_reader_errors_name_file_line_and_field(tmp_path, name, text, line, field, words):
    with pytest.raises(DataError) as err:
        read_token_examples(write(tmp_path / name, text))
    assert err.value.path.endswith(name) and err.value.line == line and err.value.field == field
    assert words in err.value.problem


def test_bioes_entity_without_end_is_reported_at_its_line(tmp_path):
    path = write(tmp_path / "t.txt", "a B-X\nb I-X\nc O\n")
    with pytest.raises(DataError) as err:
        read_token_examples(path, scheme="bioes")
    assert err.value.line == 2 and "on_invalid='repair'" in err.value.problem


def test_repair_mode_fixes_and_counts(tmp_path):
    path = write(tmp_path / "t.txt", "a O\nb I-PER\nc I-PER\n\nd B-PER\n\n")
    rows = read_token_examples(path, scheme="bio", on_invalid="repair")
    assert rows.repaired == 1
    assert [r.tags for r in rows] == [("O", "B-PER", "I-PER"), ("B-PER",)]


def test_task_types_bind_dev_and_dev_split_is_seeded(tmp_path):
    train = write(tmp_path / "train.txt", "".join(f"w{i} B-PER\nx O\n\n" for i in range(20)))
    dev = write(tmp_path / "dev.txt", "a B-ORG\n")
    with pytest.raises(DataError) as err:
        load_token_task(train, dev, None)
    assert err.value.line == 1 and "ORG" in err.value.problem
    a = load_token_task(train, None, None, dev_fraction=0.25, split_seed=3)
    b = load_token_task(train, None, None, dev_fraction=0.25, split_seed=3)
    assert len(a.dev) == 5 and len(a.train) == 15 and a.dev == b.dev
    assert not set(r.tokens for r in a.dev) & set(r.tokens for r in a.train)
    assert a.tags == ["O", "B-PER", "I-PER"] and a.scheme == "bio"
    assert tag_ids(a.train[:1], a.tags)[0].tolist() == [1, 0]


def test_split_off_keeps_file_order():
    rows = [TokenExample((str(i),), ("O",)) for i in range(30)]
    rest, held = split_off(rows, 0.2, seed=1)
    assert len(held) == 6 and rest + held != rows
    assert [int(r.tokens[0]) for r in held] == sorted(int(r.tokens[0]) for r in held)


# ------------------------------------------------------------------------------ tag schemes

@st.composite
def span_sets(draw):
    """(length, non-overlapping spans) with types from a small set."""
    length = draw(st.integers(1, 30))
    cuts = sorted(draw(st.sets(st.integers(0, length), max_size=12)) | {0, length})
    spans = []
    for start, end in zip(cuts, cuts[1:]):
        if draw(st.booleans()):
            spans.append((start, end, draw(st.sampled_from(["PER", "LOC", "ORG"]))))
    return length, spans


@settings(max_examples=200, deadline=None)
@given(span_sets(), st.sampled_from(sorted(tagging.SCHEMES)))
def test_span_decoding_round_trips(case, scheme):
    length, spans = case
    tags = tagging.encode_spans(length, spans, scheme)
    assert tagging.first_violation(tags, scheme) is None
    assert tagging.decode_spans(tags, scheme) == spans
    assert tagging.repair(tags, scheme) == tags


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(["O", "B-A", "I-A", "M-A", "E-A", "S-A", "B-B", "E-B", "I-B"]),
                max_size=20), st.sampled_from(sorted(tagging.SCHEMES)))
def test_repair_always_yields_a_valid_sequence_with_the_decoded_spans(tags, scheme):
    fixed = tagging.repair(tags, scheme)
    assert tagging.first_violation(fixed, scheme) is None
    assert tagging.decode_spans(fixed) == tagging.decode_spans(tags)


def test_decode_reads_stray_inside_tags_as_entities():
    assert tagging.decode_spans(["O", "I-PER", "I-PER", "E-LOC", "B-ORG"]) == [
        (1, 3, "PER"), (3, 4, "LOC"), (4, 5, "ORG")]
    assert tagging.tag_vocabulary(["PER", "LOC"], "bmes") == [
        "O", "B-LOC", "M-LOC", "E-LOC", "S-LOC", "B-PER", "M-PER", "E-PER", "S-PER"]


def test_jsonl_tags_optional_for_prediction_input(tmp_path):
    path = write(tmp_path / "in.jsonl", json.dumps({"tokens": ["a", "b"]}) + "\n")
    (row,) = read_token_examples(path, require_tags=False)
    assert row.tags is None
