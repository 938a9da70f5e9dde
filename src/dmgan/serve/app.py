"""A small web page and a JSON/PNG HTTP API around the pipeline.

Requests are served one at a time on the model (a lock); at most `queue_size` wait,
further ones get 503 at once, so memory stays bounded under load.
"""

from __future__ import annotations

import base64
import io
import threading
import warnings

from fastapi import FastAPI, HTTPException, Query
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel, Field

from dmgan.data.vocab import CaptionError
from dmgan.errors import DMGANError
from dmgan.pipeline import DMGANPipeline


class GenerateRequest(BaseModel):
    caption: str = Field(..., description="the sentence to draw")
    seed: int = Field(0, ge=0, le=2**31 - 1)
    n: int = Field(1, ge=1, description="images")
    explain: bool = False


def _png(img) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def _data_url(img) -> str:
    return "data:image/png;base64," + base64.b64encode(_png(img)).decode()


class _Gate:
    """One request on the model at a time; a bounded number waiting."""

    def __init__(self, queue_size: int):
        self.lock = threading.Lock()
        self.slots = threading.BoundedSemaphore(queue_size + 1)

    def run(self, fn):
        if not self.slots.acquire(blocking=False):
            raise HTTPException(503, "the server is busy; try again shortly")
        try:
            with self.lock:
                return fn()
        finally:
            self.slots.release()


class _BodyLimit:
    """ASGI middleware: a request body over `limit` bytes gets 413 without being read in
    full (by its Content-Length, or while it streams in when it has none). Bodies within
    the limit are buffered (a few KB) and handed on unchanged."""

    def __init__(self, app, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.limit):
            return await self._refuse(send)
        if scope.get("method") not in ("POST", "PUT", "PATCH"):
            return await self.app(scope, receive, send)
        messages, seen = [], 0
        while True:
            message = await receive()
            messages.append(message)
            seen += len(message.get("body", b""))
            if seen > self.limit:
                return await self._refuse(send)
            if message["type"] != "http.request" or not message.get("more_body"):
                break
        replay = iter(messages)

        async def buffered():
            return next(replay, None) or await receive()

        await self.app(scope, buffered, send)

    async def _refuse(self, send):
        body = b'{"detail":"the request body is too large"}'
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})


def create_app(pipeline: DMGANPipeline, *, max_chars: int = 300, max_images: int = 4,
               queue_size: int = 8) -> FastAPI:
    # no /docs or /redoc: their pages load scripts from a CDN, which fails offline
    # (the schema stays at /openapi.json)
    app = FastAPI(title="dmgan", description="DM-GAN text-to-image", docs_url=None,
                  redoc_url=None)
    # a caption of max_chars characters (up to 4 bytes each in UTF-8) and the other fields
    app.add_middleware(_BodyLimit, limit=4 * max_chars + 4096)
    gate = _Gate(queue_size)

    def check(caption: str, n: int) -> None:
        if not caption.strip():
            raise HTTPException(400, "the caption is empty")
        if len(caption) > max_chars:
            raise HTTPException(413, f"the caption is longer than {max_chars} characters")
        if n > max_images:
            raise HTTPException(413, f"at most {max_images} images per request")

    def generate(req: GenerateRequest):
        check(req.caption, req.n)

        def work():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return pipeline(req.caption, seed=req.seed, num_images=req.n, explain=req.explain)

        try:
            return gate.run(work)
        except CaptionError as exc:
            raise HTTPException(400, str(exc)) from None
        except DMGANError as exc:
            raise HTTPException(400, str(exc)) from None

    @app.get("/", response_class=HTMLResponse)
    def page() -> str:
        return PAGE.replace("{{MAX}}", str(max_chars))

    @app.post("/api/generate")
    async def api_generate(req: GenerateRequest) -> dict:
        out = await run_in_threadpool(generate, req)
        body = {"caption": req.caption, "seed": req.seed, "words": out.words[0],
                "unknown_words": out.unknown_words[0],
                "images": [_data_url(i) for i in out.images],
                "stages": [[_data_url(s) for s in stages] for stages in out.stage_images]}
        if req.explain:
            from dmgan.viz import explanation_figure

            body["explanation"] = _data_url(explanation_figure(
                req.caption, out.stage_images[0], out.words[0], out.attention[0],
                out.writing_gates[0], out.response_gates[0]))
        return body

    @app.get("/api/image.png")
    async def api_image(caption: str = Query(..., max_length=10_000),
                        seed: int = Query(0, ge=0, le=2**31 - 1)) -> Response:
        out = await run_in_threadpool(generate, GenerateRequest(caption=caption, seed=seed))
        return Response(_png(out.images[0]), media_type="image/png")

    @app.get("/api/health")
    def health() -> dict:
        cfg = pipeline.model.config
        return {"status": "ok", "preset": cfg.name, "vocabulary": len(pipeline.vocab),
                "image_size": cfg.generator.image_sizes[-1]}

    return app


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>dmgan</title>
<style>
 body { font-family: sans-serif; margin: 2em; max-width: 1500px; }
 input[type=text] { width: 34em; font-size: 1.05em; padding: .3em; }
 input[type=number] { width: 6em; }
 #stages img { width: 192px; height: 192px; image-rendering: pixelated; margin-right: 8px;
               border: 1px solid #ccc; }
 #explanation { max-width: 100%; margin-top: 1em; border: 1px solid #ccc; }
 #error { color: #b00020; }
</style></head>
<body>
<h1>dmgan: text to image</h1>
<form id="form">
 <input id="caption" type="text" maxlength="{{MAX}}" value="a large red circle on a blue background">
 seed <input id="seed" type="number" value="0" min="0">
 <button id="go" type="submit">Generate</button>
</form>
<p id="error"></p><p id="words"></p>
<div id="stages"></div>
<img id="explanation" alt="" hidden>
<script>
document.getElementById('form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const err = document.getElementById('error'); err.textContent = '';
  const body = {caption: document.getElementById('caption').value,
                seed: parseInt(document.getElementById('seed').value || '0'), explain: true};
  const res = await fetch('/api/generate', {method: 'POST',
      headers: {'Content-Type': 'application/json'}, body: JSON.stringify(body)});
  const data = await res.json();
  if (!res.ok) { err.textContent = data.detail || res.statusText; return; }
  const stages = document.getElementById('stages'); stages.innerHTML = '';
  data.stages[0].forEach((src, k) => { const img = document.createElement('img');
      img.src = src; img.className = 'stage'; img.alt = 'stage ' + (k + 1); stages.appendChild(img); });
  document.getElementById('words').textContent = 'words used: ' + data.words.join(' ') +
      (data.unknown_words.length ? '  (unknown: ' + data.unknown_words.join(', ') + ')' : '');
  const ex = document.getElementById('explanation'); ex.src = data.explanation; ex.hidden = false;
});
</script>
</body></html>
"""
