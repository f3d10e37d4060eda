"""distill.data.examples: the three readers, every kind of bad input, skip mode, labels, round trips."""
import json
import logging
import re

import numpy as np
import pytest

from distill.data.examples import Example, Examples, label_ids, load_task, read_examples, write_examples
from distill.core.errors import DataError


def write(path, text, encoding="utf-8"):
    path.write_bytes(text.encode(encoding) if isinstance(text, str) else text)
    return path


# ------------------------------------------------------------------------------ good input

def test_tsv_keeps_raw_quotes_and_line_numbers(tmp_path):
    path = write(tmp_path / "train.tsv",
                 'text_a\tlabel\nhe said "great"\tpositive\r\n\n"bad\' one\tnegative\n')
    rows = read_examples(path)
    assert [r.text_a for r in rows] == ['he said "great"', "\"bad' one"]
    assert [r.label for r in rows] == ["positive", "negative"]
    assert [r.line for r in rows] == [2, 4]  # the blank line 3 is skipped, numbering is not


def test_tsv_pairs_and_source_id(tmp_path):
    path = write(tmp_path / "aug.tsv", "text_a\ttext_b\tsource_id\nq one\tanswer\t7\n")
    (row,) = read_examples(path, require_label=False)
    assert row == Example("q one", "answer", None, 7)


def test_jsonl_with_column_mapping(tmp_path):
    lines = [{"review": "好评，很喜欢", "sentiment": "positive", "extra": 1},
             {"review": "太差了", "sentiment": "negative"}]
    path = write(tmp_path / "d.jsonl", "\n".join(json.dumps(o, ensure_ascii=False) for o in lines))
    rows = read_examples(path, columns={"text_a": "review", "label": "sentiment"})
    assert [(r.text_a, r.label, r.line) for r in rows] == [
        ("好评，很喜欢", "positive", 1), ("太差了", "negative", 2)]


def test_csv_quoted_multiline_field_reports_start_line(tmp_path):
    path = write(tmp_path / "d.csv",
                 'sentiment,review\npos,"fine, really\nfine"\nneg,""\n')
    with pytest.raises(DataError) as err:
        read_examples(path, columns={"text_a": "review", "label": "sentiment"})
    assert "d.csv, line 4, field 'review': empty text" in str(err.value)
    rows = read_examples(path, columns={"text_a": "review", "label": "sentiment"}, on_error="skip")
    assert rows == [Example("fine, really\nfine", label="pos")] and rows[0].line == 2


def test_unlabelled_file_and_bom(tmp_path):
    path = write(tmp_path / "p.tsv", "\ufefftext_a\nfirst\nsecond\n")
    rows = read_examples(path, require_label=False)
    assert [r.text_a for r in rows] == ["first", "second"] and rows[0].label is None
    with pytest.raises(DataError, match=r"line 1, field 'label': the header has no column"):
        read_examples(path)


# ------------------------------------------------------------------------------- bad input

BAD = [
    ("wrong column count", "t.tsv", "text_a\tlabel\ngood\tpositive\nonly text\n",
     None, r"t\.tsv, line 3, field 'label': expected 2 tab-separated columns"),
    ("too many columns", "t.tsv", "text_a\tlabel\na\tpositive\tx\n",
     None, r"t\.tsv, line 2: expected 2 tab-separated columns .* found 3"),
    ("empty text", "t.tsv", "text_a\tlabel\n  \tpositive\n",
     None, r"t\.tsv, line 2, field 'text_a': empty text"),
    ("empty label", "t.tsv", "text_a\tlabel\nsome text\t\n",
     None, r"t\.tsv, line 2, field 'label': empty label"),
    ("unseen label", "dev.tsv", "text_a\tlabel\nok\tpositive\nhm\tneutral\n",
     ["positive", "negative"], r"dev\.tsv, line 3, field 'label': label 'neutral' does not occur"),
    ("broken encoding", "t.tsv", "text_a\tlabel\n".encode() + "好\tpositive\n".encode("gbk"),
     None, r"t\.tsv, line 2: not valid UTF-8 \(byte 0xba at column 1\)"),
    ("malformed json", "t.jsonl", '{"text_a": "a", "label": "x"}\n{"text_a": "b", "label": }\n',
     None, r"t\.jsonl, line 2: malformed JSON"),
    ("json not an object", "t.jsonl", '["a", "x"]\n', None, r"line 1: expected a JSON object"),
    ("json missing field", "t.jsonl", '{"text_a": "a"}\n',
     None, r"t\.jsonl, line 1, field 'label': missing field"),
    ("json wrong type", "t.jsonl", '{"text_a": 5, "label": "x"}\n',
     None, r"line 1, field 'text_a': expected a string, found int"),
    ("bad source_id", "t.tsv", "text_a\tsource_id\na\tfirst\n",
     None, r"line 2, field 'source_id': expected an integer"),
    ("csv missing column", "t.csv", "text_a,label\n\"a, b\"\n",
     None, r"t\.csv, line 2, field 'label': expected 2 comma-separated columns"),
]


@pytest.mark.parametrize("kind,name,content,labels,message", BAD, ids=[b[0] for b in BAD])
def test_bad_input_names_file_line_field(tmp_path, kind, name, content, labels, message):
    path = write(tmp_path / name, content)
    require = kind != "bad source_id"
    with pytest.raises(DataError, match=message):
        read_examples(path, labels=labels, require_label=require)


def test_missing_file_and_unknown_format(tmp_path):
    with pytest.raises(DataError, match=r"nope\.tsv: file not found"):
        read_examples(tmp_path / "nope.tsv")
    with pytest.raises(DataError, match=r"unknown format suffix '\.txt'"):
        read_examples(write(tmp_path / "x.txt", "text_a\tlabel\n"))
    with pytest.raises(DataError, match="unknown format 'xml'"):
        read_examples(tmp_path / "x.txt", fmt="xml")
    assert read_examples(tmp_path / "x.txt", fmt="tsv") == []


def test_skip_mode_counts_and_warns(tmp_path, caplog):
    content = ("text_a\tlabel\n"
               "fine\tpositive\n"          # 2 ok
               "no label column\n"         # 3 bad: columns
               "\tnegative\n").encode()   # 4 bad: empty text
    content += "坏\tnegative\n".encode("gbk") + b"also fine\tnegative\n"  # 5 bad bytes, 6 ok
    path = write(tmp_path / "t.tsv", content)
    with caplog.at_level(logging.WARNING, logger="distill.data.examples"):
        rows = read_examples(path, on_error="skip")
    assert isinstance(rows, Examples)
    assert [r.line for r in rows] == [2, 6]
    assert rows.skipped == 3
    assert [re.match(r".*t\.tsv, line (\d+)", p).group(1) for p in rows.problems] == ["3", "4", "5"]
    assert "skipped 3 bad row(s)" in caplog.text
    clean = read_examples(write(tmp_path / "c.tsv", "text_a\tlabel\na\tb\n"), on_error="skip")
    assert clean.skipped == 0


def test_header_errors_raise_even_in_skip_mode(tmp_path):
    path = write(tmp_path / "t.tsv", "review\tlabel\nx\ty\n")
    with pytest.raises(DataError, match=r"line 1, field 'text_a'.*pass columns="):
        read_examples(path, on_error="skip")


# ------------------------------------------------------------------------- labels and tasks

def test_label_vocabulary_is_first_appearance_and_binds_dev(tmp_path):
    write(tmp_path / "train.tsv", "text_a\tlabel\na\tzeta\nb\talpha\nc\tzeta\nd\tmid\n")
    write(tmp_path / "dev.tsv", "text_a\tlabel\ne\tmid\nf\tzeta\n")
    write(tmp_path / "test.tsv", "text_a\tlabel\ng\tunknown\n")
    with pytest.raises(DataError, match=r"test\.tsv, line 2, field 'label'"):
        load_task(tmp_path / "train.tsv", tmp_path / "dev.tsv", tmp_path / "test.tsv")
    task = load_task(tmp_path / "train.tsv", tmp_path / "dev.tsv", None, name="toy")
    assert task.labels == ["zeta", "alpha", "mid"] and task.name == "toy" and task.test == []
    ids = label_ids(task.dev, task.labels)
    assert ids.dtype == np.int64 and ids.tolist() == [2, 0]
    with pytest.raises(DataError, match="label 'x' is not one of"):
        label_ids([Example("t", label="x", line=4)], task.labels)


def test_single_label_train_is_refused(tmp_path):
    write(tmp_path / "train.tsv", "text_a\tlabel\na\tyes\nb\tyes\n")
    with pytest.raises(DataError, match="at least 2 labels"):
        load_task(tmp_path / "train.tsv", None, None)


# ------------------------------------------------------------------------------ round trips

ROWS = [Example("plain text", label="positive"),
        Example('quotes " and \' and , commas', "second ; part", "negative", 3),
        Example("中文 評論 😀", label="positive", source_id=0)]
MESSY = [Example("tab\there", label="a"), Example("line\nbreak\r\nand \u2028 sep", label="b"),
         Example("lone\rreturn", label="a"), Example("  padded  ", label="b")]


@pytest.mark.parametrize("suffix", [".tsv", ".jsonl", ".csv"])
def test_round_trip(tmp_path, suffix):
    path = tmp_path / f"out{suffix}"
    write_examples(path, ROWS)
    assert read_examples(path) == ROWS
    unlabelled = [Example("x"), Example("y", source_id=1)]
    write_examples(path, unlabelled)
    assert read_examples(path, require_label=False) == unlabelled


@pytest.mark.parametrize("suffix", [".jsonl", ".csv"])
def test_round_trip_of_tabs_and_line_breaks(tmp_path, suffix):
    path = tmp_path / f"out{suffix}"
    write_examples(path, MESSY)
    assert read_examples(path) == MESSY


def test_tsv_refuses_tabs_and_newlines_and_writes_nothing(tmp_path):
    path = tmp_path / "out.tsv"
    with pytest.raises(DataError, match=r"out\.tsv, line 2, field 'text_a': a TSV text cannot"):
        write_examples(path, MESSY)
    assert not path.exists() and list(tmp_path.iterdir()) == []
