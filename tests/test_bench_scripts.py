"""The benchmark and study scripts stay runnable as the package changes: every name they
import from dmgan exists, and the two step benchmarks run on the tiny preset."""

from __future__ import annotations

import ast
import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = sorted([*ROOT.glob("bench/*.py"), *ROOT.glob("research/**/*.py")])


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_name_a_script_imports_from_dmgan_exists(script):
    for node in ast.walk(ast.parse(script.read_text())):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "dmgan":
            module = importlib.import_module(node.module)
            for alias in node.names:
                assert hasattr(module, alias.name) or importlib.util.find_spec(
                    f"{node.module}.{alias.name}") is not None, \
                    f"{script.name}: {node.module} has no {alias.name}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "dmgan":
                    importlib.import_module(alias.name)


@pytest.mark.parametrize("command", [
    ["bench/generator_forward.py", "--preset", "tiny", "--batch", "1", "--repeats", "1",
     "--layouts", "channels_last+fold"],
    ["bench/train_step.py", "--preset", "tiny", "--batch", "4", "--repeats", "1"],
], ids=["generator_forward", "train_step"])
def test_the_step_benchmarks_run_on_the_tiny_preset(command):
    out = subprocess.run([sys.executable, *command], cwd=ROOT, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    rows = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    assert rows and all(row["median_s"] > 0 for row in rows)
