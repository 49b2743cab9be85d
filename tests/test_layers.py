"""The package's layers: imports run one way, and ``import meanteacher`` loads only the algorithm layer."""

import ast
import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"

LAYERS = {
    "errors": 0,
    "files": 0,
    "schedules": 0,
    "optim": 0,
    "hardware": 0,
    "plugins": 0,
    "data.batch": 0,  # what every layer stands on
    "data": 1,  # reading, splitting, batching and noising data: knows nothing of costs, methods or training
    "losses": 2,
    "adversarial": 2,
    "masks": 2,
    "pseudo_labels": 2,
    "models": 2,
    "teacher": 2,  # the parts a user takes into their own loop
    "methods": 3,
    "config": 3,  # a run's settings: schema, checks, automatic values, TOML
    "run": 4,
    "inference": 4,
    "suggest": 4,
    "report": 4,  # running experiments and using their results
    "demo": 5,
    "cli": 5,  # the command line
    "__main__": 6,
    "": 6,
}
"""A module may import modules of its own layer or a lower one (by the longest matching name)."""

NOT_LOADED_BY_IMPORT = [
    "meanteacher.run.train",
    "meanteacher.run.setup",
    "meanteacher.run.distributed",
    "meanteacher.run.graphs",
    "meanteacher.run.hyperparameters",
    "meanteacher.run.progress",
    "meanteacher.data.sources",
    "meanteacher.data.streaming",
    "meanteacher.data.feed",
    "meanteacher.data.views",
    "meanteacher.report",
    "meanteacher.demo",
    "meanteacher.cli",
    "benchmarks",
    "matplotlib",
]
"""What ``import meanteacher`` must leave unloaded: the trainer, the dataset readers, plotting, the command line."""


def _layer(module: str) -> int:
    name = module.removeprefix("meanteacher").removeprefix(".")
    while name not in LAYERS:
        name = name.rpartition(".")[0]
    return LAYERS[name]


def _imports(module: str, is_package: bool, source: str) -> list[str]:
    """The package modules (and ``benchmarks``) that ``source`` imports, anywhere in it."""
    package = module if is_package else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                target = f"{base}.{node.module}" if node.module else base
                found += [target] if node.module else [f"{base}.{alias.name}" for alias in node.names]
            else:
                found.append(node.module)
    return [name for name in found if name.split(".")[0] in ("meanteacher", "benchmarks")]


def layer_violations(modules: dict[str, tuple[bool, str]]) -> list[str]:
    """``importer -> imported`` for each import of an upper layer, or of ``benchmarks``, in
    ``modules`` (name: (is a package, source))."""
    violations = []
    for module, (is_package, source) in sorted(modules.items()):
        for imported in _imports(module, is_package, source):
            if imported.startswith("benchmarks") or _layer(imported) > _layer(module):
                violations.append(f"{module} -> {imported}")
    return violations


def _package_sources() -> dict[str, tuple[bool, str]]:
    modules = {}
    for path in (SRC / "meanteacher").rglob("*.py"):
        parts = path.relative_to(SRC).with_suffix("").parts
        is_package = parts[-1] == "__init__"
        modules[".".join(parts[:-1] if is_package else parts)] = (is_package, path.read_text())
    return modules


def test_imports_run_from_upper_layers_to_lower_ones():
    modules = _package_sources()
    assert len(modules) > 30
    assert layer_violations(modules) == []


def import_circles(modules: dict[str, tuple[bool, str]]) -> list[list[str]]:
    """Each circle of imports among ``modules`` (a module importing one that, through others, imports it),
    as the modules on it from the first found; an import names the longest module in ``modules`` it reaches."""

    def owner(name: str) -> str:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name

    edges = {
        module: sorted({owner(name) for name in _imports(module, *source)} - {"", module})
        for module, source in modules.items()
    }
    circles, state = [], {}  # state: 1 on the current path, 2 finished

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for imported in edges[module]:
            if state.get(imported) == 1:
                circles.append(path[path.index(imported) :] + [imported])
            elif imported not in state:
                visit(imported, path + [imported])
        state[module] = 2

    for module in sorted(modules):
        if module not in state:
            visit(module, [module])
    return circles


def test_no_module_imports_one_that_imports_it_back():
    assert import_circles(_package_sources()) == []


def test_the_circle_check_sees_a_circle():
    modules = {
        "meanteacher.config": (False, "def f():\n    from .methods import METHODS\n"),
        "meanteacher.methods": (True, "from .base import Method\n"),
        "meanteacher.methods.base": (False, "from ..config import Config\n"),
        "meanteacher.losses": (False, "import torch\n"),
    }
    assert import_circles(modules) == [
        ["meanteacher.config", "meanteacher.methods", "meanteacher.methods.base", "meanteacher.config"]
    ]
    del modules["meanteacher.methods.base"]
    assert import_circles(modules) == []


def test_the_methods_do_not_read_the_configuration_module():
    """A method is built from settings it names itself (``MethodSettings``), so the configuration can ask the
    methods what they are (names, traits, automatic values) without a circle."""
    sources = _package_sources()
    for module in [name for name in sources if name.startswith("meanteacher.methods")]:
        assert "meanteacher.config" not in _imports(module, *sources[module]), module


def test_the_check_sees_a_broken_rule():
    broken = {
        "meanteacher.data.feed": (False, "from ..losses import NO_LABEL\n"),  # data importing the costs
        "meanteacher.inference": (
            False,
            "def f():\n    from .run.train import Trainer\n",
        ),  # inference importing the trainer
        "meanteacher.cli": (False, "from benchmarks.speed import main\n"),  # the command line importing benchmarks
        "meanteacher.methods": (True, "from ..data.batch import Batch\nfrom .base import Method\n"),  # allowed
    }
    assert layer_violations(broken) == [
        "meanteacher.cli -> benchmarks.speed",
        "meanteacher.data.feed -> meanteacher.losses",
    ]
    assert _layer("meanteacher.inference") == _layer("meanteacher.run.train")  # same layer: the next test covers it


def _loaded_after(statement: str) -> set[str]:
    code = f"import sys; {statement}; print('\\n'.join(sys.modules))"
    output = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    return set(output.split())


def test_import_meanteacher_loads_only_the_algorithm_layer():
    loaded = _loaded_after("import meanteacher")
    assert {"meanteacher.methods", "meanteacher.teacher", "meanteacher.losses", "meanteacher.inference"} <= loaded
    assert [name for name in NOT_LOADED_BY_IMPORT if name in loaded] == []


def test_inference_and_the_command_line_do_not_load_the_trainer_or_benchmarks():
    assert not {"meanteacher.run.train", "meanteacher.run.setup"} & _loaded_after("import meanteacher.inference")
    loaded = _loaded_after("import meanteacher.cli; meanteacher.cli.build_parser()")
    assert "meanteacher.run.train" not in loaded and not any(name.startswith("benchmarks") for name in loaded)
