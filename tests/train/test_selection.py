"""`stance select` (train/selection.py): the strategies' contracts, determinism, exclusion, the
logged run, and the annotate-and-retrain loop on the two articles."""

import re
from io import StringIO
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from train import store
from train.app.select import STRATEGIES as CLI_STRATEGIES
from train.selection import STRATEGIES, entropy, margin, pick

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "experiments" / "sample.toml"
DATA = REPO / "data"
DOCUMENTS = REPO.parent / "shared" / "documents"
KEY = DATA / "sample" / "iran_articles_key.csv"
IRAN = "Iran's missile strikes"


def _corpus(count: int, seed: int = 0) -> tuple[list[str], np.ndarray]:
    """Distinct sentences in a few families of shared wording, with probabilities."""
    rng = np.random.default_rng(seed)
    families = ["the tax on fuel", "missile launches", "remote teams", "school meals"]
    texts = [f"Opinion {i} about {families[i % 4]} and item {i * 7} here" for i in range(count)]
    proba = rng.dirichlet(np.ones(3), size=count)
    return texts, proba


def test_the_command_offers_the_strategies_the_library_has():
    assert CLI_STRATEGIES == STRATEGIES


def test_uncertainty_scores():
    proba = np.array([[0.5, 0.5, 0.0], [0.9, 0.05, 0.05], [1 / 3, 1 / 3, 1 / 3]])
    assert margin(proba) == pytest.approx([0.0, 0.85, 0.0])
    assert np.argmax(entropy(proba)) == 2 and np.argmin(entropy(proba)) == 1


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_every_strategy_honours_n_without_repeats_and_is_deterministic(strategy):
    texts, proba = _corpus(300)
    first = pick(texts, proba, 40, strategy, seed=5)
    assert len(first) == 40 and len(set(first.tolist())) == 40
    assert set(first.tolist()) <= set(range(300))
    assert np.array_equal(first, pick(texts, proba, 40, strategy, seed=5))


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_asking_for_more_rows_than_there_are_gives_them_all(strategy):
    texts, proba = _corpus(12)
    assert sorted(pick(texts, proba, 50, strategy, seed=0).tolist()) == list(range(12))


def test_margin_and_entropy_pick_the_least_certain_rows():
    texts, proba = _corpus(200)
    chosen = pick(texts, proba, 20, "margin", 0)
    assert margin(proba[chosen]).max() <= np.sort(margin(proba))[19]
    chosen = pick(texts, proba, 20, "entropy", 0)
    assert entropy(proba[chosen]).min() >= np.sort(entropy(proba))[-20]


def test_random_depends_on_the_seed():
    texts, proba = _corpus(300)
    assert not np.array_equal(
        pick(texts, proba, 30, "random", 1), pick(texts, proba, 30, "random", 2)
    )


def _families_and_outliers() -> tuple[list[str], np.ndarray]:
    """Three families of 30 sentences sharing their wording, then three one-off sentences the
    model is least sure of of all."""
    families = [
        ("fuel tax hurts rural drivers", "commuters"),
        ("missile strikes escalate the war", "analysts"),
        ("remote work helps young parents", "surveys"),
    ]
    texts = [
        f"The {claim}, {source} report {i + 10}" for claim, source in families for i in range(30)
    ]
    texts += ["Zebra quartz jukebox", "Velvet origami harbour", "Cobalt lantern symphony"]
    proba = np.array([[0.6, 0.3, 0.1]] * 90 + [[0.34, 0.33, 0.33]] * 3)
    return texts, proba


def test_diverse_takes_one_typical_row_per_kind_not_the_outliers_margin_takes():
    texts, proba = _families_and_outliers()
    assert set(pick(texts, proba, 3, "margin", 0).tolist()) == {90, 91, 92}
    chosen = pick(texts, proba, 3, "diverse", 0)
    assert sorted(i // 30 for i in chosen) == [0, 1, 2]  # one per family, no outlier


def test_diverse_asks_about_the_least_certain_typical_row_of_each_kind():
    texts, proba = _families_and_outliers()
    doubtful = [5, 47, 72]  # one row in each family the model is unsure of, its plainest form
    for row in doubtful:
        texts[row] = texts[row].rsplit(" ", 1)[0]
    proba[doubtful] = [0.4, 0.35, 0.25]
    assert sorted(pick(texts, proba, 3, "diverse", 0).tolist()) == doubtful


def test_typical_takes_each_kinds_plainest_row_whatever_the_model_doubts():
    texts, proba = _families_and_outliers()
    plainest = [5, 47, 72]
    for row in plainest:
        texts[row] = texts[row].rsplit(" ", 1)[0]
    chosen = pick(texts, proba, 3, "typical", 0)
    assert sorted(chosen.tolist()) == plainest
    doubting_elsewhere = np.roll(proba, 7, axis=0)
    assert np.array_equal(chosen, pick(texts, doubting_elsewhere, 3, "typical", 0))


def test_diverse_lists_its_picks_least_certain_first():
    texts, proba = _corpus(300)
    chosen = pick(texts, proba, 30, "diverse", 2)
    assert np.all(np.diff(margin(proba[chosen])) >= 0)


@pytest.mark.parametrize("strategy", ["diverse", "typical"])
def test_clustering_rows_without_a_word_still_honours_n(strategy):
    texts = ["!!!", "?!", "...", "--", ":)", ";-)", "!?!?", "***"]  # no word for TF-IDF to keep
    proba = np.random.default_rng(0).dirichlet(np.ones(3), size=len(texts))
    chosen = pick(texts, proba, 3, strategy, 0)
    assert len(set(chosen.tolist())) == 3


def test_diverse_on_a_large_corpus_clusters_a_seeded_sample(monkeypatch):
    from train import selection

    monkeypatch.setattr(selection, "CLUSTER_SAMPLE", 100)
    texts, proba = _corpus(400)
    first = pick(texts, proba, 20, "diverse", 3)
    assert len(set(first.tolist())) == 20
    assert np.array_equal(first, pick(texts, proba, 20, "diverse", 3))
    sample = np.sort(np.random.default_rng(3).permutation(400)[:100])
    assert set(first.tolist()) <= set(sample.tolist())


def test_diverse_picks_cover_the_kinds_of_sentence_that_margin_piles_onto():
    # 40 near-paraphrases the model is least sure of, and 60 distinct sentences a little surer.
    paraphrases = [f"The strike was wrong, say {i} people" for i in range(40)]
    distinct = [
        f"{word} sentence about topic {word} number {i}"
        for i, word in enumerate(
            [
                "alpha",
                "bravo",
                "charlie",
                "delta",
                "echo",
                "foxtrot",
                "golf",
                "hotel",
                "india",
                "juliet",
            ]
            * 6
        )
    ]
    texts = paraphrases + distinct
    proba = np.array([[0.34, 0.33, 0.33]] * 40 + [[0.5, 0.3, 0.2]] * 60)
    from_margin = pick(texts, proba, 10, "margin", 0)
    from_diverse = pick(texts, proba, 10, "diverse", 0)
    assert (from_margin < 40).all()  # every margin pick is a paraphrase
    assert (from_diverse >= 40).sum() >= 5  # most diverse picks are not


def test_unknown_strategy_and_bad_n_are_refused():
    texts, proba = _corpus(10)
    from train.errors import StanceError

    with pytest.raises(StanceError, match="strategy must be one of"):
        pick(texts, proba, 5, "cleverest", 0)
    with pytest.raises(StanceError, match="at least 1"):
        pick(texts, proba, 0, "margin", 0)


# --------------------------------------------------------------------------- end to end


def _run_id(out: str) -> str:
    return out.split("run_id: ")[1].split()[0]


@pytest.fixture
def sample_run(tracking, run_cli) -> str:
    code, out, err = run_cli("train", SAMPLE, "--data-dir", DATA, "--set", "features.char=false")
    assert code == 0, err
    return _run_id(out)


def test_select_from_a_file_excludes_what_is_annotated_and_logs_a_run(
    sample_run, run_cli, tmp_path
):
    corpus = tmp_path / "corpus.csv"
    rows = [
        f"Opinion number {i} on the carbon tax and what it costs {i * 3} families"
        for i in range(60)
    ]
    rows += [rows[0].upper(), "  " + rows[1]]  # repeats of earlier texts, by case and spacing
    pd.DataFrame({"text": rows + [""], "target": "carbon tax"}).to_csv(corpus, index=False)
    first = tmp_path / "round1.csv"
    code, out, err = run_cli(
        "select", f"runs:/{sample_run}/model", corpus, "-n", 10, "-o", first, "--strategy", "margin"
    )
    assert code == 0, err
    selected = pd.read_csv(first, keep_default_na=False)
    # The columns of the sample's own data, so `stance train` reads the file back; label empty.
    assert list(selected.columns[:5]) == ["id", "sentence", "target", "stance", "confidence"]
    assert (selected["stance"] == "").all() and len(selected) == 10
    assert selected["id"].str.startswith("corpus:").all()  # line numbers, named by their corpus
    assert "rows read 63, predicted 62, rejected 1" in err  # the empty row, in a rejects file
    rejects = pd.read_csv(tmp_path / "round1.rejects.csv")
    assert list(rejects["reason"]) == ["empty text"] and list(rejects["line"]) == [64]
    assert "2 repeated texts" in out

    info = store.run_info(_run_id(out))
    assert info["tags"]["stance.selected_with"].startswith(f"runs:/{sample_run}")
    assert info["params"]["selection.strategy"] == "margin"
    assert info["metrics"]["rows_selected"] == 10 and info["metrics"]["rows_repeated"] == 2
    logged = pd.read_csv(StringIO(store.read_artifact(_run_id(out), "selection/rows.csv")))
    assert list(logged["id"]) == list(selected["id"])

    # A second round excludes the first: no id or text comes back.
    code, out, err = run_cli(
        "select",
        f"runs:/{sample_run}/model",
        corpus,
        "-n",
        10,
        "-o",
        tmp_path / "round2.csv",
        "--strategy",
        "margin",
        "--exclude",
        first,
    )
    assert code == 0, err
    second = pd.read_csv(tmp_path / "round2.csv", keep_default_na=False)
    assert not set(second["id"]) & set(selected["id"])
    assert not set(second["sentence"]) & set(selected["sentence"])
    assert "10 already annotated" in out

    code, out, err = run_cli("show", _run_id(out)[:8])
    assert code == 0, err
    assert "kind:       selection for annotation" in out
    assert re.search(r"selection\.strategy +margin", out)


def test_select_refuses_to_overwrite_annotations_and_needs_a_target(sample_run, run_cli, tmp_path):
    corpus = tmp_path / "corpus.csv"
    pd.DataFrame({"text": ["One sentence.", "Another one."]}).to_csv(corpus, index=False)
    existing = tmp_path / "annotated.csv"
    existing.write_text("id,sentence,target,stance\nx,labelled already,t,FAVOR\n")
    model = f"runs:/{sample_run}/model"
    code, _, err = run_cli("select", model, corpus, "-o", existing, "--target", "carbon tax")
    assert code == 2 and "may hold annotations" in err
    assert "labelled already" in existing.read_text()
    code, _, err = run_cli("select", model, corpus, "-o", tmp_path / "new.csv")
    assert code == 2 and "--target" in err and "no column 'target'" in err
    code, _, err = run_cli("select", model, DOCUMENTS, "--documents", "-o", tmp_path / "new.csv")
    assert code == 2 and "--target" in err


def _fill_from_key(path: Path) -> pd.DataFrame:
    """What the annotator does: the label column filled in, here from a key written for the
    two articles (data/sample/iran_articles_key.csv)."""
    key = pd.read_csv(KEY).set_index("id")["stance"]
    rows = pd.read_csv(path, keep_default_na=False)
    rows["stance"] = rows["id"].map(key)
    assert rows["stance"].notna().all(), "every selected sentence has a label in the key"
    rows.to_csv(path, index=False)
    return rows


def test_select_annotate_and_train_again_on_the_two_articles(sample_run, run_cli, tmp_path):
    if not DOCUMENTS.is_dir():
        pytest.fail(f"{DOCUMENTS} is missing: the two articles the README's walk-through reads")
    model = f"runs:/{sample_run}/model"
    annotations = tmp_path / "annotations"
    round1 = annotations / "round-1.csv"
    argv = ("select", model, DOCUMENTS, "--documents", "--target", IRAN, "-n", 20, "-o", round1)
    code, out, err = run_cli(*argv)
    assert code == 0, err
    filled = _fill_from_key(round1)
    assert len(filled) == 20 and filled["id"].is_unique
    assert filled["id"].str.contains("#s").all()  # document id and sentence number

    # Seeded: the same command gives the same file.
    again = tmp_path / "again.csv"
    code, _, err = run_cli(*argv[:-1], again)
    assert code == 0, err
    assert list(pd.read_csv(again)["id"]) == list(filled["id"])

    # Train on the sample and the folder of annotation rounds, in one experiment.
    code, out, err = run_cli(
        "train",
        SAMPLE,
        "--data-dir",
        DATA,
        "--set",
        "features.char=false",
        "--set",
        f'data.path=["sample/sentences.csv", "{annotations}"]',
    )
    assert code == 0, err
    retrained = _run_id(out)
    assert store.run_info(retrained)["metrics"]["rows_read"] == 418 + 20
    manifest = store.read_artifact(retrained, "data/manifest.json")
    assert "round-1.csv" in manifest and "sentences.csv" in manifest

    code, _, err = run_cli(
        "predict",
        f"runs:/{retrained}/model",
        DOCUMENTS,
        "--documents",
        "--target",
        IRAN,
        "-o",
        tmp_path / "documents.csv",
    )
    assert code == 0, err
    predicted = pd.read_csv(tmp_path / "documents.csv")
    assert (predicted["level"] == "document").sum() == 2

    # The next round, from the new model, leaves out what round 1 holds.
    code, out, err = run_cli(
        "select",
        f"runs:/{retrained}/model",
        DOCUMENTS,
        "--documents",
        "--target",
        IRAN,
        "-n",
        20,
        "-o",
        annotations / "round-2.csv",
        "--exclude",
        round1,
    )
    assert code == 0, err
    second = pd.read_csv(annotations / "round-2.csv")
    assert not set(second["id"]) & set(filled["id"])


def test_the_corpus_hash_covers_the_files_read_and_no_skipped_one(tmp_path):
    from train.selection import corpus_sha256

    (tmp_path / "a.txt").write_text("One.")
    before = corpus_sha256(str(tmp_path), documents=True)
    (tmp_path / "_draft.txt").write_text("Skipped.")
    (tmp_path / ".cache").mkdir()
    (tmp_path / ".cache" / "b.txt").write_text("Skipped too.")
    assert corpus_sha256(str(tmp_path), documents=True) == before
    (tmp_path / "c.txt").write_text("Read.")
    assert corpus_sha256(str(tmp_path), documents=True) != before
