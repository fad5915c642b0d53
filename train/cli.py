"""The ``stance`` command: parse the arguments, run one command of :mod:`train.app`, and turn
the errors a user can fix into one line and exit status 2."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from importlib.metadata import PackageNotFoundError, version

from train import hardware
from train.app import COMMANDS
from train.app.examples import EXAMPLES
from train.errors import StanceError, Terminated, terminate

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143  # 128 + SIGTERM, as a shell reports a process it ended


def _installed_version() -> str:

    try:
        return version("stance")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "(not installed)"


class _KeepExamples(argparse.HelpFormatter):
    """Wraps a description as argparse does, and prints the examples line by line as written."""

    def _fill_text(self, text, width, indent):
        if text.startswith("examples:\n"):
            return "".join(indent + line for line in text.splitlines(keepends=True))
        return super()._fill_text(text, width, indent)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="stance", description="Train and use small, fast stance classifiers."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_installed_version()}")
    commands = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS.values():
        command.add_parser(commands)
    for name, subparser in commands.choices.items():
        subparser.epilog = f"examples:\n{EXAMPLES[name]}"
        subparser.formatter_class = _KeepExamples
    return parser


def main(argv: list[str] | None = None) -> int:
    # Before any command loads numpy: the same BLAS and numpy kernels on every x86-64-v3 CPU.
    hardware.pin_kernels()
    args = _parser().parse_args(argv)
    # SIGTERM (`kill`, a scheduler's timeout) unwinds like Ctrl-C: the open run is closed as
    # KILLED instead of staying RUNNING forever. Only the main thread may set a handler.
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, terminate) if in_main_thread else None
    try:
        return COMMANDS[args.command].run(args)
    except StanceError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt as stop:
        run = getattr(stop, "killed_run", None)
        print(
            ("stopped by SIGTERM" if isinstance(stop, Terminated) else "interrupted")
            + (f"; run {run} is marked KILLED in the store" if run else ""),
            file=sys.stderr,
        )
        return EXIT_TERMINATED if isinstance(stop, Terminated) else EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader of stdout left early (`stance show RUN | head`): not a failure of the
        # command. Python would report it again on exit while flushing, unless stdout goes nowhere.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as error:
        if not isinstance(error, _mlflow_errors()):
            raise
        # A server that cannot be reached, or a store that refuses a write: the user's
        # setup, not a bug here, so it is reported like any other StanceError.
        from train.store import store_uri  # MLflow is imported already, or there'd be no error

        print(
            f"error: the MLflow store at {store_uri()} failed: {error.message} Check that it is "
            "reachable and writable, or set MLFLOW_TRACKING_URI to another.",
            file=sys.stderr,
        )
        return EXIT_USAGE
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _mlflow_errors() -> tuple[type[Exception], ...]:
    """MLflow's exception class, if MLflow was imported at all (``stance --help`` never is)."""
    module = sys.modules.get("mlflow.exceptions")
    return (module.MlflowException,) if module else ()


if __name__ == "__main__":
    sys.exit(main())
