"""Packaging facts that users rely on: what is declared, what importing costs, the licence."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import skphotoz

tomllib = pytest.importorskip("tomllib")  # Python 3.11+

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())

# Import name -> distribution name where they differ.
_DISTRIBUTION = {
    "sklearn": "scikit-learn",
    "faiss": "faiss-cpu",
    "yaml": "pyyaml",
    "PIL": "pillow",
    "umap": "umap-learn",
}


def _requirement_names(requirements) -> set[str]:
    names = set()
    for requirement in requirements:
        name = requirement.split(";")[0].strip()
        for stop in "<>=!~[ ":
            name = name.split(stop)[0]
        names.add(name.lower())
    return names


def _third_party_imports() -> dict[str, set[str]]:
    """Top-level modules imported anywhere in the package (inside functions too) -> files."""
    stdlib = set(sys.stdlib_module_names)
    found: dict[str, set[str]] = {}
    for path in (ROOT / "skphotoz").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules = [node.module]
            else:
                continue
            for module in modules:
                top = module.split(".")[0]
                if top not in stdlib and top != "skphotoz":
                    found.setdefault(top, set()).add(path.name)
    return found


def test_every_imported_package_is_declared():
    project = PYPROJECT["project"]
    required = _requirement_names(project["dependencies"])
    optional = set().union(
        *(_requirement_names(reqs) for reqs in project["optional-dependencies"].values())
    )
    imports = _third_party_imports()
    assert {"numpy", "torch", "sklearn", "scipy", "h5py"} <= set(imports)
    undeclared = {
        module: sorted(files)
        for module, files in imports.items()
        if _DISTRIBUTION.get(module, module).lower() not in required | optional
    }
    assert not undeclared, f"imported but not declared in pyproject.toml: {undeclared}"


@pytest.mark.parametrize(
    "statement",
    [
        "import skphotoz",
        "import skphotoz.metrics",
        "import skphotoz.data",
        "import skphotoz.explore",
        "from skphotoz.cli import build_parser; build_parser()",
    ],
)
def test_light_imports_do_not_load_torch(statement):
    code = f"import sys; {statement}; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False", out.stderr


def test_estimators_resolve_lazily():
    from skphotoz.embedder import MOCO_PRESETS, MoCoEmbedder

    assert skphotoz.MoCoEmbedder is MoCoEmbedder
    assert skphotoz.MOCO_PRESETS is MOCO_PRESETS
    assert {"MoCoEmbedder", "PhotoZRegressor", "SimilaritySearch"} <= set(dir(skphotoz))
    with pytest.raises(AttributeError, match="has no attribute 'Nope'"):
        skphotoz.Nope  # noqa: B018


def test_licence_is_spdx_and_carries_the_kcorrect_notice():
    project = PYPROJECT["project"]
    assert project["license"] == "BSD-3-Clause"
    assert project["license-files"] == ["LICENSE"]
    text = (ROOT / "LICENSE").read_text()
    assert "Copyright (c) 2016, Michael R. Blanton" in text
    assert "kcorrect" in text
    shipped = {p.name for p in (ROOT / "skphotoz" / "datasets" / "data").glob("*.csv.gz")}
    assert shipped and all(name in text for name in shipped)


def test_minimum_versions_pin_every_checked_dependency():
    out = subprocess.run(
        [sys.executable, str(ROOT / ".ci" / "minimum_versions.py")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    pinned = {line.split("==")[0].lower(): line.split("==")[1] for line in out}
    # A pin keeps its requirement's environment marker.
    assert pinned["tomli"] == "1.1; python_version < '3.11'"
    declared = _requirement_names(PYPROJECT["project"]["dependencies"])
    assert set(pinned) == declared - {"torch", "torchvision"}
    assert pinned["scikit-learn"] == "1.6"


def test_similarity_search_does_not_import_plotting():
    code = (
        "import sys, skphotoz.search; "
        "bad = [m for m in ('matplotlib', 'skphotoz.plotting', 'skphotoz.model_selection') "
        "if m in sys.modules]; assert not bad, bad"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


def test_plotting_does_not_import_model_selection():
    code = "import sys, skphotoz.plotting; print('skphotoz.model_selection' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False", out.stderr


def test_scikit_learn_private_api_is_bounded_and_present():
    # skphotoz builds on private scikit-learn API; pyproject bounds scikit-learn to the
    # versions where it is tested, and this fails first when a release moves it.
    from sklearn.base import _fit_context  # noqa: F401
    from sklearn.utils import _safe_indexing  # noqa: F401
    from sklearn.utils._param_validation import (  # noqa: F401
        HasMethods,
        Interval,
        InvalidParameterError,
        Options,
        StrOptions,
        validate_parameter_constraints,
    )

    (requirement,) = [
        r for r in PYPROJECT["project"]["dependencies"] if r.startswith("scikit-learn")
    ]
    assert ",<" in requirement.replace(" ", "")
