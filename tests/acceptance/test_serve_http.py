"""`farm serve` over plain HTTP: the JSON API and downloads are the CLI's bytes, bad input
gets a 4xx page (never a traceback), nothing writes, the token gate, the database down."""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.dashboard import ServeProcess
from tests.support.harness import farm, farm_env
from tests.support.proxy import TcpProxy
from tests.support.reportdata import BLOG, add_campaign, seed_blog

pytestmark = [
    pytest.mark.acceptance,
    pytest.mark.filterwarnings("ignore:Using `httpx`"),  # starlette's TestClient on httpx
]
TOKEN = "s3cret-token"


@pytest.fixture
def seeded(sqlite_url: str) -> tuple[str, int, int]:
    """The blog campaigns, and a second "blog" run with one invalid cell."""
    blog, _ = seed_blog(sqlite_url)
    slower = {k: [v * 1.5 for v in vals] for k, vals in BLOG.items()}
    noisy = "noisy: coefficient of variation {} above 0.25"
    invalid = {
        ("short", "ipex", "spr"): {"verdict": "invalid",
                                   "reasons": ["too few calls", noisy.format("0.30")]},
        ("long", "pytorch", "icelake"): {"verdict": "invalid", "reasons": [noisy.format("0.46")]},
    }  # fmt: skip
    again = add_campaign(sqlite_url, "blog", slower, extra=invalid)
    checked = {key: {"output_check": {"status": "checked"}} for key in BLOG}
    add_campaign(sqlite_url, "checked", BLOG, extra=checked)  # farm recommend needs checks
    return sqlite_url, blog, again


@pytest.fixture
def client(seeded: tuple[str, int, int]) -> Iterator[object]:
    from starlette.testclient import TestClient

    from farm.cli.serve.app import create_app
    from farm.settings import Settings

    with TestClient(create_app(Settings(database_url=seeded[0])),
                    raise_server_exceptions=False) as c:  # fmt: skip
        yield c


def test_the_api_and_downloads_are_what_the_cli_writes(
    client: object, seeded: tuple[str, int, int]
) -> None:
    url, blog, again = seeded
    env = farm_env(url)
    for cid in (blog, again):
        cli = farm("report", str(cid), "--format", "json", env=env)
        assert cli.returncode == 0, cli.stderr
        api = client.get(f"/api/campaigns/{cid}/report")  # type: ignore[attr-defined]
        assert api.status_code == 200
        assert api.json() == json.loads(cli.stdout)
        for name, args in (
            ("report.md", ["report", str(cid), "--format", "markdown"]),
            ("report.csv", ["report", str(cid), "--format", "csv"]),
            ("jobs.csv", ["report", str(cid), "--format", "csv", "--per-job"]),
            ("cells.json", ["export", str(cid), "--cells", "--format", "json"]),
            ("bmf.json", ["export", str(cid), "--bmf"]),
            ("raw.csv", ["export", str(cid), "--raw"]),
        ):
            got = client.get(f"/campaigns/{cid}/export/{name}")  # type: ignore[attr-defined]
            assert got.status_code == 200, name
            assert "attachment" in got.headers["content-disposition"]
            assert got.text == farm(*args, env=env).stdout, name
    cells = client.get(f"/api/campaigns/{blog}/cells").json()  # type: ignore[attr-defined]
    cli_cells = farm("export", str(blog), "--cells", "--format", "json", env=env).stdout
    assert cells == json.loads(cli_cells)
    compared = client.get(f"/api/compare?a={blog}&b={again}")  # type: ignore[attr-defined]
    cli_compare = farm("compare", str(blog), str(again), "--format", "json", env=env).stdout
    assert compared.status_code == 200 and compared.json() == json.loads(cli_compare)


def test_the_campaign_page_shows_the_report_with_grouped_validity(
    client: object, seeded: tuple[str, int, int]
) -> None:
    _, blog, again = seeded
    page = client.get(f"/campaigns/{again}?baseline=pytorch@icelake")  # type: ignore[attr-defined]
    assert page.status_code == 200
    text = page.text
    # short · pytorch@icelake is 15 22.5 30 ...: mean 45, p99 74.4 (1.5 × the blog's)
    assert ">45.00 / 74.40</a>" in text and ">90.00 / 119.40</a>" in text
    assert "2.00× / 2.00×" in text  # the speed-up against the baseline column
    notes = re.search(r'<ul class="validity-notes".*?</ul>', text, re.S)
    # One line per reason up to its numbers, with the cells it affects.
    assert notes is not None and notes.group(0).count("<li>") == 2, notes.group(0)
    lines = notes.group(0).split("<li>")[1:]
    few = next(line for line in lines if "too few calls" in line)
    assert "1 cell:" in few and "ipex(dtype=bf16)@spr" in few
    noisy = next(line for line in lines if "noisy" in line)
    assert "0.30–0.46" in noisy and "2 cells:" in noisy, noisy
    for name in ("report.md", "report.html", "jobs.json", "raw.csv", "bmf.json"):
        assert f"/campaigns/{again}/export/{name}" in text
    chart = client.get(f"/campaigns/{blog}/chart.svg?chart=mean")  # type: ignore[attr-defined]
    assert chart.status_code == 200 and chart.headers["content-type"] == "image/svg+xml"
    assert b"<svg" in chart.content and b"pytorch@icelake" in chart.content
    home = client.get("/")  # type: ignore[attr-defined]
    assert "default-src 'self'" in home.headers["content-security-policy"]
    listing = home.text
    assert listing.index(f'data-campaign-row="{again}"') < listing.index(
        f'data-campaign-row="{blog}"'
    )  # newest first


@pytest.mark.parametrize(
    ("path", "status", "says"),
    [
        ("/campaigns/99999999999999", 404, "unknown campaign"),
        ("/campaigns/no%20such%20name", 404, "unknown campaign"),
        ("/campaigns/12345", 404, "unknown campaign"),
        ("/jobs/abc", 404, "unknown job"),
        ("/jobs/-1", 404, "unknown job"),
        ("/jobs/4294967296", 404, "unknown job"),
        ("/jobs/777", 404, "does not exist"),
        ("/campaigns/1?metric=fastest", 400, "metric="),
        ("/campaigns/1?baseline=backend%3D", 400, "baseline"),
        ("/campaigns/1?baseline=backend%3Dnope", 400, "matches no column"),
        ("/campaigns/1?batch=x", 400, "batch="),
        ("/compare?a=1", 400, "compared with itself"),
        ("/compare?a=1&pools=onlyone", 400, "two pools"),
        ("/compare?a=1&b=2&metric=max", 400, "metric="),
        ("/compare?a=1&b=2&alpha=2", 400, "alpha="),
        ("/trends?name=blog&model=m&input=i&batch=zero&column=c", 400, "batch="),
        ("/trends?name=blog&column=pytorch@icelake", 400, "a trend needs"),
        ("/campaigns/1/export/secrets.txt", 404, "no export"),
        ("/api/campaigns/1/report?cost=maybe", 400, "cost="),
        ("/api/jobs/0", 404, "unknown job"),
        ("/nowhere", 404, "Not Found"),
    ],
)
def test_bad_input_gets_a_4xx_page_never_a_traceback(
    client: object, path: str, status: int, says: str
) -> None:
    got = client.get(path)  # type: ignore[attr-defined]
    assert got.status_code == status, got.text[:300]
    assert says in got.text
    assert "Traceback" not in got.text and 'File "' not in got.text
    if path.startswith("/api/"):
        assert "error" in got.json()


def test_no_page_writes(client: object) -> None:
    for path in ("/", "/campaigns/1", "/api/campaigns", "/compare", "/jobs/1"):
        for method in ("POST", "PUT", "DELETE", "PATCH"):
            got = client.request(method, path)  # type: ignore[attr-defined]
            assert got.status_code == 405, (method, path)


def test_a_token_gate_refuses_every_request_without_it(seeded: tuple[str, int, int]) -> None:
    from starlette.testclient import TestClient

    from farm.cli.serve.app import create_app
    from farm.settings import Settings

    app = create_app(Settings(database_url=seeded[0]), token=TOKEN)
    with TestClient(app, raise_server_exceptions=False) as c:
        for path in ("/", "/campaigns/1", "/api/campaigns", "/static/style.css", "/nowhere"):
            assert c.get(path).status_code == 401, path
            assert c.get(path, headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert c.get("/?token=wrong", follow_redirects=False).status_code == 401
        ok = c.get("/api/campaigns", headers={"Authorization": f"Bearer {TOKEN}"})
        assert ok.status_code == 200 and len(ok.json()) == 4
        once = c.get(f"/campaigns/1?token={TOKEN}&metric=mean", follow_redirects=False)
        assert once.status_code == 303 and once.headers["location"] == "/campaigns/1?metric=mean"
        cookie = once.headers["set-cookie"]
        assert "httponly" in cookie.lower() and "farm_token=" in cookie
        assert c.get("/campaigns/1?metric=mean").status_code == 200  # the cookie now


def test_farm_serve_refuses_a_public_bind_without_a_token(sqlite_url: str) -> None:
    seed_blog(sqlite_url)
    env = farm_env(sqlite_url)
    env.pop("FARM_SERVE_TOKEN", None)
    got = farm("serve", "--host", "0.0.0.0", "--port", "1", env=env, timeout=30)
    assert got.returncode == 2
    lines = [line for line in got.stderr.splitlines() if line.startswith("Error")]
    assert len(lines) == 1 and "FARM_SERVE_TOKEN" in lines[0], got.stderr
    missing = farm("serve", "--database-url", "sqlite:///no/such/farm.db", env=env, timeout=30)
    assert missing.returncode == 2 and "no database at" in missing.stderr


def test_a_non_loopback_bind_answers_401_without_the_token(
    seeded: tuple[str, int, int], tmp_path: Path
) -> None:
    server = ServeProcess(farm_env(seeded[0]), tmp_path / "serve.log", "0.0.0.0", TOKEN)
    try:
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(server.url + "/api/campaigns", timeout=10)
        assert refused.value.code == 401
        request = urllib.request.Request(
            server.url + "/api/campaigns", headers={"Authorization": f"Bearer {TOKEN}"}
        )
        with urllib.request.urlopen(request, timeout=10) as ok:
            assert ok.status == 200 and len(json.load(ok)) == 4
    finally:
        server.stop()


def test_the_database_down_gets_a_503_page_and_the_server_stays_up(
    migrated_pg: str, tmp_path: Path
) -> None:
    from sqlalchemy.engine import make_url

    real = make_url(migrated_pg)
    proxy = TcpProxy(real.host or "127.0.0.1", real.port or 5432)
    url = real.set(port=proxy.port).render_as_string(hide_password=False)
    add_campaign(url, "blog", BLOG)
    server = ServeProcess(farm_env(url), tmp_path / "serve.log")
    try:
        with urllib.request.urlopen(server.url + "/", timeout=20) as up:
            assert up.status == 200 and b"blog" in up.read()
        proxy.stop()
        for path in ("/", "/campaigns/1", "/api/campaigns"):
            with pytest.raises(urllib.error.HTTPError) as down:
                urllib.request.urlopen(server.url + path, timeout=30)
            body = down.value.read().decode()
            assert down.value.code == 503, body
            assert "unreachable" in body and "Traceback" not in body
        assert server.proc.poll() is None  # still serving
        proxy.start()
        with urllib.request.urlopen(server.url + "/campaigns/1", timeout=30) as back:
            assert back.status == 200
    finally:
        server.stop()
        proxy.close()


def test_trends_give_compares_verdict_between_consecutive_runs(
    client: object, seeded: tuple[str, int, int]
) -> None:
    _, blog, again = seeded
    query = "name=blog&model=distilbert-base-uncased&input=long&batch=1&column=pytorch@icelake"
    got = client.get(f"/api/trends?{query}")  # type: ignore[attr-defined]
    assert got.status_code == 200, got.text
    points = got.json()["points"]
    assert [p["campaign"] for p in points] == [blog, again]
    assert [p["value"] for p in points] == [120.0, 180.0]  # the long row's means, 1.5 ×
    assert points[0]["verdict"] is None
    pairs = client.get(f"/api/compare?a={blog}&b={again}&limit=0").json()  # type: ignore[attr-defined]
    same = [r for r in pairs if r["input"] == "long" and r["a_cell"] == "pytorch@icelake"]
    assert len(same) == 1
    assert (points[1]["verdict"], points[1]["ratio"], points[1]["p"]) == (
        same[0]["verdict"], same[0]["ratio"], same[0]["p_value"],
    )  # fmt: skip
    page = client.get(f"/trends?{query}")  # type: ignore[attr-defined]
    assert page.status_code == 200 and 'id="trend-chart"' in page.text
    chart = client.get(f"/trends/chart.svg?{query}")  # type: ignore[attr-defined]
    assert chart.status_code == 200 and b"<svg" in chart.content


def test_cost_shows_when_a_pool_has_a_price(client: object, seeded: tuple[str, int, int]) -> None:
    url, blog, _ = seeded
    plain = client.get(f"/campaigns/{blog}").text  # type: ignore[attr-defined]
    assert "cost / M inferences" not in plain
    priced = farm("pools", "price", "icelake", "3.6", env=farm_env(url))
    assert priced.returncode == 0, priced.stderr
    page = client.get(f"/campaigns/{blog}").text  # type: ignore[attr-defined]
    assert "cost / M inferences" in page
    # 3.6 per hour = 0.001 per second; short · pytorch@icelake: mean 30 ms, batch 1 → $30.000
    assert '<td class="cost">$30.000</td>' in page
    hosts = client.get("/api/hosts").json()  # type: ignore[attr-defined]
    assert {p["pool"]: p["price_per_hour"] for p in hosts["pools"]}["icelake"] == 3.6


def test_the_campaign_page_recommends_as_farm_recommend(
    client: object, seeded: tuple[str, int, int]
) -> None:
    url, _, _ = seeded
    env = farm_env(url)
    blog = "checked"
    for objective in ("mean", "p99"):
        cli = farm("recommend", str(blog), "--objective", objective, "--format", "json", env=env)
        assert cli.returncode == 0, cli.stderr
        api = client.get(f"/api/campaigns/{blog}/recommend?objective={objective}")  # type: ignore[attr-defined]
        assert api.status_code == 200 and api.json() == json.loads(cli.stdout)
        page = client.get(f"/campaigns/{blog}?objective={objective}").text  # type: ignore[attr-defined]
        table = re.search(r'<table class="list" id="recommend">.*?</table>', page, re.S)
        assert table is not None
        best = {c["best"]["column"] for c in api.json()["choices"] if c["best"]}
        assert best and all(f"<td>{column}</td>" in table.group(0) for column in best)
    # The cost objective without prices: the page says why (as the CLI), it does not fail.
    page = client.get(f"/campaigns/{blog}?objective=cost")  # type: ignore[attr-defined]
    assert page.status_code == 200 and "farm pools price" in page.text
    wrong = client.get(f"/api/campaigns/{blog}/recommend?objective=cheapest")  # type: ignore[attr-defined]
    assert wrong.status_code == 400 and "objective=" in wrong.json()["error"]
