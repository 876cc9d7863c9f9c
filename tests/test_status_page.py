"""The status page in headless Chromium against a real pipesd fed by real workers.

The module's pipesd (status_fixtures.status_site) holds a settled run: done, failed,
disabled, running, pending and upstream-failed tasks. Each test opens pages in a fresh
browser context and checks what they show against the JSON API. Screenshots of the
overview, a failed task and a graph go to tests/artifacts/.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

import pytest
from pipesd_fixtures import DaemonFactory
from status_fixtures import (
    LEAVES,
    MERGE_EDGES,
    MERGE_FAMILIES,
    SCRIPT_LABEL,
    Site,
    accept_dialogs,
    screenshot,
)


def expect(target: Any) -> Any:
    """Playwright's retrying assertions (imported late: the browser fixture explains a miss)."""
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(target)


def task_url(site: Site, task_id: str, suffix: str = "") -> str:
    return f"{site.url}/tasks/{quote(task_id, safe='')}{suffix}"


def row_ids(page: Any) -> list[str]:
    return page.eval_on_selector_all("tr.task-row", "rows => rows.map(r => r.dataset.taskId)")


# ----- the shell ------------------------------------------------------------------------------


def test_pages_are_html_shells_with_a_strict_csp_and_other_paths_stay_json_404(status_site):
    daemon = status_site.daemon
    for path in ("/", "/tasks", "/workers", "/resources", "/tasks/X_1", "/tasks/X_1/graph"):
        reply = daemon.get(path)
        assert reply.status == 200, path
        assert reply.headers["Content-Type"].startswith("text/html")
        assert "script-src 'self'" in reply.headers["Content-Security-Policy"]
        assert b"Boom" not in reply.body  # no scheduler data in the page itself
    assert daemon.get("/static/app.js").status == 200
    for path in ("/nope", "/static/nope.js", "/tasks/a/b/c"):
        reply = daemon.get(path)
        assert reply.status == 404, path
        assert "error" in reply.json


def test_task_id_from_the_path_is_escaped_in_the_shell(status_site):
    reply = status_site.daemon.get("/tasks/" + quote("<b>x</b>", safe="") + "/graph")
    assert b"<b>x</b>" not in reply.body
    assert b"&lt;b&gt;x&lt;/b&gt;" in reply.body


# ----- overview -------------------------------------------------------------------------------


def test_overview_counts_match_the_api_and_link_to_the_filtered_list(status_site, page):
    page.goto(status_site.url + "/")
    expect(page.locator('[data-count="DONE"]')).not_to_have_text("–")
    overview = status_site.call("overview")
    assert overview["counts"] == {**status_site.call("counts"), **overview["counts"]}
    shown = page.eval_on_selector_all(
        "[data-count]", "nodes => nodes.map(n => [n.dataset.count, n.textContent])"
    )
    assert {"PENDING", "RUNNING", "DONE", "FAILED", "DISABLED", "UPSTREAM_FAILED"} <= {
        status for status, _ in shown
    }
    for status, text in shown:
        assert int(text.replace(",", "")) == overview["counts"][status], status
    assert page.text_content("#total") == str(overview["total"])
    assert page.text_content("#workers-live") == str(overview["workers"]["live"])
    failures = page.locator("#failures tr.task-row")
    expect(failures.filter(has_text="ValueError: bad row 17 in input.csv")).to_have_count(1)
    expect(page.locator("#resources")).to_contain_text("db")
    assert page.locator("#timeline svg rect.bar-done").count() >= 1
    screenshot(page, "overview")

    page.click('a.count:has([data-count="FAILED"])')
    page.wait_for_url(re.compile(r"/tasks\?status=FAILED$"))
    failed = status_site.call("task_list", status="FAILED")
    expect(page.locator("tr.task-row")).to_have_count(failed["total"])
    assert sorted(row_ids(page)) == sorted(t["task_id"] for t in failed["tasks"])


# ----- task list ------------------------------------------------------------------------------


def test_task_list_pages_through_a_family_with_the_api_total(status_site, page):
    asked: list[dict[str, Any]] = []
    page.on(
        "request",
        lambda r: asked.append(r.post_data_json) if r.url.endswith("/task_list") else None,
    )
    page.goto(status_site.url + "/tasks?family=Leaf")
    expect(page.locator("#total")).to_have_text(str(LEAVES))
    assert status_site.call("task_list", family="Leaf")["total"] == LEAVES
    rows = page.locator("tr.task-row")
    expect(rows).to_have_count(50)
    first_page = row_ids(page)
    expect(page.locator("#prev-page")).to_be_hidden()

    page.click("#next-page")
    page.wait_for_url(re.compile(r"page=2"))
    expect(rows).to_have_count(LEAVES - 50)
    second_page = row_ids(page)
    assert not set(first_page) & set(second_page)
    assert {t.split("_")[0] for t in first_page + second_page} == {"Leaf"}
    expect(page.locator("#next-page")).to_be_hidden()

    page.go_back()
    page.wait_for_url(re.compile(r"family=Leaf$"))
    expect(rows).to_have_count(50)
    # the browser only ever asks for one page of tasks
    assert {body["offset"] for body in asked} == {0, 50}
    assert {body["limit"] for body in asked} == {50}


def test_task_list_filters_by_status_family_list_and_search(status_site, page):
    page.goto(status_site.url + "/tasks")
    page.select_option("#f-status", "FAILED")  # submits the filter form
    page.wait_for_url(re.compile(r"status=FAILED"))
    expect(page.locator("tr.task-row")).to_have_count(
        status_site.call("task_list", status="FAILED")["total"]
    )

    page.goto(status_site.url + "/tasks")
    side = page.locator('#families li[data-family="Part"]')
    expect(side).to_contain_text("3")
    side.locator("a").click()
    page.wait_for_url(re.compile(r"family=Part"))
    expect(page.locator("tr.task-row")).to_have_count(3)
    expect(page.locator('#families li.active[data-family="Part"]')).to_have_count(1)

    page.fill("#f-search", "part_A")  # case-insensitive substring of the id
    page.click("#filters button[type=submit]")
    page.wait_for_url(re.compile(r"search=part_A"))
    expect(page.locator("tr.task-row")).to_have_count(1)
    assert row_ids(page)[0].startswith("Part_a_")


def test_task_list_sorts_by_the_chosen_key(status_site, page):
    page.goto(status_site.url + "/tasks?family=Leaf&sort=task_id")
    expect(page.locator("tr.task-row")).to_have_count(50)
    ids = row_ids(page)
    assert ids == sorted(ids)
    reply = status_site.call("task_list", family="Leaf", sort="task_id", limit=50)
    assert ids == [t["task_id"] for t in reply["tasks"]]


# ----- one task -------------------------------------------------------------------------------


def test_failed_task_page_shows_traceback_log_tail_and_neighbours(status_site, page):
    part_c, merge = status_site.ids["PartC"], status_site.ids["Merge"]
    page.goto(task_url(status_site, part_c))
    expect(page.locator("#task-status")).to_have_text("failed")
    expect(page.locator("#traceback")).to_contain_text("Traceback (most recent call last)")
    expect(page.locator("#traceback")).to_contain_text("KeyError: \"lookup table has no key 'c'\"")
    expect(page.locator("#log-tail")).to_contain_text("part c: read lookup file 3 of 3")
    expect(page.locator("#log-tail")).to_contain_text("part c: key 'c' not found")
    expect(page.locator("#deps tr")).to_have_count(2)
    expect(page.locator("#deps")).not_to_contain_text("pending")
    dependent = page.locator(f'#dependents tr[data-task-id="{merge}"]')
    expect(dependent).to_contain_text("pending")
    expect(page.locator('button[data-action="forgive_failures"]')).to_be_enabled()
    expect(page.locator('button[data-action="re_enable_task"]')).to_be_disabled()
    screenshot(page, "failed-task", full_page=True)

    dependent.locator("a").click()
    page.wait_for_url(re.compile(re.escape(merge) + "$"))
    expect(page.locator(f'#deps tr[data-task-id="{part_c}"]')).to_contain_text("failed")


def test_task_run_in_the_worker_process_shows_its_log_tail(status_site, page):
    page.goto(task_url(status_site, status_site.ids["Boom"]))
    expect(page.locator("#traceback")).to_contain_text("ValueError: bad row 17 in input.csv")
    expect(page.locator("#log-tail")).to_contain_text("boom step 2: reading rows")
    expect(page.locator("#log-tail")).to_contain_text("boom: giving up on row 17")


def test_running_task_page_shows_progress_message_and_tracking_link(status_site, page):
    page.goto(task_url(status_site, status_site.ids["Blocker"]))
    expect(page.locator("#task-status")).to_have_text("running")
    expect(page.locator("#status-message")).to_have_text("waiting for release.flag")
    expect(page.locator("#progress .pct")).to_have_text("40%")
    link = page.locator('#facts a[href="http://jobs.example/17"]')
    expect(link).to_have_count(1)
    expect(page.locator('button[data-action="mark_as_done"]')).to_be_disabled()


def test_tracking_url_that_is_not_http_stays_text(status_site, page):
    after = status_site.ids["AfterBlock"]
    status_site.call("set_tracking_url", task_id=after, url="javascript:window.__pwned=1")
    page.goto(task_url(status_site, after))
    expect(page.locator("#facts")).to_contain_text("javascript:window.__pwned=1")
    assert page.locator("#facts a[href^='javascript']").count() == 0


def test_script_in_a_parameter_shows_as_text_and_never_runs(status_site, page):
    label = status_site.ids["Label"]
    page.goto(task_url(status_site, label))
    expect(page.locator("#params")).to_contain_text(SCRIPT_LABEL)
    page.goto(status_site.url + "/tasks?family=Label")
    expect(page.locator("tr.task-row td.params")).to_contain_text(SCRIPT_LABEL)
    page.goto(task_url(status_site, label, "/graph?depth=1"))
    expect(page.locator(f'svg#graph g.node[data-task-id="{label}"]')).to_have_count(1)
    assert page.evaluate("typeof window.__pwned") == "undefined"
    assert page.locator("main script").count() == 0


# ----- actions ----------------------------------------------------------------------------------


def test_forgive_after_confirm_makes_a_failed_task_pending(status_site, page):
    fragile = status_site.ids["Fragile"]
    assert status_site.status(fragile) == "FAILED"
    dialogs = accept_dialogs(page)
    page.goto(task_url(status_site, fragile))
    expect(page.locator("#task-status")).to_have_text("failed")
    page.click('button[data-action="forgive_failures"]')
    expect(page.locator("#action-result")).to_contain_text("Done")
    assert status_site.status(fragile) == "PENDING"
    assert fragile in dialogs[0]
    expect(page.locator("#task-status")).to_have_text("pending")


def test_re_enable_after_confirm_makes_a_disabled_task_pending(status_site, page):
    flaky = status_site.ids["Flaky"]
    assert status_site.status(flaky) == "DISABLED"
    accept_dialogs(page)
    page.goto(task_url(status_site, flaky))
    page.click('button[data-action="re_enable_task"]')
    expect(page.locator("#task-status")).to_have_text("pending")
    detail = status_site.call("task_detail", task_id=flaky)
    assert (detail["status"], detail["failures"]) == ("PENDING", 0)


def test_dismissed_confirm_changes_nothing(status_site, page):
    report = status_site.ids["Report"]
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.goto(task_url(status_site, report))
    expect(page.locator("#task-status")).to_have_text("pending")
    page.click('button[data-action="mark_as_done"]')
    assert dialogs and report in dialogs[0]
    expect(page.locator("#action-result")).to_have_text("")
    assert status_site.status(report) == "PENDING"


# ----- graph ------------------------------------------------------------------------------------


def test_graph_draws_the_known_dag_with_links_and_collapses_families(status_site, page):
    merge = status_site.ids["Merge"]
    api = status_site.call("graph", task_id=merge, depth=3)
    page.goto(task_url(status_site, merge, "/graph?depth=3"))
    nodes = page.locator("svg#graph g.node[data-task-id]")
    expect(nodes).to_have_count(len(api["nodes"]))
    shown = nodes.evaluate_all("nodes => nodes.map(n => n.dataset.taskId)")
    assert sorted(shown) == sorted(n["task_id"] for n in api["nodes"])
    families = [n["family"] for n in api["nodes"]]
    assert {f: families.count(f) for f in families} == MERGE_FAMILIES
    assert len(api["edges"]) == MERGE_EDGES
    expect(page.locator("svg#graph .edge")).to_have_count(MERGE_EDGES)
    expect(page.locator(f'g.node.root[data-task-id="{merge}"]')).to_have_count(1)
    expect(page.locator("#graph-truncated")).to_be_hidden()
    assert _no_overlaps(page)
    screenshot(page, "graph", selector="main")

    page.check("#collapse")
    groups = page.locator("svg#graph g.node.group")
    expect(groups.and_(page.locator('[data-family="Part"][data-count="3"]'))).to_have_count(1)
    expect(groups.and_(page.locator('[data-family="Source"][data-count="2"]'))).to_have_count(1)
    # merged: Part -> Source, Merge -> Part, Merge -> Source
    expect(page.locator("svg#graph .edge")).to_have_count(3)
    assert "collapse=1" in page.url
    page.uncheck("#collapse")
    expect(page.locator("svg#graph .edge")).to_have_count(MERGE_EDGES)

    page.locator(f'g.node[data-task-id="{merge}"] a').click()
    page.wait_for_url(re.compile(re.escape(merge) + "$"))
    expect(page.locator("#task-status")).to_have_text("pending")


def test_graph_depth_selector_asks_the_server_for_that_depth(status_site, page):
    merge = status_site.ids["Merge"]
    page.goto(task_url(status_site, merge, "/graph"))
    expect(page.locator("svg#graph g.node")).to_have_count(6)
    page.select_option("#depth", "1")
    page.wait_for_url(re.compile(r"depth=1"))
    expected = status_site.call("graph", task_id=merge, depth=1)
    expect(page.locator("svg#graph g.node")).to_have_count(len(expected["nodes"]))
    expect(page.locator("svg#graph .edge")).to_have_count(len(expected["edges"]))


def _no_overlaps(page: Any) -> bool:
    """True when no two node boxes of the drawn graph overlap on screen."""
    boxes = page.eval_on_selector_all(
        "svg#graph g.node",
        "nodes => nodes.map(n => { const b = n.getBoundingClientRect();"
        " return [b.left, b.top, b.right, b.bottom]; })",
    )
    return not any(
        a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]
        for i, a in enumerate(boxes)
        for b in boxes[i + 1 :]
    )


LAYOUT_CHECK = """() => {
    const node = (key) => ({ key, task_id: key, family: key[0], status: "DONE" });
    // B1 needs A2 and B2 needs A1: in the order given, the two edges cross
    const crossed = PipesGraph.layout(
        ["A1", "A2", "B1", "B2"].map(node),
        [{ from: "B1", to: "A2" }, { from: "B2", to: "A1" }],
    );
    const chain = PipesGraph.layout(
        ["X", "Y", "Z"].map(node),
        [{ from: "Z", to: "Y" }, { from: "Y", to: "X" }, { from: "Z", to: "X" }],
    );
    const layerOf = (result) => Object.fromEntries(result.layers.flatMap(
        (layer, l) => layer.filter((v) => v.node).map((v) => [v.key, l])));
    return {
        crossings: crossed.crossings,
        order: crossed.layers[1].map((v) => v.key),
        layers: layerOf(chain),
        virtual: chain.layers[1].filter((v) => !v.node).length,
    };
}"""


def test_graph_layout_layers_by_longest_path_and_sweeps_out_crossings(status_site, page):
    page.goto(task_url(status_site, status_site.ids["Merge"], "/graph"))
    expect(page.locator("svg#graph g.node")).to_have_count(6)
    result = page.evaluate(LAYOUT_CHECK)
    assert result["crossings"] == 0
    assert result["order"] == ["B2", "B1"]
    assert result["layers"] == {"X": 0, "Y": 1, "Z": 2}
    assert result["virtual"] == 1  # Z -> X skips Y's layer through one virtual point


@pytest.fixture
def big_graph(pipesd_factory: DaemonFactory) -> Any:
    """A pipesd holding one root over 600 leaves: more than the graph call's 500 nodes."""
    daemon = pipesd_factory()
    leaves = [{"task_id": f"Leaf_{i}", "family": "Leaf", "deps": []} for i in range(600)]
    root = {"task_id": "Root_1", "family": "Root", "deps": [t["task_id"] for t in leaves]}
    daemon.call("add_tasks", worker="loader", tasks=[*leaves, root])
    return daemon


def test_graph_says_when_the_server_truncated_it_and_still_draws(big_graph, page):
    reply = big_graph.call("graph", task_id="Root_1", depth=1)
    assert reply["truncated"]
    page.goto(big_graph.url + "/tasks/Root_1/graph?depth=1")
    expect(page.locator("#graph-truncated")).to_be_visible()
    expect(page.locator("svg#graph g.node")).to_have_count(len(reply["nodes"]))
    expect(page.locator("svg#graph .edge")).to_have_count(len(reply["edges"]))
    page.check("#collapse")
    expect(page.locator('g.node.group[data-family="Leaf"]')).to_have_count(1)


# ----- workers and resources ----------------------------------------------------------------------


def test_workers_page_shows_host_pid_running_task_and_last_ping(status_site, page):
    page.goto(status_site.url + "/workers")
    rows = page.locator("tr.worker-row")
    expect(rows).to_have_count(len(status_site.call("worker_list")["workers"]))
    ops_pid = str(status_site.workers[0].pid)
    ops = rows.filter(has=page.locator(f"td:text-is('{ops_pid}')"))
    expect(ops).to_have_count(1)
    expect(ops.locator(f'a[href$="{status_site.ids["Blocker"]}"]')).to_have_count(1)
    expect(ops.locator("td.when")).to_have_text(re.compile(r"^\d+s ago$"))


def test_resources_page_saves_a_capacity_after_confirm(status_site, page):
    dialogs = accept_dialogs(page)
    page.goto(status_site.url + "/resources")
    row = page.locator('tr.resource-row[data-resource="db"]')
    expect(row.locator("input")).to_have_value("2")
    expect(row).to_contain_text("1")  # Blocker holds one
    row.locator("input").fill("5")
    row.locator("button.save").click()
    expect(page.locator("#action-result")).to_contain_text("Done")
    assert "db" in dialogs[0] and "5" in dialogs[0]
    resources = {r["name"]: r for r in status_site.call("resource_list")["resources"]}
    assert resources["db"]["total"] == 5
    expect(row.locator("input")).to_have_value("5")


# ----- token ------------------------------------------------------------------------------------


TOKEN_CONFIG = """
[scheduler]
auth_token = s3cret-token
public_read = {public_read}
"""


def _failed_task(daemon: Any) -> str:
    task = {"task_id": "Load_1", "family": "Load", "params": {"day": "1"}}
    daemon.call("add_tasks", worker="etl", tasks=[task])
    daemon.call("add_task", worker="etl", task={**task, "status": "FAILED", "error": "boom"})
    return task["task_id"]


def test_page_asks_for_the_token_then_works(pipesd_factory, page):
    daemon = pipesd_factory(TOKEN_CONFIG.format(public_read="false"), token="s3cret-token")
    task_id = _failed_task(daemon)
    page.goto(daemon.url + "/")
    expect(page.locator("#token-form")).to_be_visible()
    expect(page.locator('[data-count="FAILED"]')).to_have_text("–")

    page.fill("#token-input", "wrong")
    page.click("#token-form button[type=submit]")
    expect(page.locator("#token-reason")).to_contain_text("refused")

    page.fill("#token-input", "s3cret-token")
    page.click("#token-form button[type=submit]")
    expect(page.locator('[data-count="FAILED"]')).to_have_text("1")
    expect(page.locator("#token-form")).to_be_hidden()

    accept_dialogs(page)  # the token is kept for the tab: the task page and its action work
    page.goto(f"{daemon.url}/tasks/{task_id}")
    page.click('button[data-action="forgive_failures"]')
    expect(page.locator("#task-status")).to_have_text("pending")
    assert daemon.call("task_detail", task_id=task_id)["status"] == "PENDING"


def test_action_without_the_token_shows_the_error_and_changes_nothing(pipesd_factory, page):
    daemon = pipesd_factory(TOKEN_CONFIG.format(public_read="true"), token="s3cret-token")
    task_id = _failed_task(daemon)
    accept_dialogs(page)
    page.goto(f"{daemon.url}/tasks/{task_id}")  # reads need no token here
    expect(page.locator("#task-status")).to_have_text("failed")
    page.click('button[data-action="forgive_failures"]')
    expect(page.locator("#action-result")).to_contain_text("missing or wrong token")
    expect(page.locator("#token-form")).to_be_visible()
    assert daemon.call("task_detail", task_id=task_id)["status"] == "FAILED"

    page.fill("#token-input", "s3cret-token")
    page.click("#token-form button[type=submit]")
    page.click('button[data-action="forgive_failures"]')
    expect(page.locator("#task-status")).to_have_text("pending")
    assert daemon.call("task_detail", task_id=task_id)["status"] == "PENDING"
