"""The architecture as a rule: imports only go down the layers (docs/architecture.md, "Layers").

    errors -> util | decisions -> models | data | predictions -> metrics | video -> engine | survey -> serve
           -> tracking | deploy -> inference | reporting -> jobs -> commands -> entry points (train.py, infer.py, bench/)

A module may import its own component (``hybrid.engine.*`` inside the engine) and anything in a
lower layer; never a sibling of its own layer (models and data stay independent, so do the apps)
nor a higher one. The jobs are one component: a job may run another (train runs the two-stage
recipe, which runs train and infer).
Every import statement counts, including those inside functions.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "hybrid"

# component (a module or a package under hybrid/) -> layer; higher layers may import lower ones.
LAYERS = {
    "hybrid": 0,  # the package's own __init__
    "hybrid.errors": 0,
    "hybrid.util": 1,
    "hybrid.decisions": 1,  # what scores decide (the negative class, thresholds), numpy only
    "hybrid.models": 2,
    "hybrid.data": 2,
    "hybrid.predictions": 2,  # the predictions.csv format (training stack and serving)
    "hybrid.metrics": 3,
    "hybrid.video": 3,  # videos: sampled frames, live sources, timed events and their temporal metric
    "hybrid.survey": 4,  # a draft inspection survey from events: distances, codes, observations, report
    "hybrid.engine": 4,
    "hybrid.serve": 5,  # serving an .onnx without the training stack: numpy, Pillow, onnxruntime
    "hybrid.tracking": 6,
    "hybrid.deploy": 6,  # model files for serving: the ONNX card, export steps, runtimes
    "hybrid.inference": 7,  # predicting a test split, images or videos with a served model file
    "hybrid.reporting": 7,  # a sweep's report: its runs, tables, statistics, figures, Pareto front
    "hybrid.jobs": 8,  # every job, one module each with main(argv, prog); the jobs' keys (jobs/schema.py)
    "hybrid.commands": 9,  # `hybrid <job>`: imports each job's module when it runs
}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def component(module: str) -> str:
    """The longest key of :data:`LAYERS` that ``module`` is or lies in."""
    matches = [name for name in LAYERS if module == name or module.startswith(name + ".")]
    if not matches:
        raise AssertionError(f"{module} belongs to no layer: add it to LAYERS (and the line in docs/architecture.md)")
    return max(matches, key=len)


def is_module(dotted: str) -> bool:
    path = ROOT.joinpath(*dotted.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def hybrid_imports(path: Path, text: str | None = None) -> list[tuple[int, str]]:
    """``(line, module)`` for every import of a hybrid module in the file at ``path`` (or in ``text``,
    read as that file)."""
    tree = ast.parse(path.read_text() if text is None else text, filename=str(path))
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative import
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:  # `from hybrid.engine import distributed` imports a module
                dotted = f"{base}.{alias.name}"
                found.append((node.lineno, dotted if is_module(dotted) else base))
    return [(line, name) for line, name in found if name == "hybrid" or name.startswith("hybrid.")]


def upward_imports(path: Path, text: str | None = None) -> list[str]:
    """The imports of ``path`` that break the layering, as ``file:line imports module (layer)``."""
    source = component(module_name(path))
    wrong = []
    for line, imported in hybrid_imports(path, text):
        target = component(imported)
        if target != source and LAYERS[target] >= LAYERS[source]:
            wrong.append(f"{path.relative_to(ROOT)}:{line} imports {imported} ({target}, layer {LAYERS[target]})")
    return wrong


MODULES = sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(ROOT)))
def test_imports_only_go_down(path):
    assert upward_imports(path) == []


def test_the_rule_catches_upward_and_sideways_imports():
    """The checker itself, on made-up modules: the engine importing tracking, data importing models."""
    engine_probe = PACKAGE / "engine" / "probe.py"
    assert upward_imports(engine_probe, "def f():\n    from hybrid.tracking import Tracker\n") == [
        "hybrid/engine/probe.py:2 imports hybrid.tracking (hybrid.tracking, layer 6)"
    ]
    data_probe = PACKAGE / "data" / "probe.py"
    assert upward_imports(data_probe, "from ..models import backbones\n") == [
        "hybrid/data/probe.py:1 imports hybrid.models.backbones (hybrid.models, layer 2)"
    ]
    assert upward_imports(data_probe, "from hybrid.util import ranks\nfrom . import labels\n") == []


def test_every_module_has_a_layer():
    assert {component(module_name(p)) for p in MODULES} <= set(LAYERS)


def test_no_two_modules_share_a_file_name():
    """A file name found in a traceback or a search is one module; the one name every group gives
    its keys (``schema.py``) is the exception, and package ``__init__.py`` files."""
    names = [path.name for path in MODULES if path.name not in ("__init__.py", "schema.py")]
    assert sorted({name for name in names if names.count(name) > 1}) == []
