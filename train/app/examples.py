"""Examples shown at the end of each command's ``--help``, runnable from the checkout with
``../shared`` beside it (RUN stands for a run id that `stance train` printed)."""

EXAMPLES = {
    "new": """\
  stance new out/iran.toml --data data/sample/iran_batch.csv
  stance new out/strikes.toml --data data/sample/iran_batch.csv --label-column stance \
      --target-column target""",
    "train": """\
  stance train experiments/sample.toml
  stance train experiments/sample.toml --set clf__C=0.5 --set features.char=false
  stance train experiments/argq-fast.toml --data-dir ../shared/data""",
    "predict": """\
  stance predict runs:/RUN/model data/sample/iran_batch.csv --text-column sentence \\
      -o out/predictions.csv
  stance predict runs:/RUN/model ../shared/documents --documents \\
      --target "Iran's missile strikes" -o out/sentences.csv""",
    "evaluate": """\
  stance evaluate runs:/RUN/model data/sample/iran_batch.csv --text-column sentence \\
      --label-column stance
  stance evaluate runs:/RUN/model experiments/sample.toml --split test""",
    "cv": """\
  stance cv experiments/sample.toml --folds 5
  stance cv experiments/semeval2016.toml --data-dir ../shared/data --group-by hashtag --jobs 2""",
    "search": """\
  stance search experiments/sample.toml --trials 20
  stance search experiments/sample.toml --trials 20 --cv 5 \\
      --storage sqlite:///out/study.db --study-name sample""",
    "cascade": """\
  stance cascade FAST_RUN ACCURATE_RUN --max-loss 0.5""",
    "select": """\
  stance select runs:/RUN/model ../shared/documents --documents \\
      --target "Iran's missile strikes" -n 20 -o out/round-1.csv""",
    "runs": """\
  stance runs
  stance runs sample --sort test_macro_f1""",
    "compare": """\
  stance compare RUN_A RUN_B""",
    "show": """\
  stance show RUN""",
    "register": """\
  stance register RUN --name sample""",
    "reproduce": """\
  stance reproduce RUN""",
    "convert": """\
  stance convert old-model/model.pkl out/model --trust-pickle""",
}
