"""`stance new` (train/scaffold.py): a first experiment file guessed from an annotated table."""

import json
import tomllib

import mlflow
import pandas as pd
import pytest

from train.config import Config

TOPICS = ("school uniforms", "nuclear power")


def _claims(count: int) -> pd.DataFrame:
    """Distinct PRO/CON claims on two topics, worded so a word model can learn them."""
    rows = []
    for i in range(count):
        topic, pro = TOPICS[i % 2], i % 4 < 2
        cue = ("helps", "benefits", "supports") if pro else ("harms", "damages", "hurts")
        rows.append(
            {
                "claim_id": f"c{i}",
                "claim": f"Claim {i}: {topic} {cue[i % 3]} people in case number {i}.",
                "topic": topic,
                "stance": "PRO" if pro else "CON",
            }
        )
    return pd.DataFrame(rows)


def test_a_csv_of_pro_con_claims_gets_an_experiment_that_trains(
    tracking, tmp_path, run_cli, embeddings_extra
):
    data = tmp_path / "data"
    data.mkdir()
    _claims(40).to_csv(data / "claims.csv", index=False)
    code, out, err = run_cli(
        "new", tmp_path / "claims.toml", "--data", data / "claims.csv", "--data-dir", data
    )
    assert code == 0, err
    assert "text: column 'claim' (by its name)" in out
    assert "target: column 'topic' (by its name)" in out
    assert "labels: PRO (20 rows), CON (20 rows)" in out
    written = tomllib.loads((tmp_path / "claims.toml").read_text())
    assert written["data"] == {
        "format": "csv",
        "path": "claims.csv",
        "labels": ["PRO", "CON"],
        "columns": {"text": "claim", "label": "stance", "target": "topic", "id": "claim_id"},
    }
    # Only what differs from DEFAULTS: the data, and the model the learning curves chose.
    assert set(written) == {"name", "description", "data", "model", "features"}
    assert written["model"] == {"clf": {"C": 10.0, "class_weight": "balanced"}}
    assert written["features"] == {"embeddings": {"weight": 4.0, "runtime": "onnx-int8"}}
    assert "MiniLM's sentence vectors (weight 4, int8)" in out
    code, out, err = run_cli("train", tmp_path / "claims.toml", "--data-dir", data)
    assert code == 0, err
    assert "oof_macro_f1: " in out  # 40 rows: the small-data estimate
    assert len(mlflow.search_runs(search_all_experiments=True)) == 1


def test_without_the_embeddings_extra_the_model_has_no_vectors_and_says_how_to_add_them(
    tmp_path, run_cli, monkeypatch
):
    from train import scaffold

    monkeypatch.setattr(scaffold, "missing_embeddings_modules", lambda: ["onnxruntime"])
    _claims(12).to_csv(tmp_path / "claims.csv", index=False)
    code, out, err = run_cli(
        "new", tmp_path / "claims.toml", "--data", tmp_path / "claims.csv", "--data-dir", tmp_path
    )
    assert code == 0, err
    written = tomllib.loads((tmp_path / "claims.toml").read_text())
    assert "features" not in written and written["model"]["clf"]["C"] == 10.0
    assert "the embeddings extra is not installed" in out
    assert "python3 -m uv sync --frozen --all-extras" in out
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    code, out, err = run_cli("train", tmp_path / "claims.toml", "--data-dir", tmp_path)
    assert code == 0, err
    assert "oof_macro_f1: " in out


def test_a_file_name_with_a_line_break_adds_nothing_to_the_experiment(tmp_path, run_cli):
    source = tmp_path / 'x.csv\n[model]\nclassifier = "nbsvm"\n#.csv'
    _claims(12).to_csv(source, index=False)
    code, out, err = run_cli("new", tmp_path / "claims.toml", "--data", source)
    assert code == 0, err
    written = tomllib.loads((tmp_path / "claims.toml").read_text())
    assert "classifier" not in written["model"]  # the name stayed inside its comment


def test_jsonl_with_numeric_labels_and_no_target_column(tmp_path, run_cli):
    rows = [
        {"tweet": f"tweet {i} says {'yes' if i % 3 else 'no'}", "label": i % 3} for i in range(30)
    ]
    path = tmp_path / "tweets.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    code, out, err = run_cli("new", tmp_path / "t.toml", "--data", path, "--target", "the policy")
    assert code == 0, err
    config = Config.from_toml(tmp_path / "t.toml")
    assert config.labels == ("0", "1", "2") and config.data.format == "jsonl"
    assert config.data.target == "the policy"
    assert dict(config.data.columns) == {"text": "tweet"}
    assert "is outside the data root" in out  # named by its absolute path, and said so


def test_agree_disagree_pairs_read_the_headline_as_target(tmp_path, run_cli):
    frame = pd.DataFrame(
        {
            "Headline": ["Rates rise", "Rates rise", "Storm hits"],
            "Body": ["The bank raised rates.", "No change was made.", "The coast flooded."],
            "Stance": ["agree", "disagree", "agree"],
        }
    )
    frame.to_csv(tmp_path / "pairs.tsv", sep="\t", index=False)
    code, out, err = run_cli("new", tmp_path / "p.toml", "--data", tmp_path / "pairs.tsv")
    assert code == 0, err
    columns = tomllib.loads((tmp_path / "p.toml").read_text())["data"]["columns"]
    assert columns == {"text": "Body", "label": "Stance", "target": "Headline"}


@pytest.mark.parametrize(
    ("header", "rows", "problem"),
    [
        ("note,comment\n", "".join(f"n{i},c{i}\n" for i in range(12)), "found no label column"),
        ("text,label\n", "a,X\nb,X\n", "holds 1 distinct value"),
    ],
)
def test_a_table_without_a_label_set_is_one_line(tmp_path, run_cli, header, rows, problem):
    (tmp_path / "x.csv").write_text(header + rows)
    code, _, err = run_cli("new", tmp_path / "x.toml", "--data", tmp_path / "x.csv")
    assert code == 2 and problem in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x.toml").exists()


def test_an_existing_experiment_is_not_replaced_without_overwrite(tmp_path, run_cli):
    (tmp_path / "x.csv").write_text("text,label\na,P\nb,Q\n")
    (tmp_path / "x.toml").write_text("# mine\n")
    code, _, err = run_cli("new", tmp_path / "x.toml", "--data", tmp_path / "x.csv")
    assert code == 2 and "exists" in err and (tmp_path / "x.toml").read_text() == "# mine\n"
    assert run_cli("new", tmp_path / "x.toml", "--data", tmp_path / "x.csv", "--overwrite")[0] == 0


def test_guesses_never_make_an_experiment_that_cannot_train(tmp_path, run_cli):
    # Labels with spaces around them are read as training reads them; an "id" that repeats is
    # not an id; a column of ids is not the text.
    (tmp_path / "a.csv").write_text(
        "id,text, label\n"
        + "".join(
            f"doc{i % 3},Sentence {i} here., {'pro' if i % 2 else 'con'}\n" for i in range(12)
        )
    )
    code, out, err = run_cli("new", tmp_path / "a.toml", "--data", tmp_path / "a.csv")
    assert code == 0, err
    written = tomllib.loads((tmp_path / "a.toml").read_text())["data"]
    assert sorted(written["labels"]) == ["con", "pro"]
    assert "id" not in written.get("columns", {})
    (tmp_path / "key.csv").write_text("id,stance\nrow-1,FAVOR\nrow-2,AGAINST\nrow-3,NONE\n")
    code, _, err = run_cli("new", tmp_path / "k.toml", "--data", tmp_path / "key.csv")
    assert code == 2 and "found no text column" in err
    # One column named for two fields is refused.
    code, _, err = run_cli(
        "new", tmp_path / "b.toml", "--data", tmp_path / "a.csv", "--text-column", "text",
        "--label-column", "text",
    )  # fmt: skip
    assert code == 2 and "One column named for two fields" in err


def test_an_experiment_path_that_cannot_be_written_is_one_line(tmp_path, run_cli):
    (tmp_path / "x.csv").write_text("text,label\na,P\nb,Q\n")
    (tmp_path / "file").write_text("")
    code, _, err = run_cli("new", tmp_path / "file" / "x.toml", "--data", tmp_path / "x.csv")
    assert code == 2 and "Cannot write" in err and "Traceback" not in err
    (tmp_path / "folder.toml").mkdir()
    code, _, err = run_cli(
        "new", tmp_path / "folder.toml", "--data", tmp_path / "x.csv", "--overwrite"
    )
    assert code == 2 and "Cannot write" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "folder.toml", "x.csv"]


def test_one_target_for_every_row_leaves_a_topic_column_alone(tmp_path, run_cli):
    _claims(8).to_csv(tmp_path / "c.csv", index=False)
    code, out, err = run_cli(
        "new", tmp_path / "c.toml", "--data", tmp_path / "c.csv", "--target", "uniforms"
    )
    assert code == 0, err
    data = tomllib.loads((tmp_path / "c.toml").read_text())["data"]
    assert data["target"] == "uniforms" and "target" not in data["columns"]
    code, _, err = run_cli(
        "new", tmp_path / "d.toml", "--data", tmp_path / "c.csv", "--target", "uniforms",
        "--target-column", "topic",
    )  # fmt: skip
    assert code == 2 and "leave out --target-column" in err


def test_labels_that_toml_must_escape_are_written_as_read(tmp_path, run_cli):
    # A hostile table supplies data only: its labels are strings in the file, never TOML.
    labels = ['a"b', "[x]", "back\\slash", "line\nbreak", "contre é"]
    rows = [{"text": f"Sentence {i}.", "label": labels[i % len(labels)]} for i in range(10)]
    pd.DataFrame(rows).to_json(tmp_path / "h.jsonl", orient="records", lines=True)
    code, _, err = run_cli("new", tmp_path / "h.toml", "--data", tmp_path / "h.jsonl")
    assert code == 0, err
    assert sorted(Config.from_toml(tmp_path / "h.toml").labels) == sorted(labels)
