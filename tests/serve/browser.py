"""A live `quickfit serve` for the browser test, the load benchmark and the docs' screenshots: the command as
a subprocess (or the app in a thread of this process, for models on an architecture registered here), and
the system's headless Chromium driven by selenium."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(url: str, timeout: float = 90.0, proc: subprocess.Popen | None = None) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"quickfit serve exited with status {proc.returncode}:\n{proc.stdout.read()}")
        try:
            with urllib.request.urlopen(url + "/health", timeout=2) as r:
                return json.loads(r.read())
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"no answer from {url}/health in {timeout:.0f} s") from None
            time.sleep(0.3)


@contextlib.contextmanager
def serve_process(model: Path, *options: str, cwd: Path | None = None) -> Iterator[str]:
    """`quickfit serve MODEL OPTIONS` on a free loopback port; yields its URL, stops it after."""
    port = free_port()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "quickfit.cli", "serve", str(model), "--port", str(port), *options]
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, proc=proc)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def serve_in_thread(app) -> Iterator[str]:
    """The ASGI `app` under uvicorn in a thread of this process, on a free loopback port."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, timeout=30)
        yield url
    finally:
        server.should_exit = True
        thread.join(10)


def chromium_missing() -> str | None:
    """Why the browser test cannot run here, or None."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[dev]')"
    for exe in (CHROMIUM, CHROMEDRIVER):
        if not Path(exe).exists() and shutil.which(Path(exe).name) is None:
            return f"{exe} is missing: apt-get install chromium chromium-driver (.ci/run does it)"
    return None


def chromium(width: int = 900, height: int = 1000):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium")
    # --no-sandbox: CI runs as root, where Chromium's sandbox refuses to start
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        opts.add_argument(arg)
    opts.add_argument(f"--window-size={width},{height}")
    driver_path = CHROMEDRIVER if Path(CHROMEDRIVER).exists() else shutil.which("chromedriver")
    return webdriver.Chrome(service=Service(driver_path), options=opts)


def wait_for(driver, css: str, timeout: float = 60.0, text: bool = False):
    """The element `css` once it is on the page (and, with `text`, once it shows some text)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    def ready(d):
        found = d.find_elements(By.CSS_SELECTOR, css)
        return found[0] if found and (not text or found[0].text.strip()) else False

    return WebDriverWait(driver, timeout).until(ready)


def fit_page(driver) -> None:
    """Make the window as tall as the page, for a screenshot of all of it."""
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(900, max(400, min(2000, height + 20)))
