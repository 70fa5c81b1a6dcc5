"""The app page's second slice through Flask's test client against a real state DB: the metrics graphs (inline
SVG, ranges, the refresh fragment), CPU/memory columns, the deploys table and each deploy's log page and its
offset endpoint (escaped, 404 for another's app), redeploy and restart forms (CSRF, levels, errors), the log
filter by process type; and the pure chart geometry."""

from __future__ import annotations

import time

from paas import apps
from paas.metrics import store
from paas.metrics.aggregate import Minute
from paas.web.dashboard import charts
from tests.unit import test_dashboard
from tests.unit.test_dashboard import XSS, form, log_in

web = test_dashboard.web  # the fixture: apps shop (alice manages, vera views) and secret (admins only)


def add_deploy(ctx, app: str, lines: list[str], status: str = "running", version: int = 1) -> int:
    log = ctx.paths.logs / app / "deploys"
    log.mkdir(parents=True, exist_ok=True)
    cur = ctx.conn.execute("INSERT INTO deploys (app, version, commit_sha, status, phase, log_path) VALUES "
                           "(?, ?, 'abc123def4567890', ?, 'build', 'x')", (app, version, status))
    deploy_id = cur.lastrowid
    path = log / f"{deploy_id}.log"
    path.write_text("".join(f"{line}\n" for line in lines))
    path.with_suffix(".json").write_text('{"actor": "alice", "kind": "push"}')
    ctx.conn.execute("UPDATE deploys SET log_path = ? WHERE id = ?", (str(path), deploy_id))
    ctx.conn.commit()
    return deploy_id


def add_metrics(ctx, app: str) -> None:
    minute = int(time.time() // 60)
    samples = [store.ProcessSample(app, m, "c1", "web.1", 30_000_000_000, 60_000_000_000, 50 << 20, 512 << 20,
                                   0, 50.0, time.time()) for m in (minute - 2, minute - 1)]
    requests = Minute()
    for status, ms in ((200, 12.0), (200, 30.0), (502, 80.0)):
        requests.add(status, ms)
    store.write_round(ctx.conn, samples, {app: {minute - 1: requests}}, {})


def test_the_app_page_draws_metrics_as_inline_svg_with_axes(web):
    add_metrics(web.ctx, "shop")
    log_in(web, "vera")
    page = web.get("/apps/shop").get_data(as_text=True)
    assert page.count("<svg") == 5 and 'id="chart-cpu"' in page and 'id="chart-latency"' in page
    assert 'class="series s1" d="M' in page and 'class="tick"' in page  # a line, axis labels
    assert "CPU 50.0 %" in page and "limit 512.0 MiB" in page and "p95" in page
    assert "5xx/min 1.0/min" in page and "req/s 0.05/s" in page  # the last whole minute
    assert "<script>" not in page.split("</head>")[1]  # no inline script
    six = web.get("/apps/shop?range=6h").get_data(as_text=True)
    assert 'aria-current="true">6h</a>' in six and "per 2 min" in six
    assert "per 1 min" in web.get("/apps/shop?range=bogus").get_data(as_text=True)
    fragment = web.get("/apps/shop/metrics?range=24h")
    body = fragment.get_data(as_text=True)
    assert fragment.status_code == 200 and 'id="metrics"' in body
    assert "<html" not in body and "per 5 min" in body


def test_metrics_and_deploys_of_another_users_app_are_404(web):
    deploy_id = add_deploy(web.ctx, "secret", ["building"])
    log_in(web, "alice")
    for path in ("/apps/secret/metrics", f"/apps/secret/deploys/{deploy_id}", f"/apps/secret/deploys/{deploy_id}/log",
                 "/apps/shop/deploys/999", f"/apps/shop/deploys/{deploy_id}"):
        assert web.get(path).status_code == 404, path
    for path in ("/apps/secret/redeploy", "/apps/secret/restart"):
        assert form(web, path, "/apps/shop").status_code == 404, path


def test_the_deploys_table_links_to_a_log_shown_as_text_and_followed_by_offset(web):
    deploy_id = add_deploy(web.ctx, "shop", ["-----> Building shop (v1)", XSS])
    log_in(web, "vera")
    page = web.get("/apps/shop").get_data(as_text=True)
    assert f'data-deploy="{deploy_id}"' in page and f"/apps/shop/deploys/{deploy_id}" in page
    assert 'id="running-deploy"' in page and "alice" in page
    assert "redeploy-form" not in page and "restart-form" not in page  # vera only views
    log = web.get(f"/apps/shop/deploys/{deploy_id}")
    text = log.get_data(as_text=True)
    assert log.status_code == 200 and "&lt;script&gt;alert(1)&lt;/script&gt;" in text and XSS not in text
    assert 'data-complete="false"' in text and "deploy.js" in text
    first = web.get(f"/apps/shop/deploys/{deploy_id}/log").json
    assert first["lines"] == ["-----> Building shop (v1)", XSS] and first["status"] == "running"
    with open(web.ctx.paths.logs / "shop" / "deploys" / f"{deploy_id}.log", "a") as fh:
        fh.write("-----> Starting web.1\npartial")
    more = web.get(f"/apps/shop/deploys/{deploy_id}/log?offset={first['next_offset']}").json
    assert more["lines"] == ["-----> Starting web.1"] and not more["complete"]  # a partial line waits
    assert web.get(f"/apps/shop/deploys/{deploy_id}/log?offset=-1").status_code == 302  # bad input: back, flashed


def test_redeploy_and_restart_need_csrf_and_deploy_level(web):
    log_in(web, "vera")
    assert form(web, "/apps/shop/redeploy", "/apps/shop").status_code == 403
    assert form(web, "/apps/shop/restart", "/apps/shop", type="web").status_code == 403
    log_in(web, "alice")
    for path in ("/apps/shop/redeploy", "/apps/shop/restart"):
        assert web.post(path, data={}).status_code == 400
        assert web.post(path, data={"csrf_token": "forged"}).status_code == 400
    # shop was never deployed: the service's error comes back to the app page
    response = form(web, "/apps/shop/redeploy", "/apps/shop")
    assert response.status_code == 302 and response.headers["Location"] == "/apps/shop"
    assert "no deployed commit to redeploy" in web.get("/apps/shop").get_data(as_text=True)
    form(web, "/apps/shop/restart", "/apps/shop", type="worker")
    assert "shop is not deployed" in web.get("/apps/shop").get_data(as_text=True)


def test_logs_filter_by_process_type_and_usage_columns(web):
    apps.set_formation(web.ctx.conn, "shop", {"web": 1, "worker": 1})
    log_in(web, "alice")
    page = web.get("/apps/shop").get_data(as_text=True)
    assert 'id="log-filter"' in page
    assert 'data-type="worker"' in page and 'data-type="web"' in page
    filtered = web.get("/apps/shop?type=worker").get_data(as_text=True)
    assert "type=worker" in filtered.split('data-stream="')[1].split('"')[0]
    assert 'data-type="worker" class="current"' in filtered
    ignored = web.get("/apps/shop?type=%3Cscript%3E").get_data(as_text=True)
    assert "<script>" not in ignored.split("</head>")[1]
    overview = web.get("/").get_data(as_text=True)
    assert "<th>CPU</th><th>Memory</th>" in overview


def test_chart_scale_paths_and_ticks():
    assert charts.nice_scale(0) == (1.0, 0.25)
    assert charts.nice_scale(7.3) == (8, 2)
    assert charts.nice_scale(730, 10) == (800, 200)
    assert charts._path([(0, 1), (1, 2), (2, None), (3, 4)]) == "M0.0 1.0 L1.0 2.0 M3.0 4.0 l0.01 0"
    assert charts._path([(0, None)]) == ""
    points = [{"t": 3600 * 10 + 60 * i, "cpu_percent": None if i % 7 == 0 else i, "memory_bytes": None,
               "memory_limit_bytes": None, "requests_per_s": 0.0, "p50_ms": None, "p95_ms": None, "errors_5xx": 0}
              for i in range(60)]
    cpu, memory, *_ = charts.graphs({"points": points, "step_s": 60}, "1h")
    assert cpu["y_ticks"][-1]["label"] == "60" and cpu["y_ticks"][0]["y"] == charts.HEIGHT - charts.BOTTOM
    assert [t["label"] for t in cpu["x_ticks"]] == ["10:00", "10:10", "10:20", "10:30", "10:40", "10:50"]
    assert cpu["lines"][0]["now"] == "59.0 %" and not cpu["empty"]
    assert memory["empty"] and memory["lines"][0]["path"] == ""
    assert [d["x"] for d in cpu["lines"][0]["dots"]] == []  # every known point has a neighbour
    assert charts._lone([(0, None), (1, 5), (2, None), (3, 6), (4, 7)]) == [{"x": 1, "y": 5}]
    assert charts.range_of("6h") == "6h" and charts.range_of("7d") == "1h"


def test_the_app_page_learns_of_a_running_deploy_to_open_its_log(web):
    log_in(web, "vera")
    assert web.get("/apps/shop/deploys/running").json == {"id": None, "url": None}
    assert 'data-running="/apps/shop/deploys/running"' in web.get("/apps/shop").get_data(as_text=True)
    deploy_id = add_deploy(web.ctx, "shop", ["building"])
    assert web.get("/apps/shop/deploys/running").json == {"id": deploy_id, "url": f"/apps/shop/deploys/{deploy_id}"}
    add_deploy(web.ctx, "secret", ["building"])
    assert web.get("/apps/secret/deploys/running").status_code == 404
