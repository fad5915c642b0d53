import json
import tomllib
from pathlib import Path

import pandas as pd
import pytest

from train.config import Config
from train.data import load_dataset, near_duplicate_targets, split_dataset
from train.errors import DataError

REPO = Path(__file__).resolve().parents[2]
HEADER = "id,text,target,label\n"
GOOD = [
    "a1,The tax is fair,carbon tax,FAVOR",
    "a2,The tax is cruel,carbon tax,AGAINST",
    "a3,The tax starts in May,carbon tax,NONE",
]

# Each bad row kind: the line to add, and the reason it must produce.
BAD_ROWS = {
    "empty text": ('a9,"   ",carbon tax,FAVOR', "empty text"),
    "missing label": ("a9,Fine idea,carbon tax,", "missing label"),
    "unknown label": (
        "a9,Fine idea,carbon tax,FAVOUR",
        "unknown label 'FAVOUR'; expected one of ['AGAINST', 'FAVOR', 'NONE']",
    ),
    "label in another case": (
        "a9,Fine idea,carbon tax,favor",
        "unknown label 'favor'; expected one of ['AGAINST', 'FAVOR', 'NONE'] (labels are "
        'case-sensitive; map it in [data.label_map]: "favor" = "FAVOR")',
    ),
    "missing target": ("a9,Fine idea,,FAVOR", "missing target"),
    "duplicate id": (
        "a1,Another sentence,carbon tax,NONE",
        "duplicate id 'a1' (first seen at line 2)",
    ),
    "malformed line": ("a9,Fine idea,carbon tax", "malformed line: expected 4 fields, found 3"),
    "unclosed quote": (
        'a9,"Fine idea,carbon tax,FAVOR',
        "malformed line: a quoted field opened here is never closed",
    ),
    "text over the CSV field limit": (
        "a9," + "word " * 30_000 + ",carbon tax,FAVOR",
        "malformed line: a field is longer than 131,072 characters",
    ),
}


def data_config(path, **changes):
    layers = {
        "data": {
            "format": path.suffix.lstrip("."),
            "path": path.name,
            "labels": ["FAVOR", "AGAINST", "NONE"],
            **changes,
        }
    }
    return Config.from_layers(layers).data


def write(tmp_path, lines, name="rows.csv", header=HEADER):
    path = tmp_path / name
    path.write_bytes(
        (header + "\n".join(lines) + "\n").encode("utf-8") if isinstance(lines[0], str) else lines
    )
    return path


@pytest.mark.parametrize("kind", sorted(BAD_ROWS))
def test_bad_row_stops_with_file_line_and_reason(tmp_path, kind):
    line, reason = BAD_ROWS[kind]
    path = write(tmp_path, GOOD + [line])
    with pytest.raises(DataError) as error:
        load_dataset(data_config(path), tmp_path)
    message = str(error.value)
    assert f"{path}, line 5: {reason}" in message
    assert 'on_bad_rows = "quarantine"' in message


@pytest.mark.parametrize("kind", sorted(BAD_ROWS))
def test_bad_row_is_quarantined_with_its_reason(tmp_path, kind):
    line, reason = BAD_ROWS[kind]
    path = write(tmp_path, GOOD + [line])
    data = load_dataset(data_config(path, on_bad_rows="quarantine"), tmp_path)
    assert len(data.rows) == 3 and len(data.rejects) == 1
    assert len(data.rows) + len(data.rejects) == data.rows_read == 4
    reject = data.rejects.iloc[0]
    assert reject["line"] == 5 and reason in reject["reason"] and reject["source"] == str(path)


def test_conflicting_labels_reject_every_row_of_the_group(tmp_path):
    path = write(tmp_path, GOOD + ["a8,The  tax is fair,carbon tax,AGAINST"])
    with pytest.raises(
        DataError,
        match=r"line 5: conflicting labels for the same text and target: FAVOR \(line 2\), "
        r"AGAINST \(line 5\)",
    ):
        load_dataset(data_config(path), tmp_path)
    data = load_dataset(data_config(path, on_bad_rows="quarantine"), tmp_path)
    assert sorted(data.rejects["line"]) == [2, 5]
    assert len(data.rows) + len(data.rejects) == data.rows_read


def test_undecodable_bytes_are_traced_to_their_line(tmp_path):
    raw = (HEADER + "\n".join(GOOD) + "\n").encode() + b"a9,caf\xe9 au lait,carbon tax,NONE\n"
    path = tmp_path / "rows.csv"
    path.write_bytes(raw)
    with pytest.raises(DataError, match=r"line 5: undecodable bytes"):
        load_dataset(data_config(path), tmp_path)
    data = load_dataset(data_config(path, on_bad_rows="quarantine"), tmp_path)
    assert data.rejects["line"].tolist() == [5] and len(data.rows) == 3


def test_missing_column_is_an_error_even_in_quarantine(tmp_path):
    path = write(tmp_path, ["a1,The tax is fair,carbon tax"], header="id,sentence,target\n")
    with pytest.raises(
        DataError,
        match=r"missing column 'text' \(the text column\). Found columns \['id', 'sentence', "
        r"'target'\]",
    ):
        load_dataset(data_config(path, on_bad_rows="quarantine"), tmp_path)


def test_a_semicolon_separated_file_is_named_as_such(tmp_path):
    path = tmp_path / "rows.csv"
    path.write_text("id;text;target;label\na1;The tax is fair;carbon tax;FAVOR\n", encoding="utf-8")
    with pytest.raises(
        DataError,
        match=r"Found columns \['id;text;target;label'\]. The file looks separated by semicolons, "
        r"but was read as CSV",
    ):
        load_dataset(data_config(path), tmp_path)


def test_column_mapping_and_constant_target(tmp_path):
    path = write(tmp_path, ["s1,We back the tax,FAVOR"], header="key,sentence,stance\n")
    config = data_config(
        path, columns={"text": "sentence", "label": "stance", "id": "key"}, target="carbon tax"
    )
    rows = load_dataset(config, tmp_path).rows
    assert rows.iloc[0][["id", "text", "target", "label"]].tolist() == [
        "s1",
        "We back the tax",
        "carbon tax",
        "FAVOR",
    ]


def test_quoted_multiline_record_keeps_its_starting_line(tmp_path):
    path = write(tmp_path, GOOD + ['a4,"Two\nlines",carbon tax,NONE', "a5,,carbon tax,NONE"])
    data = load_dataset(data_config(path, on_bad_rows="quarantine"), tmp_path)
    assert data.rows.iloc[-1]["line"] == 5
    assert data.rejects["line"].tolist() == [7]


def test_label_map_and_weights(tmp_path):
    path = write(
        tmp_path,
        ["a1,Yes,carbon tax,pro,0.5", "a2,No,carbon tax,con,x"],
        header="id,text,target,label,weight\n",
    )
    config = data_config(
        path,
        label_map={"pro": "FAVOR", "con": "AGAINST"},
        use_weights=True,
        on_bad_rows="quarantine",
    )
    data = load_dataset(config, tmp_path)
    assert data.rows["label"].tolist() == ["FAVOR"] and data.rows["weight"].tolist() == [0.5]
    assert "weight 'x' is not a number" in data.rejects.iloc[0]["reason"]


def test_targets_spelt_two_ways_are_named_with_the_line_that_merges_them(tmp_path):
    lines = GOOD + [
        "a4,The tax is fine,Carbon  Tax,FAVOR",
        'a5,Fine,"Say ""no"" ",NONE',
        'a6,Bad,"say ""NO""",AGAINST',
    ]
    rows = load_dataset(data_config(write(tmp_path, lines)), tmp_path).rows
    warnings = near_duplicate_targets(rows["target"])
    assert warnings == [
        "targets that differ only in case or spacing are kept apart: 'carbon tax' (3 rows), "
        "'Carbon  Tax' (1 rows). "
        'If they are one target, add to the experiment: [data.target_names] "Carbon  Tax" = '
        '"carbon tax"',
        "targets that differ only in case or spacing are kept apart: 'Say \"no\"' (1 rows), 'say "
        '"NO"\' (1 rows). '
        'If they are one target, add to the experiment: [data.target_names] "say \\"NO\\"" = "Say '
        '\\"no\\""',
    ]
    # The line it offers, added to the experiment, merges the spellings and silences the warning.
    offered = "\n".join(w.split("add to the experiment: [data.target_names] ")[1] for w in warnings)
    merge = tomllib.loads(offered)
    assert merge == {"Carbon  Tax": "carbon tax", 'say "NO"': 'Say "no"'}
    rows = load_dataset(data_config(write(tmp_path, lines), target_names=merge), tmp_path).rows
    assert rows["target"].tolist() == ["carbon tax"] * 4 + ['Say "no"'] * 2
    assert near_duplicate_targets(rows["target"]) == []


@pytest.mark.parametrize("fmt", ["tsv", "jsonl", "parquet"])
def test_other_formats_load_the_same_rows(tmp_path, fmt):
    frame = pd.DataFrame(
        [line.split(",") for line in GOOD], columns=["id", "text", "target", "label"]
    )
    path = tmp_path / f"rows.{fmt}"
    if fmt == "tsv":
        frame.to_csv(path, sep="\t", index=False)
    elif fmt == "jsonl":
        frame.to_json(path, orient="records", lines=True)
    else:
        frame.to_parquet(path)
    rows = load_dataset(data_config(path), tmp_path).rows
    assert rows[["id", "text", "target", "label"]].values.tolist() == frame.values.tolist()


def test_a_parquet_list_value_is_rejected_not_turned_into_text(tmp_path):
    # A Parquet column has one type, so a list-typed text column holds lists on every row.
    frame = pd.DataFrame(
        {
            "text": [["Fair", "tax"], ["Too", "high"], ["Fine"]],
            "target": ["carbon tax"] * 3,
            "label": ["FAVOR"] * 3,
        }
    )
    path = tmp_path / "rows.parquet"
    frame.to_parquet(path)
    with pytest.raises(DataError) as error:
        load_dataset(data_config(path, on_bad_rows="quarantine"), tmp_path)
    # Every row is rejected, so quarantine leaves nothing to train on; the error says why.
    assert f"No valid rows in {path}: all 3 rows failed validation:" in str(error.value)
    assert (
        f"{path}, line 3: malformed line: 'text' holds an array; expected a string or a number"
        in str(error.value)
    )


def test_a_text_column_without_a_single_value_is_reported_not_a_crash(tmp_path):
    lines = [json.dumps({"text": None, "target": "carbon tax", "label": "FAVOR"})] * 2
    path = tmp_path / "rows.jsonl"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"all 2 rows failed validation: .*line 1: empty text"):
        load_dataset(data_config(path, on_bad_rows="quarantine"), tmp_path)


def test_a_lone_surrogate_escape_in_a_json_line_is_a_rejected_row_not_a_crash(tmp_path):
    # Found in review: "\ud83d" (half an emoji, cut off) crashed training inside pyarrow.
    lines = [
        json.dumps({"text": "Fair tax", "target": "carbon tax", "label": "FAVOR"}),
        '{"text": "Cut off \\ud83d", "target": "carbon tax", "label": "NONE"}',
        json.dumps({"text": "Unfair tax", "target": "carbon tax", "label": "AGAINST"}),
    ]
    path = tmp_path / "rows.jsonl"
    path.write_text("\n".join(lines) + "\n")
    data = load_dataset(data_config(path, on_bad_rows="quarantine"), tmp_path)
    assert data.rows["text"].tolist() == ["Fair tax", "Unfair tax"]
    assert data.rejects["line"].tolist() == [2]
    assert data.rejects["reason"].iloc[0].startswith("undecodable text: a lone surrogate")


def test_malformed_json_line_is_rejected(tmp_path):
    nested = json.dumps({"text": "Fair tax", "target": {"name": "carbon tax"}, "label": "FAVOR"})
    lines = [
        json.dumps({"text": "Fair tax", "target": "carbon tax", "label": "FAVOR"}),
        "{not json",
        "[1, 2]",
        nested,
    ]
    path = tmp_path / "rows.jsonl"
    path.write_text("\n".join(lines) + "\n")
    data = load_dataset(data_config(path, on_bad_rows="quarantine"), tmp_path)
    assert data.rejects["line"].tolist() == [2, 3, 4]
    assert data.rejects["reason"].str.startswith("malformed").all()
    assert (
        data.rejects["reason"].iloc[2]
        == "malformed line: 'target' holds an object; expected a string or a number"
    )
    assert data.rejects["text"].tolist() == [
        "{not json",
        "[1, 2]",
        nested,
    ]  # the line itself, as in predict's rejects


def test_jsonl_keys_that_first_appear_on_a_later_line_are_read(tmp_path):
    lines = [
        {"text": "Fair tax", "target": "carbon tax", "label": "FAVOR"},
        {"id": "b", "text": "Cruel tax", "target": "carbon tax", "label": "AGAINST", "weight": 0.5},
    ]
    path = tmp_path / "rows.jsonl"
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    rows = load_dataset(data_config(path, use_weights=True), tmp_path).rows
    assert rows["weight"].tolist() == [1.0, 0.5]
    assert rows["id"].tolist()[1] == "b"


def test_missing_file_names_the_data_root(tmp_path):
    with pytest.raises(DataError, match="does not exist.*STANCE_DATA_DIR"):
        load_dataset(data_config(tmp_path / "absent.csv"), tmp_path)


@pytest.mark.parametrize("seed", [3, 2**32 - 1])  # the largest seed the config accepts
def test_stratified_split_is_seeded_and_covers_every_row(sentences, seed):
    rows = sentences.assign(split=None, group=sentences["target"], id=range(len(sentences)))
    config = Config.from_layers(
        {
            "data": {"path": "x.csv", "labels": ["FAVOR", "AGAINST", "NONE"]},
            "split": {"valid_size": 0.25, "test_size": 0.25},
        }
    )
    first = split_dataset(rows, config.split, seed=seed)
    again = split_dataset(rows, config.split, seed=seed)
    assert all(first[k]["id"].tolist() == again[k]["id"].tolist() for k in first)
    assert sorted(sum((first[k]["id"].tolist() for k in first), [])) == list(range(len(rows)))
    assert set(first["test"]["label"]) == {"FAVOR", "AGAINST", "NONE"}


def test_split_by_target_holds_out_whole_targets(sentences):
    rows = pd.concat(
        [sentences.assign(target=f"{t}{i}") for i, t in enumerate("abcd")], ignore_index=True
    )
    rows = rows.assign(split=None, group=rows["target"], id=range(len(rows)))
    config = Config.from_layers(
        {
            "data": {"path": "x.csv", "labels": ["FAVOR", "AGAINST", "NONE"]},
            "split": {"method": "by_target", "valid_size": 0.25, "test_size": 0.25},
        }
    )
    parts = split_dataset(rows, config.split, seed=0)
    seen = [set(parts[k]["target"]) for k in ("train", "valid", "test")]
    assert (
        all(seen)
        and not (seen[0] & seen[1])
        and not (seen[0] & seen[2])
        and not (seen[1] & seen[2])
    )


def test_target_names_rename_argq_topics_and_their_groups(tmp_path):
    (tmp_path / "argq.csv").write_text(
        "argument,topic,set,stance_WA,stance_WA_conf\n"
        "Bans push the trade underground,We should ban  whaling,train,-1,0.9\n"
        "Whales are sentient,we should ban whaling,train,1,0.8\n"
        "Schools need the money,We should subsidize schools,test,1,1.0\n"
    )
    layers = {
        "data": {
            "format": "argq",
            "path": "argq.csv",
            "labels": ["PRO", "CON"],
            "target_names": {"We should ban  whaling": "we should ban whaling"},
        }
    }
    rows = load_dataset(Config.from_layers(layers).data, tmp_path).rows
    assert list(rows["target"]) == [
        "we should ban whaling",
        "we should ban whaling",
        "We should subsidize schools",
    ]
    # Held-out topics are keyed on the renamed target, so the two spellings land in one group.
    assert list(rows["group"]) == list(rows["target"])


def test_target_names_rename_fnc1_headlines_but_groups_stay_bodies(tmp_path):
    for prefix in ("train", "competition_test"):
        (tmp_path / f"{prefix}_bodies.csv").write_text(
            'Body ID,articleBody\n7,"The strike hit a depot, officials said."\n'
        )
        (tmp_path / f"{prefix}_stances.csv").write_text(
            "Headline,Body ID,Stance\nDepot  struck,7,agree\nDepot struck,7,agree\n"
        )
    layers = {
        "data": {
            "format": "fnc1",
            "path": ".",
            "labels": ["agree", "disagree", "discuss", "unrelated"],
            "target_names": {"Depot  struck": "Depot struck"},
        }
    }
    rows = load_dataset(Config.from_layers(layers).data, tmp_path).rows
    assert list(rows["target"]) == ["Depot struck"] * 4
    assert list(rows["group"]) == ["7"] * 4


def test_target_names_rename_semeval_targets_by_folder_or_by_name(tmp_path):
    for split in ("train", "val", "test"):
        for folder in ("abortion", "atheism"):
            (tmp_path / folder).mkdir(exist_ok=True)
            (tmp_path / folder / f"{split}_text.txt").write_text(f"a {folder} tweet in {split}\n")
            (tmp_path / folder / f"{split}_labels.txt").write_text("1\n")
    renames = {
        "abortion": "Abortion",
        "Atheism": "Religion",
    }  # a folder name, and the target it gives
    layers = {
        "data": {
            "format": "semeval2016",
            "path": ".",
            "labels": ["FAVOR", "AGAINST", "NONE"],
            "target_names": renames,
        }
    }
    rows = load_dataset(Config.from_layers(layers).data, tmp_path).rows
    assert sorted(set(rows["target"])) == ["Abortion", "Religion"]
    assert (rows["group"] == rows["target"]).all()


def _sample_with_repeats(tmp_path, repeats: int = 50):
    """The sample plus ``repeats`` copies of its sentences, without ids, one with its case and
    spacing changed.
    """
    frame = pd.read_csv(REPO / "data" / "sample" / "sentences.csv")
    copies = frame.sample(repeats, random_state=1).assign(id="")
    copies.iloc[0, copies.columns.get_loc("sentence")] = "  " + copies.iloc[0][
        "sentence"
    ].upper().replace(" ", "   ")
    path = tmp_path / "repeated.csv"
    pd.concat([frame, copies], ignore_index=True).to_csv(path, index=False)
    return path


def _data_layers(path):
    sample = tomllib.loads((REPO / "experiments" / "sample.toml").read_text())
    return {**sample, "data": {**sample["data"], "path": path.name}}


def test_every_copy_of_a_text_lands_in_one_split_and_the_repeats_are_counted(tmp_path):
    from train.duplicates import repeated_texts, text_keys

    config = Config.from_layers(_data_layers(_sample_with_repeats(tmp_path)))
    data = load_dataset(config.data, tmp_path)
    splits = split_dataset(data.rows, config.split, config.seed)
    homes = {}
    for name, frame in splits.items():
        for key in text_keys(frame["text"]):
            homes.setdefault(key, set()).add(name)
    assert all(len(names) == 1 for names in homes.values())
    assert sum(len(frame) for frame in splits.values()) == 468
    counts = repeated_texts(splits)
    assert counts["repeated_text_rows"] == 50
    assert counts["test_rows_with_a_train_text"] == counts["valid_rows_with_a_train_text"] == 0


def test_without_repeats_the_split_is_the_one_drawn_row_by_row(sentences):
    # Drawing over distinct texts must not move a single row of data that has no repeats,
    # so earlier runs' splits, and their metrics, stay as they were.
    from sklearn.model_selection import train_test_split

    from train.data import _holdout

    frame = sentences.assign(split=None)
    keep, hold = train_test_split(
        frame.index, test_size=0.25, random_state=3, stratify=frame["label"]
    )
    kept, held = _holdout(frame, 0.25, "stratified", 3, "test")
    assert list(kept.index) == sorted(keep) and list(held.index) == sorted(hold)


@pytest.mark.parametrize("grouping", ["none", "hashtag"])
def test_cv_folds_keep_every_copy_of_a_text_in_one_fold(tmp_path, grouping):
    from train.crossval import folds
    from train.duplicates import text_keys

    config = Config.from_layers(_data_layers(_sample_with_repeats(tmp_path)))
    rows = load_dataset(config.data, tmp_path).rows
    keys = pd.Series(text_keys(rows["text"]))
    for train_rows, held_rows in folds(rows, 5, grouping, config.seed):
        assert not set(keys.iloc[train_rows]) & set(keys.iloc[held_rows])


def test_a_training_run_reports_its_repeated_texts(tmp_path, tracking, run_cli):
    import mlflow

    path = _sample_with_repeats(tmp_path)
    code, out, err = run_cli(
        "train",
        REPO / "experiments" / "sample.toml",
        "--data-dir",
        tmp_path,
        "--set",
        f'data.path="{path.name}"',
        "--set",
        "features.char=false",
    )
    assert code == 0, err
    assert (
        "50 rows repeat the text and target of an earlier row" in err
        and "every text, its copies and near copies are in one split" in err
    )
    run_id = next(line.split(": ")[1] for line in out.splitlines() if line.startswith("run_id: "))
    run = mlflow.MlflowClient().get_run(run_id)
    assert (
        run.data.metrics["repeated_text_rows"] == 50
        and run.data.metrics["test_rows_with_a_train_text"] == 0
        and run.data.metrics["valid_rows_with_a_train_text"] == 0
        and "near_copy_rows" in run.data.metrics
    )
    manifest = json.loads(mlflow.artifacts.load_text(f"runs:/{run_id}/data/manifest.json"))
    assert manifest["repeated_text_rows"] == 50


@pytest.mark.parametrize("marker", ["NaN", "nan", " NULL ", "N/A", "None", "<NA>"])
@pytest.mark.parametrize("column", ["text", "target"])
def test_a_missing_value_marker_is_a_missing_text_or_target_not_a_word(tmp_path, marker, column):
    line = f"a9,{marker},carbon tax,FAVOR" if column == "text" else f"a9,Fine idea,{marker},FAVOR"
    path = write(tmp_path, GOOD + [line])
    data = load_dataset(data_config(path, on_bad_rows="quarantine"), tmp_path)
    assert len(data.rows) == 3 and len(data.rejects) == 1
    assert (
        data.rejects["reason"].iloc[0]
        == f"missing {column}: the cell reads {marker.strip()!r}, which is taken as a missing value"
    )


def test_a_label_that_reads_none_is_still_a_label(tmp_path):
    path = write(
        tmp_path,
        [
            "a1,The tax is fair,carbon tax,Favor",
            "a2,The tax is cruel,carbon tax,Against",
            "a3,The tax starts in May,carbon tax,None",
        ],
    )
    data = load_dataset(data_config(path, labels=["Favor", "Against", "None"]), tmp_path)
    assert list(data.rows["label"]) == ["Favor", "Against", "None"]


# --------------------------------------------------------------------------- several files


def files_config(paths, **changes):
    layers = {"data": {"format": "csv", "path": paths, "labels": ["FAVOR", "AGAINST", "NONE"]}}
    layers["data"] |= changes
    return Config.from_layers(layers).data


def test_a_list_of_files_is_one_dataset_each_row_traced_to_its_own_file(tmp_path):
    write(tmp_path, GOOD, "old.csv")
    write(tmp_path, ["b1,Round one says yes,carbon tax,FAVOR", "b2,,carbon tax,NONE"], "new.csv")
    config = files_config(["old.csv", "new.csv"], on_bad_rows="quarantine")
    data = load_dataset(config, tmp_path)
    assert [Path(f.path).name for f in data.files] == ["old.csv", "new.csv"]
    assert len(data.rows) + len(data.rejects) == data.rows_read == 5
    assert list(data.rows["id"]) == ["a1", "a2", "a3", "b1"]
    rejected = data.rejects.iloc[0]
    assert Path(rejected["source"]).name == "new.csv" and rejected["line"] == 3


def test_a_folder_is_read_as_its_files_of_the_format_in_name_order(tmp_path):
    rounds = tmp_path / "rounds"
    rounds.mkdir()
    write(rounds, ["b2,Second round row,carbon tax,AGAINST"], "round-2.csv")
    write(rounds, ["b1,First round row,carbon tax,FAVOR"], "round-1.csv")
    (rounds / "notes.txt").write_text("not data")
    write(tmp_path, GOOD, "old.csv")
    config = files_config(["old.csv", "rounds"])
    data = load_dataset(config, tmp_path)
    assert [Path(f.path).name for f in data.files] == ["old.csv", "round-1.csv", "round-2.csv"]
    assert list(data.rows["id"])[-2:] == ["b1", "b2"]


def test_the_same_id_or_a_conflicting_label_across_files_is_caught_as_within_one(tmp_path):
    write(tmp_path, GOOD, "old.csv")
    write(
        tmp_path,
        ["a1,Another text,carbon tax,NONE", "b2,The tax is fair,carbon tax,AGAINST"],
        "new.csv",
    )
    config = files_config(["old.csv", "new.csv"])
    with pytest.raises(DataError) as error:
        load_dataset(config, tmp_path)
    message = str(error.value)
    assert "new.csv, line 2: duplicate id 'a1'" in message
    assert "conflicting labels for the same text and target" in message


def test_paths_that_cannot_be_one_dataset_are_refused(tmp_path):
    write(tmp_path, GOOD, "old.csv")
    (tmp_path / "empty").mkdir()
    twice = files_config(["old.csv", "./old.csv"])
    with pytest.raises(DataError, match="named twice"):
        load_dataset(twice, tmp_path)
    with pytest.raises(DataError, match="holds no csv files"):
        load_dataset(files_config(["old.csv", "empty"]), tmp_path)
    from train.errors import ConfigError

    with pytest.raises(ConfigError, match="non-empty list of paths"):
        files_config([])
    with pytest.raises(ConfigError, match="loader reads one folder"):
        Config.from_layers({"data": {"format": "argq", "path": ["a.csv", "b.csv"]}})


def test_a_folder_of_annotations_skips_names_starting_with_a_dot_or_underscore(tmp_path):
    from train.sources import table_files

    (tmp_path / "rounds").mkdir()
    for name in ("round-1.csv", "round-2.csv", "_draft.csv", ".round-3.csv.swp.csv"):
        (tmp_path / "rounds" / name).write_text("id,text,target,label\n")
    config = Config.from_layers({"data": {"path": "rounds", "labels": ["FAVOR", "AGAINST"]}})
    found = [p.name for p in table_files(config.data, tmp_path)]
    assert found == ["round-1.csv", "round-2.csv"]  # as Spark lists a folder


def test_the_semeval_loader_skips_hidden_and_underscore_folders(tmp_path):
    folder = tmp_path / "semeval"
    for target in ("abortion", ".ipynb_checkpoints"):
        (folder / target).mkdir(parents=True)
    for split, count in (("train", 4), ("val", 2), ("test", 2)):
        (folder / "abortion" / f"{split}_text.txt").write_text(
            "".join(f"Tweet {split} {i} on abortion\n" for i in range(count))
        )
        (folder / "abortion" / f"{split}_labels.txt").write_text(
            "".join(f"{i % 3}\n" for i in range(count))
        )
    config = Config.from_layers({"data": {"format": "semeval2016", "path": "semeval"}})
    rows = load_dataset(config.data, tmp_path).rows
    assert len(rows) == 8 and set(rows["target"]) == {"Legalization of Abortion"}
