import dataclasses
import tomllib

import pytest

from train.config import Config, parse_value
from train.errors import ConfigError

SAMPLE = "experiments/sample.toml"


def sample(*overrides):
    return Config.from_toml(SAMPLE, list(overrides))


def test_experiment_lists_only_differences_from_defaults():
    config = sample()
    assert config.name == "sample"
    assert config.data.columns["text"] == "sentence"
    assert "char" in config.features  # from DEFAULTS, not the file
    assert config.model.clf["C"] == 10.0


def test_step_overrides_read_like_sklearn():
    config = sample("clf__C=0.5", "word__ngram_range=[1,3]", "char__min_df=3")
    assert config.model.clf["C"] == 0.5
    assert config.features["word"]["ngram_range"] == (1, 3)
    assert config.features["char"]["min_df"] == 3


def test_dotted_overrides_and_bare_words():
    config = sample("data.on_bad_rows=quarantine", "seed=7", "split.method=by_target")
    assert (config.data.on_bad_rows, config.seed, config.split.method) == (
        "quarantine",
        7,
        "by_target",
    )


def test_a_feature_step_can_be_switched_off_and_on():
    config = sample("features.style=false", "target_words__ngram_range=[1,1]")
    assert "style" not in config.features
    assert config.features["target_words"]["ngram_range"] == (1, 1)
    # true, or a parameter of a step that is off, switches it on from the defaults' parameters.
    assert sample("features.char=false", "features.char=true").features["char"] == {
        "ngram_range": (2, 5),
        "min_df": 2,
    }
    assert sample("features.char=false", "char__min_df=3").features["char"] == {
        "ngram_range": (2, 5),
        "min_df": 3,
    }
    assert sample("features.target_words=true").features["target_words"] == {}


@pytest.mark.parametrize(
    "override, message",
    [
        ("data.formt=csv", "Unknown key data.formt;.*Did you mean 'format'"),
        ("clf__CC=1", "Unknown parameter 'CC'.*Did you mean 'C'"),
        ("word__ngrams=[1,2]", "Unknown parameter 'ngrams' in features.word"),
        ("wordz__min_df=2", "'wordz' is not a pipeline step"),
        ("seed=abc", "seed must be int, found 'abc'"),
        ("seed=-1", r"seed must be a whole number from 0 to 2\*\*32 - 1"),
        ("seed=4294967296", r"seed must be a whole number from 0 to 2\*\*32 - 1"),
        ("data.on_bad_rows=skip", r"data.on_bad_rows must be one of \['error', 'quarantine'\]"),
        ("model.classifier=xgboost", "model.classifier must be one of"),
        ("model.strategy=pertarget", "found 'pertarget'. Did you mean 'per_target'"),
        ("features.wrod={}", "found 'wrod'. Did you mean 'word'"),
        ("features.word=maybe", "or true / false to switch it on / off; found 'maybe'"),
        ("headline_metric=fnc_score", "does not apply to labels"),
        ("split.test_size=0.9", "split.test_size must be a fraction"),
        ("no_equals_sign", "must look like key=value"),
        ("model.label_weights={FAVOUR=2}", "names 'FAVOUR', which is not a label"),
        ("model.label_weights={NONE=-1}", "must be a positive number"),
    ],
)
def test_bad_configs_say_what_was_expected(override, message):
    with pytest.raises(ConfigError, match=message):
        sample(override)


def test_config_is_frozen():
    config = sample()
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.seed = 3
    with pytest.raises(TypeError):
        config.model.clf["C"] = 3


def test_resolved_toml_loads_back_with_its_types(tmp_path):
    config = sample(
        "word__ngram_range=[1,3]", "clf__C=0.25", "features.char=false", "target_words__min_df=2"
    )
    path = tmp_path / "resolved.toml"
    path.write_text(config.to_toml())
    assert tomllib.loads(path.read_text())["model"]["clf"]["C"] == 0.25
    assert Config.from_toml(path) == config


def test_flat_params_cover_every_leaf():
    flat = sample().flat_params()
    assert flat["model.clf.C"] == 10.0
    assert flat["features.word.ngram_range"] == [1, 2]
    assert flat["data.path"] == "sample/sentences.csv"


def test_missing_file_and_bad_toml(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        Config.from_toml(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("seed = = 3")
    with pytest.raises(ConfigError, match="not valid TOML"):
        Config.from_toml(bad)


def test_parse_value():
    assert parse_value("0.5") == 0.5
    assert parse_value("[1, 2]") == [1, 2]
    assert parse_value("true") is True
    assert parse_value("balanced") == "balanced"
