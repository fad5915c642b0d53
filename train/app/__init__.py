"""The ``stance`` subcommands, one module each.

Every module here has ``add_parser(commands)``, which declares the command's options, and
``run(args)``, which calls one library function and prints its result. ``run`` imports the
library inside the function: building the parser must not import scikit-learn or MLflow, so
that ``stance --help`` answers in about 0.1 s instead of 2-3 s.
"""

from train.app import (
    cascade,
    compare,
    convert,
    crossvalidate,
    evaluate,
    new,
    predict,
    register,
    reproduce,
    runs,
    search,
    select,
    show,
    train,
)

# In the order ``stance --help`` lists them: the path from data to predictions first.
COMMANDS = {
    "new": new,
    "train": train,
    "predict": predict,
    "evaluate": evaluate,
    "cv": crossvalidate,
    "search": search,
    "cascade": cascade,
    "select": select,
    "runs": runs,
    "compare": compare,
    "show": show,
    "register": register,
    "reproduce": reproduce,
    "convert": convert,
}
