"""Property tests: random bytes in a data file give rows or a UserError, never a traceback."""
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from distill.core.errors import UserError
from distill.data.examples import read_examples

_text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=300)
_tsvish = st.lists(st.lists(st.sampled_from(["text_a", "label", "text_b", "a b", "positive", "",
                                             '"', "x\ty", "\r", "é"]), max_size=4),
                   max_size=6).map(lambda rows: "\n".join("\t".join(r) for r in rows))


@pytest.mark.parametrize("suffix", [".tsv", ".jsonl", ".csv"])
@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.one_of(st.binary(max_size=300), _text.map(str.encode), _tsvish.map(str.encode)))
def test_random_data_files_never_traceback(tmp_path, suffix, data):
    path = tmp_path / f"f{suffix}"
    path.write_bytes(data)
    try:
        rows = read_examples(path)
    except UserError:
        return
    assert all(isinstance(r.text_a, str) for r in rows)
