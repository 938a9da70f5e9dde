"""Shared fixtures: the reference vectors of the released implementation and their weights."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

try:  # property tests: no per-example time limit (a loaded 2-core machine misses 200 ms)
    from hypothesis import settings as _hypothesis_settings

    _hypothesis_settings.register_profile("dmgan", deadline=None)
    _hypothesis_settings.load_profile("dmgan")
except ImportError:
    pass

DATA = Path(__file__).parent / "data"
REFERENCE = DATA / "reference"
SMALL = REFERENCE / "small"


def formula_state_dict(shapes: dict[str, list[int]]) -> dict[str, torch.Tensor]:
    """The deterministic weights of reference/README.md, from a {key: shape} listing."""
    out = {}
    for idx, key in enumerate(sorted(shapes)):
        shape = tuple(shapes[key])
        n = int(np.prod(shape)) if shape else 1
        base = np.sin(np.arange(n, dtype=np.float64) * 0.7 + idx)
        if key.endswith("num_batches_tracked"):
            out[key] = torch.zeros((), dtype=torch.long)
            continue
        if key.endswith("running_var"):
            value = 1.0 + 0.5 * np.abs(base)
        elif key.endswith("running_mean"):
            value = 0.1 * base
        elif len(shape) >= 2:
            value = base * 2.0 / np.sqrt(n / shape[0])
        elif key.endswith("bias"):
            value = 0.01 * base
        else:
            value = 1.0 + 0.1 * base
        out[key] = torch.from_numpy(value.reshape(shape).astype(np.float32))
    return out


def official_shapes(name: str) -> dict[str, dict[str, list[int]]]:
    return json.loads((REFERENCE / "official_shapes" / f"{name}.json").read_text())


@pytest.fixture(scope="session")
def vectors() -> dict[str, np.ndarray]:
    with np.load(SMALL / "vectors.npz") as data:
        return {k: data[k] for k in data.files}


def t(array) -> torch.Tensor:
    return torch.from_numpy(np.asarray(array))


def assert_close(actual: torch.Tensor, expected, *, name: str = "") -> None:
    """The reference tolerance: 1e-4 relative / 1e-5 absolute (float32)."""
    expected = torch.as_tensor(np.asarray(expected)).float()
    actual = actual.detach().float().reshape(expected.shape)
    torch.testing.assert_close(actual, expected, rtol=1e-4, atol=1e-5, msg=lambda m: f"{name}: {m}")


@pytest.fixture(autouse=True, scope="session")
def _probe_cache(tmp_path_factory):
    """The machine probes (dmgan.tuning) cache into a folder of this test session, not ~."""
    import os

    os.environ["DMGAN_CACHE"] = str(tmp_path_factory.mktemp("dmgan-cache"))
