"""The whole HTTP API fuzzed from its own OpenAPI schema (schemathesis): no 5xx, every
answer's status, content type and body as the schema says, requests the schema rejects
refused, bounded in count and time, in process (no socket).

One check is left out: "schema-valid data is accepted". A caption is any string to the
schema, and the API refuses one with no word the model knows (400) or over the length limit
(413), as it should."""

from __future__ import annotations

import pytest
import torch

schemathesis = pytest.importorskip("schemathesis")
pytest.importorskip("fastapi")

from hypothesis import HealthCheck, settings  # noqa: E402

from dmgan import DMGAN, preset  # noqa: E402
from dmgan.data.shapes import caption_needs, vocabulary, world_reads  # noqa: E402
from dmgan.pipeline import DMGANPipeline  # noqa: E402
from dmgan.serve.app import create_app  # noqa: E402


def _app(tmp):
    torch.manual_seed(0)
    cfg = preset("tiny")
    path = tmp / "tiny.pt"
    DMGAN(cfg, vocab=vocabulary().words[:cfg.text.vocab_size],
          reads={"needs": caption_needs(cfg), "world": world_reads()}).save(path)
    return create_app(DMGANPipeline.from_pretrained(path), max_images=2, queue_size=2)


def _schema():
    import tempfile
    from pathlib import Path

    loaded = schemathesis.openapi.from_asgi("/openapi.json", _app(Path(tempfile.mkdtemp())))
    loaded.config.generation.update(modes=["positive", "negative"])  # and requests it refuses
    return loaded


schema = _schema()


@schema.parametrize()
@settings(max_examples=40, deadline=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
def test_the_api_answers_as_its_schema_says(case):
    from schemathesis.specs.openapi.checks import positive_data_acceptance

    case.call_and_validate(excluded_checks=[positive_data_acceptance])
