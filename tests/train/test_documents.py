"""Sentence splitting, document ids and document-level stance (train/documents.py)."""

import pandas as pd
import pytest

from train.documents import (
    MAX_SENTENCES_IN_QUOTE,
    aggregate,
    document_sources,
    framing_weights,
    quoted_share,
    read_document,
    split_sentences,
)
from train.errors import DataError


def sentences_of(text):
    spans = split_sentences(text)
    return [text[a:b] for a, b in spans]


def test_abbreviations_and_initials_do_not_end_a_sentence():
    text = "Gen. Bagheri spoke on Jan. 14 with U.N. envoys, e.g. Mr. Ortiz. Talks resumed."
    assert sentences_of(text) == [
        "Gen. Bagheri spoke on Jan. 14 with U.N. envoys, e.g. Mr. Ortiz.",
        "Talks resumed.",
    ]


def test_blank_lines_end_a_headline_without_a_full_stop():
    text = "Strikes on the base\n\nThe launches began at midnight. Flights were diverted."
    assert sentences_of(text) == [
        "Strikes on the base",
        "The launches began at midnight.",
        "Flights were diverted.",
    ]


def test_offsets_point_into_the_original_text():
    text = "  First one.   Second one!\n\n\n   Third?  "
    spans = split_sentences(text)
    assert [text[a:b] for a, b in spans] == ["First one.", "Second one!", "Third?"]
    assert all(0 <= a < b <= len(text) for a, b in spans)


def test_a_quotation_stays_with_its_speaker():
    text = "“All is calm. Nothing was hit. We are ready,” the minister said. Markets fell."
    assert sentences_of(text) == [
        "“All is calm. Nothing was hit. We are ready,” the minister said.",
        "Markets fell.",
    ]


def test_an_apostrophe_does_not_close_a_quotation():
    text = "‘Iran’s reply was measured. The region’s calm matters,’ he said. Prices rose."
    assert sentences_of(text)[-1] == "Prices rose."
    assert len(sentences_of(text)) == 2


def test_an_unbalanced_quote_merges_a_bounded_number_of_sentences():
    text = "“" + " ".join(f"Sentence {i} ends here." for i in range(3 * MAX_SENTENCES_IN_QUOTE))
    pieces = sentences_of(text)
    assert len(pieces) >= 3
    assert "".join(p.replace(" ", "") for p in pieces) == text.replace(" ", ""), "no text is lost"


@pytest.mark.parametrize("text", ["", "   ", "\n\n\n"])
def test_empty_text_has_no_sentences(text):
    assert split_sentences(text) == []


def rows(labels, probabilities):
    frame = pd.DataFrame(probabilities, columns=["proba_FAVOR", "proba_AGAINST", "proba_NONE"])
    frame["label"] = labels
    return frame


def test_mean_rule_takes_the_highest_mean_probability():
    sentences = rows(
        ["NONE", "NONE", "AGAINST"], [[0.1, 0.4, 0.5], [0.1, 0.4, 0.5], [0.0, 0.95, 0.05]]
    )
    row = aggregate(sentences, ("FAVOR", "AGAINST", "NONE"), "mean")
    assert row["label"] == "AGAINST"
    assert row["proba_AGAINST"] == pytest.approx(0.5833333)
    assert row["share_NONE"] == pytest.approx(2 / 3)


def test_majority_rule_breaks_ties_by_mean_probability():
    sentences = rows(
        ["FAVOR", "AGAINST", "NONE", "NONE"],
        [[0.9, 0.05, 0.05], [0.1, 0.8, 0.1], [0.2, 0.3, 0.5], [0.1, 0.4, 0.5]],
    )
    labels = ("FAVOR", "AGAINST", "NONE")
    assert aggregate(sentences, labels, "majority")["label"] == "NONE"
    tied = sentences.iloc[:2]
    assert aggregate(tied, labels, "majority")["label"] == "FAVOR"  # 0.9 against 0.8 mean


def test_stance_rule_lets_outspoken_sentences_outweigh_neutral_reporting():
    labels = ("FAVOR", "AGAINST", "NONE")
    # Two sentences argue FAVOR, one leans AGAINST a little, three report: the mean says
    # NONE (0.48), and the stance rule finds the argument.
    sentences = rows(
        ["FAVOR", "FAVOR", "NONE", "NONE", "NONE", "NONE"],
        [
            [0.8, 0.1, 0.1],
            [0.7, 0.1, 0.2],
            [0.1, 0.4, 0.5],
            [0.1, 0.2, 0.7],
            [0.1, 0.1, 0.8],
            [0.3, 0.1, 0.6],
        ],
    )
    assert aggregate(sentences, labels, "mean")["label"] == "NONE"
    assert aggregate(sentences, labels, "stance", presence=0.4)["label"] == "FAVOR"
    # Below the presence threshold the document takes no side at all.
    assert aggregate(sentences, labels, "stance", presence=0.6)["label"] == "NONE"
    # Without a NONE label the rule is the mean.
    pro_con = pd.DataFrame(
        {"proba_PRO": [0.6, 0.3], "proba_CON": [0.4, 0.7], "label": ["PRO", "CON"]}
    )
    assert aggregate(pro_con, ("PRO", "CON"), "stance") == aggregate(
        pro_con, ("PRO", "CON"), "mean"
    )


def test_a_document_without_sentences_has_no_label():
    row = aggregate(rows([], []), ("FAVOR", "AGAINST", "NONE"), "mean")
    assert row["label"] is None
    assert row["share_FAVOR"] == 0


def test_document_ids_are_paths_without_extension_unless_two_files_would_share_one(tmp_path):
    (tmp_path / "2024").mkdir()
    for name in ("2024/strikes.txt", "notes.txt", "notes.md", ".hidden.txt", "image.png"):
        (tmp_path / name).write_text("x")
    ids = [doc_id for doc_id, _ in document_sources(tmp_path)]
    assert ids == ["2024/strikes", "notes.md", "notes.txt"]


def test_document_sources_name_what_they_expected(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        document_sources(tmp_path / "missing")
    (tmp_path / "image.png").write_text("x")
    with pytest.raises(DataError, match="holds no .txt or .md files"):
        document_sources(tmp_path)
    assert document_sources("-") == [("stdin", None)]


def test_read_document_drops_a_byte_order_mark_and_reports_bad_bytes(tmp_path):
    good, bad = tmp_path / "good.txt", tmp_path / "bad.txt"
    good.write_bytes("\ufeffStrikes.".encode("utf-8"))
    bad.write_bytes(b"ok \xff here")
    assert read_document(good) == ("Strikes.", None)
    text, reason = read_document(bad)
    assert text == "" and "byte 3 is not valid UTF-8" in reason


ARTICLE = (
    "The missile strikes were a reckless gamble.\n\n"
    "“These strikes were a proportionate and lawful answer,” the minister said.\n\n"
    "Supporters said the missiles had restored deterrence overnight.\n\n"
    "‘We acted in self-defence, and the region should thank us.’\n\n"
    "Nothing about them made Iran’s neighbours safer."
)


def test_framing_rule_weighs_down_the_quoted_side_of_an_article():
    texts = sentences_of(ARTICLE)
    assert len(texts) == 5
    # As a sentence model reads them: the three quoted or reported sentences argue FAVOR, the
    # author's own two AGAINST, less loudly.
    sentences = rows(
        ["AGAINST", "FAVOR", "FAVOR", "FAVOR", "AGAINST"],
        [[0.2, 0.6, 0.2], [0.9, 0.05, 0.05], [0.8, 0.1, 0.1], [0.9, 0.05, 0.05], [0.2, 0.6, 0.2]],
    ).assign(text=texts)
    labels = ("FAVOR", "AGAINST", "NONE")
    assert aggregate(sentences, labels, "mean")["label"] == "FAVOR"  # outvoted by the quotes
    framed = aggregate(sentences, labels, "framing")
    assert framed["label"] == "AGAINST"
    assert framed["proba_AGAINST"] == pytest.approx(0.6)  # only the author's sentences count
    assert framed["margin"] == pytest.approx(0.4)
    # Quoted at half weight and the edges at their plain weight, the quotes win again.
    half = aggregate(sentences, labels, "framing", quoted_weight=1.0, edge_weight=1.0)
    assert half["label"] == "FAVOR"


def test_quotes_and_reported_speech_are_told_from_apostrophes():
    assert framing_weights(
        [
            "Iran’s neighbours’ fears grew.",
            "“All is well!” he tweeted.",
            "According to officials, nobody was hurt.",
            "The base was hit twice.",
        ],
        quoted_weight=0.5,
        edge_weight=1.0,
    ).tolist() == [1.0, 0.5, 0.5, 1.0]
    assert quoted_share("Iran’s neighbours’ fears grew.") == 0.0
    # A mark that opens and never closes quotes nothing; the author's own nouns are not speech.
    assert quoted_share("Back in the ‘90s the region was calm. The strikes were right.") == 0.0
    assert framing_weights(
        ["The United States must answer.", "The so-called retaliation failed.", "I say no."],
        quoted_weight=0.0,
        edge_weight=1.0,
    ).tolist() == [1.0, 1.0, 1.0]
    # A document of quotes only still has a label: its quotes are all there is.
    assert framing_weights(["“One.”", "“Two.”"], quoted_weight=0.0).tolist() == [1.0, 1.0]


def test_the_margin_says_how_far_the_label_stands_above_the_next():
    labels = ("FAVOR", "AGAINST", "NONE")
    sentences = rows(
        ["FAVOR", "FAVOR", "NONE"], [[0.5, 0.1, 0.4], [0.5, 0.1, 0.4], [0.0, 0.1, 0.9]]
    )
    assert aggregate(sentences, labels, "mean")["label"] == "NONE"
    # Mean probabilities: FAVOR 1/3, AGAINST 0.1, NONE 1.7/3.
    assert aggregate(sentences, labels, "mean")["margin"] == pytest.approx(1.7 / 3 - 1 / 3)
    # The majority picks FAVOR, which the mean probabilities put below NONE: a negative margin.
    assert aggregate(sentences, labels, "majority")["margin"] == pytest.approx(1 / 3 - 1.7 / 3)


def test_names_starting_with_a_dot_or_underscore_are_skipped_at_any_depth(tmp_path):
    (tmp_path / "kept").mkdir()
    (tmp_path / "_drafts").mkdir()
    (tmp_path / ".git").mkdir()
    for name in ("kept/a.txt", "b.txt", "_c.txt", "_drafts/d.txt", ".git/e.txt", "_SUCCESS"):
        (tmp_path / name).write_text("x")
    assert [doc_id for doc_id, _ in document_sources(tmp_path)] == ["b", "kept/a"]
