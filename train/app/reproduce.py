"""``stance reproduce RUN``: retrain a run from its logged config and check the metrics match."""

from __future__ import annotations

from train.app.arguments import DATA_DIR_HELP, RUN_HELP, progress_to_stderr


def add_parser(commands) -> None:
    parser = commands.add_parser(
        "reproduce", help="retrain a run from its logged config and data hashes"
    )
    parser.add_argument("run_id", metavar="RUN", help=RUN_HELP)
    parser.add_argument("--data-dir", help=DATA_DIR_HELP)


def run(args) -> int:
    from train.runs import reproduce_run, side_by_side

    old, new, facts = reproduce_run(args.run_id, args.data_dir, log=progress_to_stderr)
    table = side_by_side(old, new)
    print(table.to_string(index=False))
    print(f"run_id: {facts['new_run_id']}")
    differing = int((~table["same"]).sum())
    print("identical metrics" if differing == 0 else f"{differing} metrics differ")
    if facts["dirty"]:
        print("note: the original run came from a work tree with uncommitted changes")
    if differing and facts["machine"]:
        # The data were checked against the run's hashes before training: what else differs?
        same_code = facts["same_code"]
        print(
            "note: the two runs ran on machines that choose different kernels ("
            + "; ".join(facts["machine"])
            + "). int8 and BLAS kernels round differently by instruction set, so a difference "
            + (
                "here comes from the hardware: the data and the code are the same."
                if same_code
                else "may come from the hardware, or from the code or library versions, which are "
                "not known to be the same."
            )
        )
    elif differing and facts["machine_known"]:
        print(
            "note: the same kernels (instruction sets or pinned BLAS and numpy loops) as the "
            "original run, and the same data: "
            "the difference comes from the code or the library versions (`stance compare` "
            "lists the versions)."
        )
    return 0
