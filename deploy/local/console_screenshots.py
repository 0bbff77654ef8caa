"""The README's console screenshots, taken from what ``make run`` serves.

Starts ``deploy/local/run.py`` on free ports in a scratch directory, starts a rollout of a
slower canary on the example channel (a second release whose model the fake provider is told
to answer 150 ms late), sends some traffic, signs in to ``/console`` with the
run's admin token in headless Chromium (Debian's, through its chromedriver) and saves the
channels page and the channel page. Run: ``.venv/bin/python deploy/local/console_screenshots.py [--out docs]``.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import yaml
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

from gateway.embedded_redis import free_port

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
CHANNEL = "support-bot-prod"
CANARY_MODEL = "fake-chat-2024-09-01"
REQUESTS = 80
SHOTS = {"console-channels.png": (1280, 560), "console-channel.png": (1280, 1300)}


def chromium() -> webdriver.Chrome:
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service("/usr/bin/chromedriver"))
    driver.implicitly_wait(10)  # an element looked for after a click waits for the new page
    return driver


@contextlib.contextmanager
def make_run(run_dir: Path) -> Iterator[tuple[str, int]]:
    """``make run``'s script on free ports: the gateway's URL and the fake provider's port."""
    port, fake_port = free_port(), free_port()
    process = subprocess.Popen(
        [sys.executable, str(HERE / "run.py"), "--port", str(port), "--run-dir", str(run_dir),
         "--redis-port", str(free_port()), "--fake-port", str(fake_port)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=ROOT,
    )  # fmt: skip
    assert process.stdout is not None
    try:
        for line in process.stdout:  # printed once the gateway has started
            if "Ctrl-C stops" in line:
                break
        else:
            raise SystemExit(f"make run's script exited early ({process.wait()})")
        # The gateway goes on logging a JSON line per request to that pipe: read it, or once
        # the pipe's buffer is full the gateway blocks writing its log and answers nothing.
        threading.Thread(target=process.stdout.read, daemon=True).start()
        yield f"http://127.0.0.1:{port}", fake_port
    finally:
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=30)


def slower_canary(url: str, fake_port: int, token: str, app_key: str) -> None:
    """A rollout's canary at 20% whose model the fake answers slowly, and traffic through
    both."""
    admin = {"Authorization": f"Bearer {token}"}
    spec = yaml.safe_load((HERE / "example-release.yaml").read_text())
    spec["model"]["id"] = CANARY_MODEL
    spec["notes"] = "a newer model snapshot"
    with httpx.Client(base_url=url, timeout=10) as client:
        release = client.post("/admin/releases", json=spec, headers=admin).json()["id"]
        rollout = {"canary": release, "steps": [20, 50], "interval": 300,
                   "reason": "trying the newer snapshot"}  # fmt: skip
        client.put(f"/admin/channels/{CHANNEL}/rollout", json=rollout, headers=admin)
        # Slower, not failing: a canary model answering 503 ejects the provider both releases
        # share (its circuit), and the stable's answers would fail with it.
        fake = f"http://127.0.0.1:{fake_port}/_fake/behaviour"
        httpx.put(fake, json={"model": CANARY_MODEL, "delay": 0.15}).raise_for_status()
        body = {"model": CHANNEL, "messages": [{"role": "user", "content": "Hi"}]}
        for _ in range(REQUESTS):
            client.post(
                "/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {app_key}"}
            )


def take(driver: webdriver.Chrome, url: str, token: str, out: Path) -> list[Path]:
    driver.set_window_size(*SHOTS["console-channels.png"])
    driver.get(f"{url}/console/sign-in")
    driver.find_element(By.ID, "key").send_keys(token)
    driver.find_element(By.ID, "sign-in").click()
    driver.find_element(By.ID, "channels")  # the channels page is shown
    out.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(out / "console-channels.png"))
    driver.set_window_size(*SHOTS["console-channel.png"])
    driver.get(f"{url}/console/channels/{CHANNEL}")
    driver.find_element(By.ID, "rollback")  # the page with its controls is shown
    # From the rollout down: its state and buttons, the charts and the analysis table.
    driver.execute_script(
        "arguments[0].scrollIntoView()", driver.find_element(By.ID, "rollout-heading")
    )
    driver.save_screenshot(str(out / "console-channel.png"))
    return [out / name for name in SHOTS]


def screenshots(out: Path, driver: webdriver.Chrome) -> list[Path]:
    with tempfile.TemporaryDirectory() as scratch, make_run(Path(scratch)) as (url, fake_port):
        token = (Path(scratch) / "admin-token").read_text().strip()
        app_key = (Path(scratch) / "app-key").read_text().strip()
        slower_canary(url, fake_port, token, app_key)
        return take(driver, url, token, out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=ROOT / "docs")
    args = parser.parse_args()
    driver = chromium()
    try:
        for path in screenshots(args.out, driver):
            print(f"{path} ({path.stat().st_size // 1024} KB)")
    finally:
        driver.quit()


if __name__ == "__main__":
    main()
