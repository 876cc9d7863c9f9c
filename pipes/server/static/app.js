/* pipes status page: the API client, DOM helpers, and the overview, task list, task,
   workers and resources pages. Data from the API only ever enters the page through
   textContent, attributes or createElement: never as markup. */
"use strict";

const Pipes = (() => {
  const TOKEN_KEY = "pipes.token";
  const SVG_NS = "http://www.w3.org/2000/svg";
  const STATUS_LABELS = {
    PENDING: "pending", RUNNING: "running", BATCH_RUNNING: "batch running", DONE: "done",
    FAILED: "failed", DISABLED: "disabled", UPSTREAM_FAILED: "upstream failed", UNKNOWN: "unknown",
  };
  let clockSkew = 0; // server clock minus ours, in seconds, from the Date header
  let reload = () => {};

  class ApiError extends Error {
    constructor(message, status) {
      super(message);
      this.status = status;
    }
  }

  // ----- the API ------------------------------------------------------------------------

  /** POST /api/v1/<method>; resolves to the reply, rejects with ApiError (401 asks for a token). */
  async function api(method, body) {
    const headers = { "Content-Type": "application/json" };
    const token = sessionStorage.getItem(TOKEN_KEY);
    if (token) headers.Authorization = "Bearer " + token;
    let response;
    try {
      response = await fetch("/api/v1/" + method, {
        method: "POST", headers, body: JSON.stringify(body || {}), cache: "no-store",
      });
    } catch (err) {
      throw new ApiError("cannot reach pipesd (" + err.message + ")", 0);
    }
    noteServerClock(response.headers.get("Date"));
    let reply = null;
    try {
      reply = await response.json();
    } catch (err) {
      reply = null;
    }
    if (!response.ok) {
      const message = (reply && reply.error) || "HTTP " + response.status;
      if (response.status === 401) {
        askForToken(token ? "The token was refused: " + message : "This scheduler needs a token.");
      }
      throw new ApiError(method + ": " + message, response.status);
    }
    return reply;
  }

  function noteServerClock(header) {
    const server = Date.parse(header || "");
    if (!Number.isNaN(server)) {
      const skew = server / 1000 - Date.now() / 1000;
      clockSkew = Math.abs(skew) > 2 ? skew : 0; // the header has 1 s resolution
    }
  }

  function now() {
    return Date.now() / 1000 + clockSkew;
  }

  function askForToken(reason) {
    const form = document.getElementById("token-form");
    document.getElementById("token-reason").textContent = reason;
    form.hidden = false;
    document.getElementById("token-input").focus();
  }

  function setupTokenForm() {
    const form = document.getElementById("token-form");
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const input = document.getElementById("token-input");
      sessionStorage.setItem(TOKEN_KEY, input.value.trim());
      input.value = "";
      form.hidden = true;
      reload();
    });
  }

  /** Run load() now and then every `every` ms while the tab is visible; errors go to the banner. */
  function start(load, every) {
    let timer = null;
    let busy = false;
    let rerun = false;
    const run = async () => {
      clearTimeout(timer);
      if (busy) { // e.g. an action finished during a poll: load again right after it
        rerun = true;
        return;
      }
      busy = true;
      let again = Boolean(every);
      try {
        await load();
        showError(null);
        const stamp = document.getElementById("refresh-state");
        stamp.textContent = (every ? "live · " : "") + "updated " + new Date().toLocaleTimeString();
      } catch (err) {
        again = again && err.status !== 401; // polling without a token only repeats the 401
        showError(err);
      } finally {
        busy = false;
      }
      if (rerun) {
        rerun = false;
        run();
      } else if (again && !document.hidden) {
        timer = setTimeout(run, every);
      }
    };
    reload = run;
    document.addEventListener("visibilitychange", () => {
      if (document.hidden) clearTimeout(timer);
      else if (every) run();
    });
    run();
  }

  function showError(err) {
    const banner = document.getElementById("error");
    banner.hidden = !err || err.status === 401;
    banner.textContent = err ? err.message : "";
  }

  // ----- DOM helpers --------------------------------------------------------------------

  /** createElement with properties: "text" becomes textContent, anything else an attribute. */
  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    setProps(node, props);
    for (const child of children) {
      if (child !== null && child !== undefined && child !== false) node.append(child);
    }
    return node;
  }

  function svg(tag, props, ...children) {
    const node = document.createElementNS(SVG_NS, tag);
    setProps(node, props);
    for (const child of children) if (child) node.append(child);
    return node;
  }

  function setProps(node, props) {
    for (const [key, value] of Object.entries(props || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "text") node.textContent = String(value);
      else if (key === "class") node.setAttribute("class", value);
      else node.setAttribute(key, value === true ? "" : String(value));
    }
  }

  function $(selector) {
    return document.querySelector(selector);
  }

  function taskHref(taskId) {
    return "/tasks/" + encodeURIComponent(taskId);
  }

  function taskLink(taskId) {
    return el("a", { href: taskHref(taskId), class: "task-id", text: taskId });
  }

  function badge(status) {
    return el("span", { class: "status s-" + status, text: STATUS_LABELS[status] || status });
  }

  function ago(seconds) {
    if (seconds === null || seconds === undefined) return "–";
    const delta = Math.max(0, Math.round(now() - seconds));
    if (delta < 120) return delta + "s ago";
    if (delta < 7200) return Math.round(delta / 60) + " min ago";
    if (delta < 172800) return Math.round(delta / 3600) + " h ago";
    return Math.round(delta / 86400) + " days ago";
  }

  function when(seconds) {
    if (seconds === null || seconds === undefined) return "–";
    return new Date(seconds * 1000).toLocaleString();
  }

  function timeCell(seconds) {
    return el("td", { class: "when", title: when(seconds), text: ago(seconds) });
  }

  function number(n) {
    return Number(n || 0).toLocaleString("en");
  }

  /** A link for absolute http(s) URLs only; anything else (javascript:, data:, relative) stays text. */
  function safeLink(url) {
    let parsed = null;
    try {
      parsed = /^https?:\/\//i.test(url) ? new URL(url) : null;
    } catch (err) {
      parsed = null;
    }
    if (parsed) return el("a", { href: parsed.href, rel: "noopener noreferrer", target: "_blank", text: url });
    return el("span", { text: url });
  }

  function setText(selector, text) {
    const node = $(selector);
    if (node.textContent !== text) node.textContent = text;
  }

  // ----- overview -----------------------------------------------------------------------

  async function loadOverview() {
    const data = await api("overview");
    for (const node of document.querySelectorAll("[data-count]")) {
      const count = data.counts[node.dataset.count] || 0;
      node.textContent = number(count);
      const card = node.closest(".count");
      card.classList.toggle("zero", count === 0);
      if (node.dataset.count === "UNKNOWN") card.hidden = count === 0; // rare: shown only when there are some
    }
    setText("#total", number(data.total));
    $("#paused").hidden = !data.paused;
    setText("#workers-live", number(data.workers.live));
    setText("#workers-total", number(data.workers.total));
    $("#resources").replaceChildren(...resourceRows(data.resources));
    $("#failures").replaceChildren(...failureRows(data.recent_failures));
    drawTimeline($("#timeline"), data.timeline);
  }

  function resourceRows(resources) {
    if (!resources.length) return [el("tr", {}, el("td", { class: "muted", text: "none configured" }))];
    return resources.map((r) => el("tr", {},
      el("td", { text: r.name }),
      el("td", {}, meter(r.used, r.total)),
      el("td", { class: "num", text: r.used + " / " + r.total })));
  }

  function meter(used, total) {
    const bar = el("span", { class: "fill" });
    bar.style.width = Math.min(100, total ? (100 * used) / total : used ? 100 : 0) + "%";
    return el("span", { class: "meter" + (used >= total ? " full" : "") }, bar);
  }

  function failureRows(failures) {
    if (!failures.length) {
      return [el("tr", {}, el("td", { colspan: 4, class: "muted", text: "No failures." }))];
    }
    return failures.map((f) => el("tr", { class: "task-row", "data-task-id": f.task_id },
      el("td", {}, badge(f.status)),
      el("td", {}, taskLink(f.task_id)),
      el("td", {}, el("code", { class: "error-line", text: f.error_line || "" })),
      timeCell(f.updated)));
  }

  /** Done (bottom) and failed (top) per bucket as stacked SVG bars. */
  function drawTimeline(box, timeline) {
    const width = 600;
    const height = 120;
    const buckets = timeline.done.length;
    const step = width / Math.max(1, buckets);
    let peak = 1;
    for (let i = 0; i < buckets; i++) peak = Math.max(peak, timeline.done[i] + timeline.failed[i]);
    const scale = (height - 16) / peak;
    const chart = svg("svg", {
      viewBox: "0 0 " + width + " " + (height + 16), class: "timeline-chart", role: "img",
      "aria-label": "tasks done and failed per minute",
    });
    chart.append(svg("line", { x1: 0, x2: width, y1: height, y2: height, class: "axis" }));
    for (let i = 0; i < buckets; i++) {
      const done = timeline.done[i];
      const failed = timeline.failed[i];
      const start = new Date((timeline.start + i * timeline.bucket_seconds) * 1000);
      const group = svg("g", {}, svg("title", {
        text: start.toLocaleTimeString() + ": " + done + " done, " + failed + " failed",
      }));
      group.append(svg("rect", { x: i * step, y: 0, width: step, height, class: "hover" }));
      const x = i * step + 1;
      const w = Math.max(1, step - 2);
      if (done) group.append(svg("rect", { x, y: height - done * scale, width: w, height: done * scale, class: "bar-done" }));
      if (failed) {
        const y = height - (done + failed) * scale;
        group.append(svg("rect", { x, y, width: w, height: failed * scale, class: "bar-failed" }));
      }
      chart.append(group);
    }
    const minutes = Math.round((buckets * timeline.bucket_seconds) / 60);
    chart.append(svg("text", { x: 0, y: height + 13, class: "tick", text: "−" + minutes + " min" }));
    chart.append(svg("text", { x: width, y: height + 13, class: "tick end", text: "now" }));
    chart.append(svg("text", { x: 2, y: 10, class: "tick", text: "max " + peak + "/min" }));
    box.replaceChildren(chart);
  }

  // ----- task list ----------------------------------------------------------------------

  const PAGE_SIZE = 50;

  function listQuery() {
    const url = new URLSearchParams(location.search);
    return {
      status: url.get("status") || "",
      family: url.get("family") || "",
      search: url.get("search") || "",
      sort: url.get("sort") || "-updated",
      page: Math.max(1, parseInt(url.get("page") || "1", 10) || 1),
    };
  }

  /** /tasks?... for the current query with some fields changed; empty fields are left out. */
  function listHref(changes) {
    const query = { ...listQuery(), page: 1, ...changes };
    const url = new URLSearchParams();
    for (const key of ["status", "family", "search", "sort", "page"]) {
      const value = query[key];
      if (value && !(key === "page" && value === 1) && !(key === "sort" && value === "-updated")) {
        url.set(key, value);
      }
    }
    const text = url.toString();
    return "/tasks" + (text ? "?" + text : "");
  }

  function setupTaskList() {
    const query = listQuery();
    $("#f-status").value = query.status;
    $("#f-search").value = query.search;
    $("#f-sort").value = query.sort;
    $("#f-family").value = query.family;
    $("#filters").addEventListener("submit", (event) => {
      event.preventDefault();
      location.assign(listHref({
        status: $("#f-status").value, search: $("#f-search").value.trim(),
        sort: $("#f-sort").value, family: $("#f-family").value,
      }));
    });
    for (const id of ["#f-status", "#f-sort"]) {
      $(id).addEventListener("change", () => $("#filters").requestSubmit());
    }
  }

  async function loadTaskList() {
    const query = listQuery();
    const body = { limit: PAGE_SIZE, offset: (query.page - 1) * PAGE_SIZE, sort: query.sort };
    for (const key of ["status", "family", "search"]) if (query[key]) body[key] = query[key];
    const reply = await api("task_list", body);
    $("#task-rows").replaceChildren(...reply.tasks.map(taskRow));
    $("#empty").hidden = reply.tasks.length > 0;
    setText("#total", number(reply.total));
    const first = body.offset + 1;
    const last = body.offset + reply.tasks.length;
    const pages = Math.max(1, Math.ceil(reply.total / PAGE_SIZE));
    setText("#page-info", reply.tasks.length
      ? "page " + query.page + " of " + pages + " · tasks " + number(first) + "–" + number(last)
      : "page " + query.page + " of " + pages);
    pagerLink($("#prev-page"), query.page > 1 ? listHref({ ...query, page: query.page - 1 }) : null);
    pagerLink($("#next-page"), last < reply.total ? listHref({ ...query, page: query.page + 1 }) : null);
    $("#families").replaceChildren(...familyItems(reply.families || [], query));
  }

  function pagerLink(link, href) {
    link.hidden = !href;
    if (href) link.setAttribute("href", href);
  }

  function taskRow(task) {
    const params = Object.entries(task.params || {}).map(([k, v]) => k + "=" + v).join(", ");
    return el("tr", { class: "task-row", "data-task-id": task.task_id },
      el("td", {}, badge(task.status)),
      el("td", {}, taskLink(task.task_id)),
      el("td", {}, el("a", { href: listHref({ family: task.family }), text: task.family })),
      el("td", { class: "params", title: params, text: params.length > 120 ? params.slice(0, 119) + "…" : params }),
      el("td", { class: "muted", text: task.worker_running || "" }),
      timeCell(task.updated));
  }

  const MAX_FAMILIES = 300;

  function familyItems(families, query) {
    const items = [];
    if (query.family) {
      items.push(el("li", {}, el("a", { href: listHref({ family: "" }), class: "all", text: "← all families" })));
    }
    for (const f of families.slice(0, MAX_FAMILIES)) {
      const link = el("a", { href: listHref({ family: f.family }) },
        el("span", { class: "name", text: f.family || "(none)" }),
        el("span", { class: "n", text: number(f.count) }));
      items.push(el("li", { class: f.family === query.family ? "active" : "", "data-family": f.family }, link));
    }
    if (families.length > MAX_FAMILIES) {
      items.push(el("li", { class: "muted", text: "… " + (families.length - MAX_FAMILIES) + " more" }));
    }
    if (!families.length) items.push(el("li", { class: "muted", text: "none" }));
    return items;
  }

  // ----- one task -----------------------------------------------------------------------

  const ACTIONS = {
    re_enable_task: { label: "Re-enable", allowed: (s) => s === "DISABLED" },
    forgive_failures: { label: "Forgive the failures of", allowed: (s) => s === "FAILED" || s === "DISABLED" },
    mark_as_done: { label: "Mark as done", allowed: (s) => !["RUNNING", "BATCH_RUNNING", "DONE"].includes(s) },
  };

  function taskId() {
    return document.body.dataset.taskId;
  }

  function setupTask() {
    const id = taskId();
    $("#graph-link").setAttribute("href", taskHref(id) + "/graph");
    for (const button of document.querySelectorAll("button[data-action]")) {
      button.addEventListener("click", () => runAction(button.dataset.action, { task_id: id }));
    }
  }

  /** confirm(), then POST; the outcome (or the error, e.g. a missing token) is shown. */
  async function runAction(method, body, question) {
    const result = $("#action-result");
    const prompt = question || ACTIONS[method].label + " " + body.task_id + "?";
    if (!window.confirm(prompt)) return;
    result.className = "";
    result.textContent = "working…";
    try {
      await api(method, body);
      result.className = "ok";
      result.textContent = "Done: " + method.replaceAll("_", " ") + ".";
      await reload();
    } catch (err) {
      result.className = "error";
      result.textContent = "Failed: " + err.message;
    }
  }

  async function loadTask() {
    const task = await api("task_detail", { task_id: taskId() });
    const status = $("#task-status");
    status.className = "status s-" + task.status;
    status.textContent = STATUS_LABELS[task.status] || task.status;
    document.title = task.task_id + " · pipes";
    $("#family-link").setAttribute("href", listHref({ family: task.family }));
    $("#facts").replaceChildren(...facts(task));
    showProgress(task.progress_percentage);
    const message = $("#status-message");
    message.hidden = !task.status_message;
    message.textContent = task.status_message || "";
    $("#error-panel").hidden = !task.error;
    setText("#traceback", task.error || "");
    showLog(task.log);
    $("#params tbody").replaceChildren(...paramRows(task.params));
    $("#history").replaceChildren(...historyRows(task.history || []));
    $("#deps").replaceChildren(...relatedRows(task.deps, "no dependencies"));
    $("#dependents").replaceChildren(...relatedRows(task.dependents, "nothing needs this task"));
    for (const button of document.querySelectorAll("button[data-action]")) {
      const allowed = ACTIONS[button.dataset.action].allowed(task.status);
      button.disabled = !allowed;
      button.title = allowed ? "" : "not for a task that is " + (STATUS_LABELS[task.status] || task.status);
    }
  }

  function facts(task) {
    const items = [
      ["Family", el("a", { href: listHref({ family: task.family }), text: task.family })],
      ["Module", task.module || "–"],
      ["Priority", String(task.priority)],
      ["Worker", task.worker_running || "–"],
      ["Started", task.time_running ? when(task.time_running) : "–"],
      ["Last change", when(task.updated) + " (" + ago(task.updated) + ")"],
      ["Failures", String(task.failures)],
    ];
    if (task.retry_at) items.push(["Retry at", when(task.retry_at)]);
    const resources = Object.entries(task.resources || {}).map(([k, v]) => k + "=" + v).join(", ");
    if (resources) items.push(["Resources", resources]);
    if (task.stakeholders) items.push(["Stakeholders", task.stakeholders.join(", ") || "–"]);
    if (task.tracking_url) items.push(["Tracking URL", safeLink(task.tracking_url)]);
    return items.flatMap(([term, value]) => [el("dt", { text: term }), el("dd", {}, value)]);
  }

  function showProgress(percentage) {
    const box = $("#progress");
    box.hidden = percentage === null || percentage === undefined;
    if (box.hidden) return;
    const pct = Math.max(0, Math.min(100, Number(percentage)));
    box.querySelector(".bar").style.width = pct + "%";
    box.querySelector(".pct").textContent = pct.toFixed(pct % 1 ? 1 : 0) + "%";
  }

  function showLog(log) {
    const pre = $("#log-tail");
    pre.classList.toggle("none", !log);
    const text = log || "No log was shipped for this task (a worker sends it when the task ends).";
    if (pre.textContent !== text) {
      pre.textContent = text;
      pre.scrollTop = pre.scrollHeight; // the end is the interesting part
    }
  }

  function paramRows(params) {
    const entries = Object.entries(params || {});
    if (!entries.length) return [el("tr", {}, el("td", { class: "muted", text: "no parameters" }))];
    return entries.map(([name, value]) => el("tr", {},
      el("th", { text: name }), el("td", {}, el("code", { text: value }))));
  }

  const MAX_HISTORY = 100;

  function historyRows(history) {
    const rows = history.slice(-MAX_HISTORY).reverse().map((h) => el("tr", {},
      el("td", { class: "when", text: when(h.time) }),
      el("td", {}, badge(h.status)),
      el("td", { text: h.worker || "" }),
      el("td", { text: h.host || "" })));
    if (history.length > MAX_HISTORY) {
      rows.push(el("tr", {}, el("td", { colspan: 4, class: "muted", text: (history.length - MAX_HISTORY) + " older entries not shown" })));
    }
    return rows.length ? rows : [el("tr", {}, el("td", { class: "muted", text: "no history" }))];
  }

  const MAX_RELATED = 200;

  function relatedRows(related, none) {
    const rows = (related || []).slice(0, MAX_RELATED).map((t) => el("tr", { "data-task-id": t.task_id },
      el("td", {}, badge(t.status)), el("td", {}, taskLink(t.task_id))));
    if (related.length > MAX_RELATED) {
      rows.push(el("tr", {}, el("td", { colspan: 2, class: "muted", text: "… and " + (related.length - MAX_RELATED) + " more" })));
    }
    return rows.length ? rows : [el("tr", {}, el("td", { class: "muted", text: none }))];
  }

  // ----- workers and resources ----------------------------------------------------------

  const MAX_RUNNING_SHOWN = 5;

  async function loadWorkers() {
    const reply = await api("worker_list");
    const workers = reply.workers.slice().sort((a, b) => b.last_seen - a.last_seen);
    $("#worker-rows").replaceChildren(...workers.map(workerRow));
    $("#empty").hidden = workers.length > 0;
  }

  function workerRow(w) {
    const info = w.info || {};
    const running = el("td", { class: "running" });
    for (const id of w.running.slice(0, MAX_RUNNING_SHOWN)) running.append(taskLink(id), " ");
    if (w.running.length > MAX_RUNNING_SHOWN) running.append("+" + (w.running.length - MAX_RUNNING_SHOWN) + " more");
    return el("tr", { class: "worker-row", "data-worker": w.worker },
      el("td", {}, el("code", { text: w.worker }), w.assistant ? el("span", { class: "tag", text: "assistant" }) : null),
      el("td", { text: info.host === undefined ? "–" : String(info.host) }),
      el("td", { text: info.pid === undefined ? "–" : String(info.pid) }),
      running,
      el("td", { class: "num", text: number(w.tasks) }),
      el("td", { class: "when", title: when(w.last_seen), text: ago(w.last_seen) }));
  }

  async function loadResources() {
    const reply = await api("resource_list");
    $("#resource-rows").replaceChildren(...reply.resources.map(resourceRow));
    $("#empty").hidden = reply.resources.length > 0;
  }

  function resourceRow(r) {
    const input = el("input", { type: "number", min: 0, step: 1, value: r.total, "aria-label": "capacity of " + r.name });
    const save = el("button", { type: "button", class: "save", text: "Save" });
    save.addEventListener("click", () => {
      const text = input.value.trim();
      const amount = text === "" ? null : Number(text);
      if (amount !== null && !(Number.isInteger(amount) && amount >= 0)) {
        $("#action-result").className = "error";
        $("#action-result").textContent = "Capacity must be a whole number ≥ 0.";
        return;
      }
      const question = amount === null
        ? "Remove resource " + r.name + " (its capacity goes back to 1)?"
        : "Set the capacity of " + r.name + " to " + amount + "?";
      runAction("update_resource", { name: r.name, amount }, question);
    });
    return el("tr", { class: "resource-row", "data-resource": r.name },
      el("td", {}, el("code", { text: r.name })),
      el("td", {}, meter(r.used, r.total), " " + r.used),
      el("td", {}, input),
      el("td", {}, save));
  }

  // ----- start ----------------------------------------------------------------------------

  const PAGES = {
    overview: () => start(loadOverview, 5000),
    tasks: () => { setupTaskList(); start(loadTaskList, 10000); },
    task: () => { setupTask(); start(loadTask, 5000); },
    workers: () => start(loadWorkers, 5000),
    resources: () => start(loadResources, 0),
  };

  function main() {
    setupTokenForm();
    const page = document.body.dataset.page;
    const nav = document.querySelector('nav a[data-nav="' + (page === "task" || page === "graph" ? "tasks" : page) + '"]');
    if (nav) nav.classList.add("active");
    if (PAGES[page]) PAGES[page]();
  }

  document.addEventListener("DOMContentLoaded", main);

  return { api, start, el, svg, $, badge, taskHref, taskLink, number, STATUS_LABELS };
})();
