"""Load test of `quickfit serve` on this machine only (loopback): 500 requests from 32 concurrent clients
on an image classifier at 224 px, with dynamic batching and without, against a loop of `learn.predict` in
one process. Prints throughput, p50 / p99 latency, failed requests and the server's memory before / after.

    .venv/bin/python benchmarks/serve_load.py [--requests 500] [--clients 32] [--threads 2]

The model is efficientnet_lite0 (ImageNet weights from its pip package, a 2-class head: speed does not
depend on what it learned), exported and served by the real command as a subprocess. The photos are
hymenoptera's validation images when ../shared/data has them (else generated 500x375 JPEGs). Everything
is bounded: a request gives up after 60 s; the loop stops after `--loop-seconds`, a server run after
`--run-seconds` (requests not sent by then are counted apart, as "not sent", never as served).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def photos(tmp: Path, n: int = 40) -> list[Path]:
    from tests.conftest import shared_data

    val = shared_data() / "hymenoptera" / "hymenoptera_data" / "val"
    found = sorted(val.glob("*/*.jpg"))[:n] if val.is_dir() else []
    if found:
        return found
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        f = tmp / f"photo{i}.jpg"
        Image.fromarray(rng.integers(0, 255, (375, 500, 3), dtype=np.uint8)).save(f, quality=90)
        out.append(f)
    return out


def export_classifier(tmp: Path, files: list[Path]) -> Path:
    import quickfit as qf
    from quickfit.vision import ImageDataLoaders, Resize, vision_learner

    labels = ["a", "b"] * (len(files) // 2)
    dls = ImageDataLoaders.from_lists(tmp, files[: len(labels)], labels, valid_idx=[0, 1], item_tfms=Resize(224))
    qf.set_seed(0)
    learn = vision_learner(dls, "efficientnet_lite0", path=tmp, progress=False)
    return learn.export(tmp / "classifier.qf")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def summary(name: str, latencies: list[float], failed: int, seconds: float, extra: str = "", unsent: int = 0) -> dict:
    lat = sorted(latencies)
    p = lambda q: 1000 * lat[min(len(lat) - 1, int(q * len(lat)))] if lat else float("nan")
    n = len(latencies) + failed
    row = {"name": name, "rps": len(latencies) / seconds, "p50": p(0.50), "p99": p(0.99),
           "failed": failed / max(1, n), "extra": extra}  # fmt: skip
    print(f"| {name} | {len(latencies)} | {row['rps']:.2f} | {row['p50']:.0f} | {row['p99']:.0f} | "
          f"{failed} ({100 * row['failed']:.1f}%) | {unsent} | {extra} |", flush=True)  # fmt: skip
    return row


def predict_loop(model: Path, files: list[Path], n: int, threads: int, seconds: float) -> dict:
    import torch

    import quickfit as qf

    torch.set_num_threads(threads)
    learn = qf.load_learner(model)
    learn.predict(files[0])
    lat = []
    start = time.perf_counter()
    for i in range(n):
        if time.perf_counter() - start > seconds:
            break
        t = time.perf_counter()
        learn.predict(files[i % len(files)])
        lat.append(time.perf_counter() - t)
    return summary("learn.predict loop, 1 process", lat, 0, time.perf_counter() - start, "", n - len(lat))


def load(model: Path, files: list[Path], n: int, clients: int, threads: int, max_batch: int, tmp: Path,
         seconds: float) -> dict:  # fmt: skip
    import httpx

    from tests.serve.browser import free_port, wait_healthy

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    cmd = [sys.executable, "-m", "quickfit.cli", "serve", str(model), "--port", str(port), "--threads", str(threads),
           "--max-batch", str(max_batch), "--max-wait-ms", "10"]  # fmt: skip
    log = open(tmp / f"server-{max_batch}.log", "w")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        wait_healthy(url, proc=None)
        bodies = [f.read_bytes() for f in files]
        with httpx.Client(timeout=60) as c:  # warm-up, then memory before
            for b in bodies[:4]:
                c.post(url + "/predict", files={"file": ("p.jpg", b, "image/jpeg")}).raise_for_status()
        before = rss_mb(proc.pid)
        deadline = time.monotonic() + seconds

        def one(i: int) -> float | str | None:
            if time.monotonic() > deadline:
                return "unsent"
            t = time.perf_counter()
            try:
                r = client.post(url + "/predict", files={"file": ("p.jpg", bodies[i % len(bodies)], "image/jpeg")})
                return time.perf_counter() - t if r.status_code == 200 else None
            except httpx.HTTPError:
                return None

        limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
        with httpx.Client(timeout=60, limits=limits) as client, ThreadPoolExecutor(clients) as pool:
            start = time.perf_counter()
            results = list(pool.map(one, range(n)))
            took = time.perf_counter() - start
        with httpx.Client(timeout=10) as c:
            health = c.get(url + "/health").json()
        after = rss_mb(proc.pid)
        lat = [r for r in results if isinstance(r, float)]
        unsent = sum(r == "unsent" for r in results)
        failed = sum(r is None for r in results)
        mean_batch = health["items"] / max(1, health["batches"])
        name = f"serve --max-batch {max_batch}" + (" (no batching)" if max_batch == 1 else "")
        extra = f"mean batch {mean_batch:.1f}; server RSS {before:.0f} -> {after:.0f} MB"
        return summary(name, lat, failed, took, extra, unsent)
    finally:
        proc.terminate()
        proc.wait(15)
        log.close()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--requests", type=int, default=500)
    p.add_argument("--clients", type=int, default=32)
    p.add_argument("--threads", type=int, default=2, help="torch threads, in the server and the loop")
    p.add_argument("--loop-seconds", type=float, default=120, help="bound of the learn.predict loop")
    p.add_argument("--run-seconds", type=float, default=480, help="bound of each server run")
    args = p.parse_args()
    print(f"uptime: {subprocess.run(['uptime'], capture_output=True, text=True).stdout.strip()}")
    print(f"CPUs: {os.cpu_count()}; {args.requests} requests, {args.clients} clients, {args.threads} torch threads")
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        files = photos(tmp)
        model = export_classifier(tmp, files)
        size = Image.open(files[0]).size
        print(f"{len(files)} photos, e.g. {files[0].name} {size}; model {model.stat().st_size / 2**20:.1f} MB")
        print("| run | served | req/s | p50 ms | p99 ms | failed | not sent | |\n|---|---|---|---|---|---|---|---|")
        predict_loop(model, files, args.requests, args.threads, args.loop_seconds)
        load(model, files, args.requests, args.clients, args.threads, 16, tmp, args.run_seconds)
        load(model, files, args.requests, args.clients, args.threads, 1, tmp, args.run_seconds)
    print(f"uptime: {subprocess.run(['uptime'], capture_output=True, text=True).stdout.strip()}")


if __name__ == "__main__":
    main()
