"""The console's judging pages without a browser: a channel's analysis charted minute by
minute and tabled over a window (from ``GET .../analysis?series=1``), its rollout with Pause,
Resume and Abort for write roles, and the lineage search with its keyset pages."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from html import unescape

import httpx
import pytest

from gateway.app import create_app
from gateway.config import Settings
from gateway.console.charts import line_chart
from gateway.registry_services import RegistryServices
from releases.analysis.buckets import SliceBuckets, latency_bin, minute_of
from releases.analysis.rollout import RolloutPlan
from releases.analysis.rollouts import RolloutRegistry
from tests.consolekit import CHANNEL, SETUP, Stage, console_settings, csrf_of, signed_in, stage
from tests.factories import ADMIN_TOKEN
from tests.live import LiveServer
from tests.stack import openai_spec, publish
from tests.test_lineage import HEADERS, lookup

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.fixture
async def staged(services: RegistryServices) -> Stage:
    return await stage(services)


@pytest.fixture
def console(settings: Settings, staged: Stage) -> Iterator[LiveServer]:
    # The gateway's own rollout driver never ticks here: the test alone moves a rollout.
    quiet = console_settings(settings).model_copy(update={"rollout_tick": 3600})
    server = LiveServer(create_app(quiet)).start()
    yield server
    server.stop()


def counted(
    requests: int, errors: int, latency_ms: float, score: float, cost: float
) -> dict[str, float]:
    """One minute of a slice, as the collector adds it to the buckets."""
    return {
        "n": requests, "s:200": requests - errors, "s:502": errors,
        f"l:{latency_bin(latency_ms)}": requests,
        "fn": requests, "fs": score * requests, "fq": score * score * requests,
        "cn": requests, "c": cost * requests, "cq": cost * cost * requests,
    }  # fmt: skip


async def traffic(services: RegistryServices, staged: Stage, minutes_ago: int) -> None:
    """The stable (``second``) and a canary (``first``) ``minutes_ago``: the canary fails
    one request in five and is slower, the stable none."""
    minute = minute_of(time.time()) - minutes_ago
    fields = {f"{staged.second}|stable|{k}": v for k, v in counted(80, 0, 100, 0.9, 0.002).items()}
    fields.update(
        {f"{staged.first}|canary|{k}": v for k, v in counted(20, 4, 400, 0.5, 0.004).items()}
    )
    buckets = SliceBuckets(services.redis, services.registry.keys)
    await buckets.add({(CHANNEL, minute): fields})


async def test_the_analysis_api_gives_the_window_minute_by_minute_on_request(
    console: LiveServer, services: RegistryServices, staged: Stage
) -> None:
    await services.registry.set_canary(CHANNEL, staged.first, 20, SETUP)
    await traffic(services, staged, 2)
    url = f"/admin/channels/{CHANNEL}/analysis"

    plain = console.http.get(url, params={"window": "5m"}, headers=ADMIN).json()
    answer = console.http.get(url, params={"window": "5m", "series": "1"}, headers=ADMIN)

    assert "series" not in plain
    series = answer.json()["series"]
    assert len(series) == 5 and [p["minute"] for p in series] == sorted(p["minute"] for p in series)
    seen = [p for p in series if p["stable"]["requests"]]
    assert len(seen) == 1 and seen[0]["canary"]["error_rate"] == 0.2
    assert seen[0]["stable"]["error_rate"] == 0.0 and seen[0]["canary"]["feedback_score"] == 0.5
    quiet = [p for p in series if not p["stable"]["requests"]]
    assert all(p["stable"]["error_rate"] is None for p in quiet)
    refused = console.http.get(url, params={"series": "yes"}, headers=ADMIN)
    assert refused.status_code == 422 and "series" in refused.text


async def test_the_channel_page_charts_and_tables_the_canary_against_its_stable(
    console: LiveServer, services: RegistryServices, staged: Stage
) -> None:
    await services.registry.set_canary(CHANNEL, staged.first, 20, SETUP)
    await traffic(services, staged, 1)
    await traffic(services, staged, 40)  # in the hour's window, not in 15 minutes'

    with signed_in(console.url, staged.secrets["auditor"]) as client:
        page = client.get(f"/console/channels/{CHANNEL}").text
        hour = client.get(f"/console/channels/{CHANNEL}", params={"window": "1h"}).text

    charts = re.findall(r'<svg class="chart".*?</svg>', page, re.S)
    titles = [re.search(r'aria-label="([^"]+)"', c)[1] for c in charts]  # type: ignore[index]
    assert titles == [
        "Error rate (5xx)",
        "Latency p95",
        "Feedback score (mean)",
        "Cost per request",
    ]
    assert all("chart-line-stable" in c and "chart-line-canary" in c for c in charts)
    assert "canary 20.0%" in charts[0] and "stable 0.0%" in charts[0]
    assert 'class="chart-scale" x="0" y="38">20.0%<' in charts[0]  # scaled to the largest
    rows = dict(re.findall(r'<tr data-metric="(\w+)">(.*?)</tr>', page, re.S))
    cells = lambda metric: re.findall(r"<td[^>]*>(.*?)</td>", rows[metric])  # noqa: E731
    assert cells("requests")[:2] == ["80", "20"]
    assert cells("error_rate") == ["0.00%", "20.00%", "+20.00 pt", "insufficient"]
    assert 'href="?window=15m" aria-current="page"' in page and "Last 15m" in page
    assert 'href="?window=1h" aria-current="page"' in hour
    hour_rows = dict(re.findall(r'<tr data-metric="(\w+)">(.*?)</tr>', hour, re.S))
    assert re.findall(r"<td[^>]*>(.*?)</td>", hour_rows["requests"])[:2] == ["160", "40"]


async def test_a_channel_without_traffic_says_so_in_its_charts(
    console: LiveServer, staged: Stage
) -> None:
    with signed_in(console.url, staged.secrets["auditor"]) as client:
        page = client.get(f"/console/channels/{CHANNEL}", params={"window": "5m"}).text
        bad = client.get(f"/console/channels/{CHANNEL}", params={"window": "forever"})
    assert page.count("nothing observed in this window") == 4 and 'id="analysis-none"' in page
    assert bad.status_code == 422 and "window" in bad.text


async def start_rollout(services: RegistryServices, staged: Stage) -> None:
    rollouts = RolloutRegistry(services.registry.store, services.signer)
    plan = RolloutPlan(canary=staged.first, steps=[5, 50], interval=600)
    await rollouts.start(CHANNEL, plan, SETUP, "try it", None, time.time())


def rollout_form(page: str, action: str) -> dict[str, str]:
    found = re.search(rf'action="[^"]*/rollout/{action}".*?</form>', page, re.S)
    assert found, f"the page has no {action} button"
    fields = dict(re.findall(r'name="(\w+)" value="([^"]*)"', found[0]))
    return {"csrf": csrf_of(page), **fields}


async def test_the_rollout_shows_on_both_pages_and_operators_pause_resume_and_abort_it(
    console: LiveServer, services: RegistryServices, staged: Stage
) -> None:
    await start_rollout(services, staged)
    rollout_url = f"/console/channels/{CHANNEL}/rollout"
    with signed_in(console.url, staged.secrets["operator"]) as client:
        listed = client.get("/console/channels").text
        page = client.get(f"/console/channels/{CHANNEL}").text
        assert "running, step 1 of 2 (5%)" in listed
        assert "1 of 2: 5.0% of traffic" in page and "Next check" in page
        running = rollout_form(page, "pause")
        assert 'id="rollout-resume"' not in page and 'id="rollout-abort"' in page

        paused = client.post(f"{rollout_url}/pause", data={**running, "reason": "<b>look</b>"})
        assert paused.status_code == 303 and "done=rollout.pause" in paused.headers["location"]
        page = client.get(f"/console/channels/{CHANNEL}").text
        assert "paused by operator: &lt;b&gt;look&lt;/b&gt;" in page
        assert 'id="rollout-resume"' in page
        # The page from before the pause offered Abort for a running rollout: refused.
        stale = client.post(f"{rollout_url}/abort", data=running)
        assert stale.status_code == 409 and "reload" in stale.text
        assert (await services.registry.channel(CHANNEL)).canary is not None

        resumed = client.post(f"{rollout_url}/resume", data=rollout_form(page, "resume"))
        assert resumed.status_code == 303
        page = client.get(f"/console/channels/{CHANNEL}").text
        aborted = client.post(f"{rollout_url}/abort", data=rollout_form(page, "abort"))
        assert aborted.status_code == 303
        page = client.get(f"/console/channels/{CHANNEL}").text
    assert (await services.registry.channel(CHANNEL)).canary is None
    assert "aborted by operator" in page and 'id="rollout-controls"' not in page


async def test_auditors_see_the_rollout_without_buttons_and_a_forged_post_is_refused(
    console: LiveServer, services: RegistryServices, staged: Stage
) -> None:
    await start_rollout(services, staged)
    paused = console.http.post(
        f"/admin/channels/{CHANNEL}/rollout/pause",
        json={"reason": "<script>alert(1)</script>"},
        headers=ADMIN,
    )
    assert paused.status_code == 200, paused.text
    with signed_in(console.url, staged.secrets["operator"]) as operator:
        form = rollout_form(operator.get(f"/console/channels/{CHANNEL}").text, "abort")
    with signed_in(console.url, staged.secrets["auditor"]) as client:
        page = client.get(f"/console/channels/{CHANNEL}").text
        forged = {**form, "csrf": csrf_of(page)}
        refused = client.post(f"/console/channels/{CHANNEL}/rollout/abort", data=forged)
        no_csrf = client.post(
            f"/console/channels/{CHANNEL}/rollout/abort", data={**form, "csrf": "x"}
        )
    assert "/rollout/" not in page and "paused" in page
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;alert(1)" in page
    assert refused.status_code == 403 and no_csrf.status_code == 403
    rollout = await RolloutRegistry(services.registry.store, services.signer).get(CHANNEL)
    assert rollout is not None and rollout.state == "paused"


async def test_lineage_search_pages_newest_first_linking_each_record(
    dp_services: RegistryServices,
    dp_settings: Settings,
    start_gateway: Callable[..., LiveServer],
) -> None:
    await publish(dp_services, openai_spec(), "support-bot-prod")
    _, auditor = await dp_services.keyring.create("auditor", "auditor", ["*"], SETUP)
    _, operator = await dp_services.keyring.create("operator", "operator", ["*"], SETUP)
    gateway = start_gateway(console_settings(dp_settings))
    body = {"model": "support-bot-prod", "messages": [{"role": "user", "content": "Hi"}]}
    sent = []
    for _ in range(3):
        answer = httpx.post(f"{gateway.url}/v1/chat/completions", json=body, headers=HEADERS)
        sent.append(answer.headers["x-gateway-response-id"])
    assert lookup(gateway, sent[-1]).status_code == 200  # flushes this replica's buffer

    with signed_in(gateway.url, auditor) as client:
        first = client.get(
            "/console/lineage/search", params={"channel": "support-bot-prod", "limit": "2"}
        ).text
        next_link = unescape(re.search(r'href="([^"]+)" id="next-page"', first)[1])  # type: ignore[index]
        second = client.get(next_link).text
        escaped = client.get("/console/lineage/search", params={"channel": "<b>x</b>"}).text
    with signed_in(gateway.url, operator) as client:
        refused = client.get("/console/lineage/search")

    ids = lambda page: re.findall(r'href="/console/lineage\?id=([^"]+)"', page)  # noqa: E731
    assert ids(first) + ids(second) == list(reversed(sent))
    assert "channel=support-bot-prod" in next_link and "limit=2" in next_link
    assert 'id="next-page"' not in second and "First page" in second
    assert "Redis window only" in first
    assert 'value="&lt;b&gt;x&lt;/b&gt;"' in escaped and "No record matches." in escaped
    assert refused.status_code == 403


def test_a_chart_of_small_values_keeps_its_least_scale_and_breaks_at_quiet_minutes() -> None:
    svg = line_chart("Errors", [1, 2, 3, 4], {"stable": [0.0, None, 0.001, 0.002]}, str, 0.05)
    assert ">0.05</text>" in svg  # 0.2% does not fill the chart
    assert (
        svg.count("chart-dot-stable") == 1
        and svg.count('class="chart-line chart-line-stable" points') == 1
    )
