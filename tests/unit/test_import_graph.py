"""infra/import_graph.py: the library has no import cycle and its layers import inward; the
check itself catches a cycle hidden in a function and an import against the layers."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]


def _graph():
    spec = importlib.util.spec_from_file_location(
        "import_graph", ROOT / "infra" / "import_graph.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_library_has_no_cycle_and_its_layers_import_inward():
    graph = _graph()
    assert graph.problems() == []
    edges, external = graph.graph()
    assert len(edges) > 80  # it really read the package
    # the composition root is imported by entry points alone
    importers = {name for name, targets in edges.items() if "cashmatch.bootstrap" in targets}
    assert importers and all(".entrypoints." in name for name in importers)
    # no domain module imports a cloud SDK, Ray or DuckDB
    assert not any(
        external[name] & {"google", "ray", "duckdb"} for name in edges if ".domain" in name
    )


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    src = tmp_path / "src"
    for name, text in files.items():
        path = src / "cashmatch" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    for folder in {p.parent for p in (src / "cashmatch").rglob("*.py")} | {src / "cashmatch"}:
        (folder / "__init__.py").touch()
    return src


def test_a_cycle_through_a_function_local_import_is_found(tmp_path):
    src = _tree(
        tmp_path,
        {
            "domain/a.py": "from cashmatch.domain import b\n",
            "domain/b.py": "def f():\n    from cashmatch.domain.a import x\n",
            "domain/c.py": (
                "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                "    from cashmatch.domain import a\n"
            ),
        },
    )
    found = _graph().problems(src)
    assert found == ["import cycle: cashmatch.domain.a -> cashmatch.domain.b -> cashmatch.domain.a"]


def test_imports_against_the_layers_are_found(tmp_path):
    src = _tree(
        tmp_path,
        {
            "domain/model.py": "import duckdb\nfrom cashmatch.settings import S\n",
            "settings.py": "S = 1\n",
            "service_layer/handler.py": "from cashmatch import bootstrap\n",
            "bootstrap.py": "",
            "adapters/x.py": "from cashmatch.entrypoints.cli import main\n",
            "entrypoints/cli.py": "from cashmatch.bootstrap import bootstrap\n",
            "adapters/gcp/warehouse.py": "from cashmatch.adapters.local.warehouse import X\n",
            "adapters/local/warehouse.py": "X = 1\n",
        },
    )
    found = _graph().problems(src)
    assert "cashmatch.domain.model imports duckdb: the domain does no I/O" in found
    assert (
        "cashmatch.domain.model imports cashmatch.settings: domain may not import settings" in found
    )
    assert any(
        line.startswith("cashmatch.service_layer.handler imports cashmatch.bootstrap")
        for line in found
    )
    assert any(
        line.startswith("cashmatch.adapters.x imports cashmatch.entrypoints") for line in found
    )
    assert not any(line.startswith("cashmatch.entrypoints.cli imports") for line in found)
    assert (
        "cashmatch.adapters.gcp.warehouse imports cashmatch.adapters.local.warehouse: "
        "the gcp adapters may not import the local ones" in found
    )
