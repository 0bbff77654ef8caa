"""The console in a real browser: Debian's Chromium, headless, driven by Selenium through
Debian's chromedriver (nothing is downloaded). One browser for the module; each test has its
own gateway(s) and registry prefix, and saves a screenshot in its temporary directory."""

from __future__ import annotations

import importlib.util
import json
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

from gateway.app import create_app
from gateway.cli import main as cli
from gateway.config import Settings
from gateway.registry_services import RegistryServices
from tests.consolekit import CHANNEL, Stage, console_settings, stage
from tests.factories import ADMIN_TOKEN
from tests.live import LiveServer

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
Browser = webdriver.Chrome


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(flag)
    options.add_argument("--window-size=1280,900")
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    yield driver
    driver.quit()


@pytest.fixture
async def staged(services: RegistryServices) -> Stage:
    return await stage(services)


@pytest.fixture
def servers(settings: Settings, staged: Stage) -> Iterator[Callable[[], LiveServer]]:
    """Starts console-enabled gateways (workers sharing Redis and the console secret)."""
    started: list[LiveServer] = []

    def start() -> LiveServer:
        started.append(LiveServer(create_app(console_settings(settings))).start())
        return started[-1]

    yield start
    for server in started:
        server.stop()


def sign_in(browser: Browser, url: str, secret: str) -> None:
    browser.get(f"{url}/console/sign-in")
    browser.delete_all_cookies()  # one browser for the module: no session from another test
    browser.find_element(By.ID, "key").send_keys(secret)
    browser.find_element(By.ID, "sign-in").click()
    wait_for(lambda: browser.current_url.endswith("/console/channels"))


def wait_for(check: Callable[[], bool], seconds: float = 5.0) -> float:
    """Poll ``check`` until it holds; answer how long it took (fails after ``seconds``)."""
    start = time.monotonic()
    while not check():
        assert time.monotonic() - start < seconds, "the page did not show it in time"
        time.sleep(0.02)
    return time.monotonic() - start


def text_of(browser: Browser, element_id: str) -> str:
    try:
        return str(browser.find_element(By.ID, element_id).text)
    except (NoSuchElementException, StaleElementReferenceException):
        return ""  # not there, or replaced by the page's poll between finding and reading


def gateway_cli(url: str, *args: str) -> int:
    return cli(["--url", url, "--token", ADMIN_TOKEN, *args])


def post_from_page(browser: Browser, path: str, fields: dict[str, str]) -> int:
    """A POST the page's own origin sends with its cookie (as a forged form would)."""
    script = (
        "const done = arguments[arguments.length - 1];"
        "fetch(arguments[0], {method: 'POST', credentials: 'same-origin',"
        " body: new URLSearchParams(arguments[1])}).then(r => done(r.status));"
    )
    return int(browser.execute_async_script(script, path, fields))


def test_rollback_with_the_button_signed_in_on_another_worker(
    browser: Browser,
    servers: Callable[[], LiveServer],
    staged: Stage,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    first, second = servers(), servers()
    sign_in(browser, first.url, staged.secrets["operator"])
    browser.find_element(By.LINK_TEXT, CHANNEL).click()
    assert text_of(browser, "stable") == staged.second
    # The same session, through the other worker (cookies are per host, both on 127.0.0.1).
    browser.get(f"{second.url}/console/channels/{CHANNEL}")
    browser.find_element(By.ID, "rollback").click()
    browser.find_element(By.NAME, "reason").send_keys("bad answers")
    browser.find_element(By.ID, "confirm-rollback").click()
    wait_for(lambda: text_of(browser, "done") != "")
    assert text_of(browser, "stable") == staged.first
    browser.save_screenshot(str(tmp_path / "rolled-back.png"))
    capsys.readouterr()
    assert gateway_cli(first.url, "--json", "channel", "show", CHANNEL) == 0
    assert json.loads(capsys.readouterr().out)["stable"] == staged.first
    assert "bad answers" in text_of(browser, "timeline")


def test_a_stale_page_is_refused_its_rollback(
    browser: Browser, servers: Callable[[], LiveServer], staged: Stage, tmp_path: Path
) -> None:
    gateway = servers()
    sign_in(browser, gateway.url, staged.secrets["operator"])
    browser.get(f"{gateway.url}/console/channels/{CHANNEL}")
    browser.find_element(By.ID, "rollback").click()
    # Someone else changes the channel after the page was loaded.
    assert (
        gateway_cli(gateway.url, "channel", "canary", CHANNEL, staged.first, "--weight", "5") == 0
    )
    browser.find_element(By.ID, "confirm-rollback").click()
    wait_for(lambda: text_of(browser, "refusal") != "")
    browser.save_screenshot(str(tmp_path / "stale.png"))
    assert "changed since you loaded it" in text_of(browser, "refusal")
    answer = gateway.http.get(
        f"/admin/channels/{CHANNEL}", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
    ).json()
    assert answer["stable"] == staged.second  # not overwritten


def test_a_cli_change_appears_on_the_open_page_within_two_seconds(
    browser: Browser, servers: Callable[[], LiveServer], staged: Stage, tmp_path: Path
) -> None:
    gateway = servers()
    sign_in(browser, gateway.url, staged.secrets["auditor"])
    browser.set_window_size(390, 844)
    try:
        browser.get(f"{gateway.url}/console/channels/{CHANNEL}")
        assert text_of(browser, "stable") == staged.second
        loaded = browser.current_url
        assert gateway_cli(gateway.url, "channel", "rollback", CHANNEL, "--reason", "cli") == 0
        took = wait_for(lambda: text_of(browser, "stable") == staged.first, seconds=2.0)
        assert browser.current_url == loaded and took < 2.0
        assert browser.find_element(By.ID, "changed").is_displayed()
        # Narrow screens: the page scrolls down, not sideways.
        width = browser.execute_script("return document.documentElement.scrollWidth")
        assert width <= browser.execute_script("return window.innerWidth")
        browser.save_screenshot(str(tmp_path / "followed-390.png"))
    finally:
        browser.set_window_size(1280, 900)


def test_an_auditors_forged_post_and_a_post_without_csrf_are_refused(
    browser: Browser, servers: Callable[[], LiveServer], staged: Stage, tmp_path: Path
) -> None:
    gateway = servers()
    sign_in(browser, gateway.url, staged.secrets["auditor"])
    browser.get(f"{gateway.url}/console/channels/{CHANNEL}")
    assert browser.find_elements(By.ID, "rollback") == []  # no button for an auditor
    csrf = browser.find_element(By.NAME, "csrf").get_attribute("value")
    path = f"/console/channels/{CHANNEL}/rollback"
    assert post_from_page(browser, path, {"csrf": csrf, "generation": "2"}) == 403
    browser.save_screenshot(str(tmp_path / "auditor.png"))
    # An operator's session cookie alone, without the form's token, changes nothing either.
    sign_in(browser, gateway.url, staged.secrets["operator"])
    browser.get(f"{gateway.url}/console/channels/{CHANNEL}")
    assert post_from_page(browser, path, {"generation": "2"}) == 403
    assert text_of(browser, "stable") == staged.second
    answer = gateway.http.get(
        f"/admin/channels/{CHANNEL}", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
    )
    assert answer.json()["stable"] == staged.second  # the registry, not the page


def test_the_readme_screenshots_come_from_what_make_run_serves(
    browser: Browser, tmp_path: Path
) -> None:
    """deploy/local/console_screenshots.py: make run's console, signed in with its admin
    token, a rollout's slower canary drawn in the analysis charts with its Pause button; each
    picture small enough to commit."""
    path = Path(__file__).resolve().parent.parent / "deploy/local/console_screenshots.py"
    found = importlib.util.spec_from_file_location("console_screenshots", path)
    assert found is not None and found.loader is not None
    script = importlib.util.module_from_spec(found)
    found.loader.exec_module(script)
    browser.implicitly_wait(10)
    try:
        shots = script.screenshots(tmp_path, browser)
        page = browser.page_source
        # The canary's latency p95 as the analysis API measured it (the fake answers 150 ms
        # late), and the rollout that put it there.
        latency = re.search(r"canary ([\d,]+) ms</text>", page)
        assert latency is not None and int(latency[1].replace(",", "")) >= 150
        assert 'id="rollout-pause"' in page
    finally:
        browser.implicitly_wait(0)
        browser.set_window_size(1280, 900)
    assert [p.name for p in shots] == ["console-channels.png", "console-channel.png"]
    assert all(0 < p.stat().st_size < 200_000 for p in shots)
