"""The loaders for ../shared/data. In CI these fail, not skip, when the data is missing."""

from train.config import Config
from train.data import load_dataset, split_dataset


def load(experiment, root):
    config = Config.from_toml(f"experiments/{experiment}.toml", ["data.on_bad_rows=quarantine"])
    data = load_dataset(config.data, root)
    return config, data, split_dataset(data.rows, config.split, config.seed)


def test_semeval2016_keeps_tweeteval_splits_and_targets(shared_data):
    config, data, splits = load("semeval2016", shared_data)
    assert data.rows_read == 2620 + 294 + 1249
    assert len(data.rows) + len(data.rejects) == data.rows_read
    assert (
        len(splits["valid"]) == 294 and len(splits["test"]) == 1249
    )  # evaluation splits untouched
    assert set(data.rows["target"]) == {
        "Atheism",
        "Climate Change is a Real Concern",
        "Feminist Movement",
        "Hillary Clinton",
        "Legalization of Abortion",
    }
    assert set(data.rows["label"]) == {"FAVOR", "AGAINST", "NONE"}
    first = data.rows.iloc[0]
    assert first["source"].endswith("abortion/train_text.txt") and first["line"] == 1
    assert len(data.files) == 30 and all(len(f.sha256) == 64 for f in data.files)


def test_fnc1_joins_bodies_and_carves_validation_by_body(shared_data):
    config, data, splits = load("fnc1", shared_data)
    assert data.rows_read == 49972 + 25413
    assert len(splits["test"]) + len(data.rejects[data.rejects["split"] == "test"]) == 25413
    assert set(data.rows["label"]) == {"agree", "disagree", "discuss", "unrelated"}
    assert not set(splits["train"]["group"]) & set(splits["valid"]["group"])  # no body in both
    row = data.rows.iloc[0]
    assert row["target"].startswith("Police find mass graves") and len(row["text"]) > 200


def test_argq_maps_stance_and_keeps_unseen_test_topics(shared_data):
    config, data, splits = load("argq", shared_data)
    assert data.rows_read == 30497
    assert set(data.rows["label"]) == {"PRO", "CON"}
    test_topics, train_topics = set(splits["test"]["target"]), set(splits["train"]["target"])
    assert len(test_topics) == 15 and not test_topics & train_topics


def test_argq_confidence_becomes_the_weight(shared_data):
    config = Config.from_toml(
        "experiments/argq.toml", ["data.use_weights=true", "data.on_bad_rows=quarantine"]
    )
    weights = load_dataset(config.data, shared_data).rows["weight"]
    assert weights.between(0, 1).all() and weights.nunique() > 10
