"""``stance convert OLD NEW --trust-pickle``: rewrite a pickle model of an earlier version as a
model folder."""

from __future__ import annotations

from train.app.arguments import MODEL_HELP


def add_parser(commands) -> None:
    parser = commands.add_parser(
        "convert",
        help="rewrite a model.pkl of an earlier version as a model folder (data only)",
        description="Earlier versions saved models as pickles, which can run code when read. "
        "This reads one, once, through the old allow-list of types, and writes the model as "
        "a folder of data that every other command loads. Only with --trust-pickle.",
    )
    parser.add_argument("source", metavar="OLD", help=f"the pickle model: {MODEL_HELP}")
    parser.add_argument("target", metavar="NEW", help="the model folder to write (new or empty)")
    parser.add_argument(
        "--trust-pickle",
        action="store_true",
        help="you trust where OLD came from: reading a pickle can run code it names",
    )


def run(args) -> int:
    from train import pickled

    fingerprint = pickled.convert(args.source, args.target, args.trust_pickle)
    print(f"wrote {args.target} (sha256 of its manifest: {fingerprint})")
    return 0
