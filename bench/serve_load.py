"""Load on the web server over loopback: N concurrent requests complete (200) or are refused
cleanly (503, queue full); oversized input is refused (413); the server's peak memory.

    python bench/serve_load.py --requests 50 --queue 8

Starts `dmgan serve` (bundled model, or --checkpoint) on 127.0.0.1 at a free port; the
request loop is bounded in count and time and stops by itself.
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path


def _rss_mib(pid: int) -> dict[str, float]:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(("VmRSS:", "VmHWM:")):
            out[line.split(":")[0]] = round(int(line.split()[1]) / 1024, 1)
    return out


def _post(url: str, body: dict, timeout: float = 60.0) -> tuple[int, float]:
    data = json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    t0 = time.perf_counter()
    try:
        with urllib.request.urlopen(req, timeout=timeout) as res:
            res.read()
            return res.status, time.perf_counter() - t0
    except urllib.error.HTTPError as err:
        return err.code, time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--requests", type=int, default=50)
    p.add_argument("--queue", type=int, default=8)
    p.add_argument("--checkpoint")
    p.add_argument("--out")
    args = p.parse_args()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, "-m", "dmgan", "serve", "--port", str(port), "--queue", str(args.queue)]
    if args.checkpoint:
        cmd += ["--checkpoint", args.checkpoint]
    server = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                urllib.request.urlopen(base + "/api/health", timeout=1).read()
                break
            except OSError:
                time.sleep(0.1)
        idle = _rss_mib(server.pid)
        captions = ["a large red circle on a blue background", "a small green box at the top",
                    "a huge yellow triangle on the left and a tiny black disk on the right"]
        bodies = [{"caption": captions[i % 3], "seed": i, "explain": i % 2 == 0}
                  for i in range(args.requests)]
        t0 = time.perf_counter()
        with ThreadPoolExecutor(max_workers=args.requests) as pool:
            results = list(pool.map(lambda b: _post(base + "/api/generate", b), bodies))
        wall = time.perf_counter() - t0
        codes = [c for c, _ in results]
        oversized = [_post(base + "/api/generate", {"caption": "a red disk " * 2000})[0],
                     _post(base + "/api/generate", {"caption": "a red disk", "n": 100})[0]]
        summary = {
            "requests": args.requests, "queue": args.queue, "ok": codes.count(200),
            "refused_busy": codes.count(503),
            "other": sorted(set(codes) - {200, 503}), "wall_s": round(wall, 2),
            "max_latency_s": round(max(t for _, t in results), 2),
            "oversized_status": oversized, "server_rss_idle_mib": idle.get("VmRSS"),
            "server_rss_after_mib": _rss_mib(server.pid).get("VmRSS"),
            "server_peak_rss_mib": _rss_mib(server.pid).get("VmHWM"),
        }
    finally:
        server.terminate()
        server.wait(10)
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from benchlib import machine_record

    summary["machine"] = machine_record(probe=False)
    print(json.dumps(summary))
    if args.out:
        Path(args.out).write_text(json.dumps(summary))
    if summary["other"] or summary["ok"] + summary["refused_busy"] != args.requests:
        raise SystemExit("some requests neither completed nor were refused cleanly")


if __name__ == "__main__":
    main()
