"""The package's shape: no import cycle, no module importing from a layer below it
(docs/design.md), no word of the benchmarks or studies, a config whose every field says what
it is, and documentation of the size the README promises."""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "dmgan"

# docs/design.md's table, top to bottom: a module may import from its own layer or above
LAYERS = [
    ["errors", "fileio", "config", "device", "imageio", "progress", "viz"],
    ["nn", "models"],
    ["data"],
    ["losses"],
    ["checkpoint", "model_folder", "released", "tuning", "export"],
    ["metrics"],
    ["train"],
    ["api", "inference", "pipeline", "generate", "serve"],
    ["arguments", "cli", "info", "__main__", "__init__"],
]


def _layer(module: str) -> int:
    top = module.split(".")[1] if module.count(".") else "__init__"
    for k, names in enumerate(LAYERS):
        if top in names:
            return k
    raise AssertionError(f"{module} is in no layer of docs/design.md")


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def _imports(path: Path, modules: dict[str, Path]) -> set[str]:
    """The dmgan modules a file imports, at any depth (functions included)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("dmgan"):
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                found.add(full if full in modules else node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("dmgan"))
    return {m for m in found if m in modules}


def test_no_import_cycle_and_no_import_from_a_lower_layer():
    modules = _modules()
    # `from dmgan import __version__` reads the package root, which is no layer
    graph = {m: _imports(p, modules) - {m, "dmgan"} for m, p in modules.items()}
    upward = [f"{m} -> {d}" for m, deps in graph.items() for d in deps
              if m != "dmgan" and _layer(d) > _layer(m)]
    assert not upward, upward
    # a cycle: a module that reaches itself
    for start in graph:
        seen, stack = set(), list(graph[start])
        while stack:
            m = stack.pop()
            assert m != start, f"import cycle through {start}"
            if m not in seen:
                seen.add(m)
                stack.extend(graph[m])


def test_the_package_names_no_benchmark_or_study():
    for path in PACKAGE.rglob("*.py"):
        text = path.read_text()
        assert "bench/" not in text and "research/" not in text, path


def test_every_config_field_has_a_description_and_the_reference_page_is_current():
    from dmgan.config import SECTIONS, config_reference, field_descriptions

    for section in SECTIONS.values():
        described = field_descriptions(section)
        missing = [f.name for f in dataclasses.fields(section) if not described.get(f.name)]
        assert not missing, (section.__name__, missing)
    page = (ROOT / "docs" / "configuration.md").read_text()
    assert page.strip() == config_reference().strip(), \
        "docs/configuration.md is stale: dmgan info --config-reference > docs/configuration.md"


def test_readmes_stay_short():
    assert len((ROOT / "README.md").read_text().splitlines()) <= 250
    assert len((ROOT / "bench" / "README.md").read_text().splitlines()) <= 300
