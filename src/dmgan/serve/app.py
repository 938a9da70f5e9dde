"""A small web page and a JSON/PNG HTTP API around the pipeline.

Requests are served one at a time on the model (a lock); at most `queue_size` wait,
further ones get 503 at once, so memory stays bounded under load.
"""

from __future__ import annotations

import base64
import html
import io
import threading
import warnings

from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from dmgan.data.vocab import MAX_CAPTION_CHARS, CaptionError, check_caption_length
from dmgan.errors import DMGANError
from dmgan.pipeline import DMGANPipeline


class GenerateRequest(BaseModel):
    # a misspelt field or a value of another type (0 for false) is a 422, not taken
    model_config = ConfigDict(extra="forbid", strict=True)

    caption: str = Field(..., description="the sentence to draw",
                         examples=["a large red circle on the left on a blue background"])
    seed: int = Field(0, ge=0, le=2**31 - 1, description="image j uses seed + j")
    n: int = Field(1, ge=1, description="images")
    explain: bool = Field(False, description="also the figure of what the memory did")


class GenerateResponse(BaseModel):
    caption: str
    seed: int
    words: list[str] = Field(description="the caption's words the model read, in order")
    unknown_words: list[str]
    max_words: int = Field(description="the most words the model reads")
    dropped_words: int = Field(description="known words left out of a longer caption")
    warnings: list[str] = Field(description="what the pipeline warned about, as the CLI prints")
    images: list[str] = Field(description="PNG data URLs")
    stages: list[list[str]] = Field(description="per image, every stage as a PNG data URL")
    explanation: str | None = Field(None, description="PNG data URL, with explain")


class Problem(BaseModel):
    detail: str


class Health(BaseModel):
    status: str
    preset: str
    vocabulary: int
    image_size: int
    device: str
    layout: str | None


class Words(BaseModel):
    words: list[str] = Field(description="the words this model knows, in its vocabulary's order")


# every error the API answers has one readable line as its detail
ERRORS = {code: {"model": Problem} for code in (400, 413, 422, 503)}


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


def create_app(pipeline: DMGANPipeline, *, max_chars: int = MAX_CAPTION_CHARS, max_images: int = 4,
               queue_size: int = 8) -> FastAPI:
    # FastAPI's own /docs and /redoc load scripts from a CDN, which fails offline: /docs is
    # a plain page written from the schema here (the schema is at /openapi.json)
    app = FastAPI(title="dmgan", description="DM-GAN text-to-image", docs_url=None,
                  redoc_url=None)
    # a caption of max_chars characters (up to 4 bytes each in UTF-8) and the other fields
    app.add_middleware(_BodyLimit, limit=4 * max_chars + 4096)
    gate = _Gate(queue_size)
    max_words = pipeline.model.config.text.words_eval

    @app.exception_handler(RequestValidationError)
    async def readable(request: Request, exc: RequestValidationError) -> JSONResponse:
        """422 with one readable line ("seed: ...") instead of a list of objects."""
        parts = [f"{err['loc'][-1]}: {err['msg']}" for err in exc.errors()]
        return JSONResponse({"detail": "; ".join(parts) or "invalid request"}, status_code=422)

    def check(caption: str, n: int) -> None:
        if not caption.strip():
            raise HTTPException(400, "the caption is empty")
        try:
            check_caption_length(caption, max_chars)
        except CaptionError as exc:
            raise HTTPException(413, str(exc)) from None
        if n > max_images:
            raise HTTPException(413, f"at most {max_images} images per request")

    def generate(req: GenerateRequest):
        """(the pipeline's output, its warnings)"""
        check(req.caption, req.n)

        def work():
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                out = pipeline(req.caption, seed=req.seed, num_images=req.n, explain=req.explain)
            return out, list(dict.fromkeys(str(w.message) for w in caught))

        try:
            return gate.run(work)
        except CaptionError as exc:
            said = str(exc).replace("; dmgan info --checkpoint MODEL lists the vocabulary", "")
            if "known word" in said or "vocabulary" in said:
                said += "; the words this model knows are on the page and at /api/vocabulary"
            raise HTTPException(400, said) from None
        except DMGANError as exc:
            raise HTTPException(400, str(exc)) from None

    known = pipeline.vocab.words[1:]  # index 0 is the padding token

    @app.get("/", response_class=HTMLResponse)
    def page() -> str:
        return (PAGE.replace("{{MAX}}", str(max_chars)).replace("{{SEED_MAX}}", str(2**31 - 1))
                .replace("{{COUNT}}", str(len(known)))
                .replace("{{WORDS}}", html.escape(" ".join(known))))

    @app.get("/docs", response_class=HTMLResponse, include_in_schema=False)
    def docs() -> str:
        return api_reference(app.openapi())

    icon = _favicon()

    @app.get("/favicon.ico", include_in_schema=False)
    def favicon() -> Response:
        return Response(icon, media_type="image/png",
                        headers={"Cache-Control": "public, max-age=86400"})

    @app.post("/api/generate", response_model=GenerateResponse, responses=ERRORS,
              summary="draw a caption")
    async def api_generate(req: GenerateRequest) -> dict:
        out, said = await run_in_threadpool(generate, req)
        body = {"caption": req.caption, "seed": req.seed, "words": out.words[0],
                "unknown_words": out.unknown_words[0], "max_words": max_words,
                "dropped_words": out.dropped_words[0], "warnings": said,
                "images": [_data_url(i) for i in out.images],
                "stages": [[_data_url(s) for s in stages] for stages in out.stage_images]}
        if req.explain:
            from dmgan.viz import explanation_figure

            body["explanation"] = _data_url(explanation_figure(  # the page shows the stages
                req.caption, out.stage_images[0], out.words[0], out.attention[0],
                out.writing_gates[0], out.response_gates[0], show_stages=False))
        return body

    @app.get("/api/image.png", response_class=Response, summary="one image as a PNG",
             responses={200: {"content": {"image/png": {}}}} | ERRORS)
    async def api_image(caption: str = Query(..., description="the sentence to draw",
                                             examples=["a small green square at the top"]),
                        seed: int = Query(0, ge=0, le=2**31 - 1)) -> Response:
        out, _ = await run_in_threadpool(generate, GenerateRequest(caption=caption, seed=seed))
        return Response(_png(out.images[0]), media_type="image/png")

    @app.get("/api/vocabulary", response_model=Words, summary="the words this model knows")
    def vocabulary() -> dict:
        return {"words": known}

    @app.get("/api/health", response_model=Health, summary="the model and device served")
    def health() -> dict:
        cfg = pipeline.model.config
        return {"status": "ok", "preset": cfg.name, "vocabulary": len(pipeline.vocab),
                "image_size": cfg.generator.image_sizes[-1], "device": str(pipeline.device),
                "layout": getattr(pipeline.model, "layout", None)}

    return app


def api_reference(schema: dict) -> str:
    """/docs: the API's operations, parameters, bodies and answers, from its OpenAPI schema,
    as one page with no script (FastAPI's Swagger page loads its scripts from a CDN)."""
    parts = {}
    for name, model in schema.get("components", {}).get("schemas", {}).items():
        rows = "".join(
            f"<tr><td><code>{html.escape(f)}</code></td><td>{html.escape(_type(p))}</td>"
            f"<td>{'required' if f in model.get('required', []) else 'optional'}</td>"
            f"<td>{html.escape(p.get('description', ''))}</td></tr>"
            for f, p in model.get("properties", {}).items())
        parts[name] = f"<table><tr><th>field</th><th>type</th><th></th><th></th></tr>{rows}</table>"
    out = [f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>"
           f"{html.escape(schema['info']['title'])} API</title><style>body{{font-family:sans-serif;"
           f"margin:1em;max-width:60em}}td,th{{text-align:left;padding:.1em .6em}}</style></head>"
           f"<body><h1>{html.escape(schema['info']['title'])} API</h1><p>The machine-readable "
           f"schema: <a href='/openapi.json'>/openapi.json</a>.</p>"]
    for path, ops in schema.get("paths", {}).items():
        for method, op in ops.items():
            out.append(f"<h2><code>{method.upper()} {html.escape(path)}</code></h2>"
                       f"<p>{html.escape(op.get('summary', ''))}</p>")
            params = op.get("parameters", [])
            if params:
                out.append("<p>query:</p><table>" + "".join(
                    f"<tr><td><code>{html.escape(q['name'])}</code></td>"
                    f"<td>{html.escape(_type(q.get('schema', {})))}</td>"
                    f"<td>{'required' if q.get('required') else 'optional'}</td></tr>"
                    for q in params) + "</table>")
            body = op.get("requestBody", {}).get("content", {}).get("application/json")
            if body:
                name = body["schema"].get("$ref", "").rsplit("/", 1)[-1]
                out.append(f"<p>JSON body ({html.escape(name)}; other fields are refused):</p>"
                           f"{parts.get(name, '')}")
            for code, answer in op.get("responses", {}).items():
                content = answer.get("content", {})
                ref = next((c.get("schema", {}).get("$ref", "") for c in content.values()), "")
                kind = ref.rsplit("/", 1)[-1] or ", ".join(content) or "empty"
                out.append(f"<p><b>{code}</b> {html.escape(answer.get('description', ''))}: "
                           f"{html.escape(kind)}</p>")
                if ref and code.startswith("2"):
                    out.append(parts.get(kind, ""))
    return "\n".join(out) + "</body></html>"


def _type(prop: dict) -> str:
    if "anyOf" in prop:
        return " or ".join(_type(p) for p in prop["anyOf"])
    if prop.get("type") == "array":
        return f"list of {_type(prop.get('items', {}))}"
    bounds = [f"{k} {prop[k]}" for k in ("minimum", "maximum") if k in prop]
    return prop.get("type", prop.get("$ref", "").rsplit("/", 1)[-1] or "any") + (
        f" ({', '.join(bounds)})" if bounds else "")


def _favicon() -> bytes:
    """A 32 px icon drawn here (a red circle on blue, the demo's first caption)."""
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (32, 32), (40, 80, 220))
    ImageDraw.Draw(img).ellipse((6, 6, 26, 26), fill=(220, 40, 40))
    return _png(img)


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>dmgan</title>
<link rel="icon" href="/favicon.ico">
<style>
 * { box-sizing: border-box; }
 body { font-family: sans-serif; margin: 1em; max-width: 1500px; line-height: 1.4; }
 h1 { font-size: 1.4em; }
 form { display: flex; flex-wrap: wrap; gap: .5em; align-items: center; }
 #caption { flex: 1 1 20em; min-width: 0; max-width: 40em; font-size: 1.05em; padding: .35em; }
 #seed { width: 8em; padding: .3em; }
 button { padding: .4em 1.2em; font-size: 1em; }
 button:disabled { opacity: .6; }
 #count { color: #555; font-size: .9em; width: 100%; }
 #count.over, #notice, #error { color: #b00020; }
 #status { color: #555; }
 #stages { display: flex; flex-wrap: wrap; gap: 8px; margin-top: .5em; }
 #stages figure { margin: 0; text-align: center; font-size: .85em; color: #555; }
 #stages img { width: min(192px, 28vw); height: auto; aspect-ratio: 1; image-rendering: pixelated;
               border: 1px solid #ccc; display: block; }
 #figure { overflow-x: auto; max-width: 100%; margin-top: 1em; border: 1px solid #ccc; }
 #explanation { display: block; max-width: none; }
 .spinner { display: inline-block; width: 1em; height: 1em; border: 2px solid #ccc;
            border-top-color: #333; border-radius: 50%; animation: spin 1s linear infinite;
            vertical-align: middle; }
 @keyframes spin { to { transform: rotate(360deg); } }
</style></head>
<body>
<h1>dmgan: text to image</h1>
<form id="form" novalidate>
 <input id="caption" type="text" aria-label="caption"
        value="a large red circle on a blue background">
 <label>seed <input id="seed" type="number" value="0" min="0" max="{{SEED_MAX}}" step="1"></label>
 <button id="go" type="submit">Generate</button>
 <span id="count"></span>
</form>
<p id="status" role="status"></p>
<p id="error" role="alert"></p><p id="notice"></p><p id="words"></p>
<div id="stages"></div>
<p id="download"></p>
<div id="figure" hidden><img id="explanation" alt="what the memory wrote and read"></div>
<details id="vocabulary"><summary>The words this model knows ({{COUNT}})</summary>
<p id="known">{{WORDS}}</p></details>
<p><a href="/docs">The HTTP API</a></p>
<script>
const MAX = {{MAX}}, SEED_MAX = {{SEED_MAX}};
const $ = (id) => document.getElementById(id);
const caption = $('caption'), seed = $('seed'), go = $('go');
function counter() {
  const n = caption.value.length;
  $('count').textContent = n + ' / ' + MAX + ' characters' +
      (n > MAX ? ': too long, shorten the caption (nothing is cut)' : '');
  $('count').className = n > MAX ? 'over' : '';
}
caption.addEventListener('input', counter); counter();
function clearResults() {
  ['error', 'notice', 'words', 'download'].forEach((id) => { $(id).textContent = ''; });
  $('stages').innerHTML = ''; $('figure').hidden = true; $('explanation').removeAttribute('src');
}
function message(status, data) {
  let detail = data && data.detail;
  if (Array.isArray(detail)) detail = detail.map((d) => d.msg || JSON.stringify(d)).join('; ');
  if (typeof detail !== 'string' || !detail) detail = '';
  const what = {400: 'The caption cannot be drawn', 413: 'The request is too large',
                422: 'The request is not valid', 429: 'Too many requests',
                503: 'The server is busy', 500: 'The server failed'}[status] || ('Error ' + status);
  return what + (detail ? ': ' + detail : '') + '.';
}
$('form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  clearResults();
  const text = caption.value, s = seed.value.trim();
  if (!text.trim()) { $('error').textContent = 'Type a caption first.'; return; }
  if (text.length > MAX) {
    $('error').textContent = 'The caption has ' + text.length + ' characters; the limit is ' +
        MAX + '. Shorten it: nothing is cut.'; return; }
  if (!/^[0-9]+$/.test(s) || Number(s) > SEED_MAX) {
    $('error').textContent = 'The seed must be a whole number from 0 to ' + SEED_MAX + '.'; return; }
  go.disabled = true;
  $('status').innerHTML = '<span class="spinner"></span> Generating\u2026';
  try {
    const res = await fetch('/api/generate', {method: 'POST',
        headers: {'Content-Type': 'application/json'},
        body: JSON.stringify({caption: text, seed: Number(s), explain: true})});
    let data = null;
    try { data = await res.json(); } catch (e) { data = null; }
    if (!res.ok || !data) { $('error').textContent = message(res.status, data); return; }
    data.stages[0].forEach((src, k) => {
      const fig = document.createElement('figure'), img = document.createElement('img');
      img.src = src; img.className = 'stage'; img.alt = 'stage ' + (k + 1);
      fig.appendChild(img);
      fig.appendChild(document.createTextNode('stage ' + (k + 1)));
      $('stages').appendChild(fig); });
    const link = document.createElement('a');
    link.href = data.images[0]; link.download = 'dmgan-seed' + data.seed + '.png';
    link.id = 'save'; link.textContent = 'Download the image (PNG)';
    $('download').appendChild(link);
    $('words').textContent = 'words used: ' + data.words.join(' ');
    $('notice').textContent = data.warnings.map((w) => 'Note: ' + w + '.').join(' ');
    $('explanation').src = data.explanation; $('figure').hidden = false;
  } catch (e) {
    $('error').textContent = 'The server could not be reached (' + e.message + ').';
  } finally {
    go.disabled = false; $('status').textContent = '';
  }
});
</script>
</body></html>
"""
