/* pipes status page: the dependency graph of one task as a layered SVG drawing.

   Layout (Sugiyama style): a task's layer is the longest path to a task with no
   dependencies, so dependencies sit left of what needs them; edges that skip layers get
   virtual points in the layers between; the order within each layer comes from barycenter
   sweeps (down and up), keeping the order with the fewest crossings seen. */
"use strict";

const PipesGraph = (() => {
  const NODE_W = 210;
  const NODE_H = 36;
  const GAP_X = 70;
  const GAP_Y = 12;
  const VIRTUAL_H = 10;
  const PAD = 20;
  const SWEEPS = 12;
  const SEVERITY = ["FAILED", "DISABLED", "UPSTREAM_FAILED", "UNKNOWN", "RUNNING", "BATCH_RUNNING", "PENDING", "DONE"];

  // ----- layout (pure functions) ----------------------------------------------------------

  /** Layer of each node: 0 with no dependencies in the graph, else 1 + the deepest dependency. */
  function layerOf(ids, edges) {
    const deps = new Map(ids.map((id) => [id, []]));
    for (const e of edges) deps.get(e.from).push(e.to);
    const layer = new Map();
    const onPath = new Set();
    for (const root of ids) {
      const stack = [[root, 0]]; // iterative DFS: deep chains must not overflow the JS stack
      while (stack.length) {
        const top = stack[stack.length - 1];
        const [id, index] = top;
        if (layer.has(id)) { stack.pop(); continue; }
        onPath.add(id);
        const next = deps.get(id)[index];
        if (next === undefined) {
          let depth = 0;
          for (const d of deps.get(id)) if (layer.has(d)) depth = Math.max(depth, layer.get(d) + 1);
          layer.set(id, depth);
          onPath.delete(id);
          stack.pop();
        } else {
          top[1] = index + 1;
          if (!layer.has(next) && !onPath.has(next)) stack.push([next, 0]); // a cycle is cut here
        }
      }
    }
    return layer;
  }

  /** Layers of vertices (real nodes and virtual points) and each edge's chain of vertices. */
  function buildLayers(nodes, edges) {
    const ids = nodes.map((n) => n.key);
    const rank = layerOf(ids, edges);
    const count = Math.max(0, ...rank.values()) + 1;
    const layers = Array.from({ length: count }, () => []);
    const vertex = new Map();
    for (const node of nodes) {
      const v = { key: node.key, node, layer: rank.get(node.key), up: [], down: [] };
      vertex.set(node.key, v);
      layers[v.layer].push(v);
    }
    const chains = [];
    for (const e of edges) {
      let lower = vertex.get(e.to); // the dependency, on the left
      const upper = vertex.get(e.from);
      if (lower.layer >= upper.layer) continue; // only an edge inside a cycle; not drawn
      const chain = [lower];
      for (let l = lower.layer + 1; l < upper.layer; l++) {
        const point = { key: e.from + "\u0000" + e.to + "\u0000" + l, node: null, layer: l, up: [], down: [] };
        layers[l].push(point);
        link(lower, point);
        chain.push(point);
        lower = point;
      }
      link(lower, upper);
      chain.push(upper);
      chains.push({ edge: e, chain });
    }
    return { layers, chains };
  }

  function link(left, right) {
    left.up.push(right);
    right.down.push(left);
  }

  function crossings(layers) {
    let total = 0;
    for (let l = 0; l + 1 < layers.length; l++) {
      const segments = [];
      for (const v of layers[l]) for (const w of v.up) segments.push([v.pos, w.pos]);
      for (let i = 0; i < segments.length; i++) {
        for (let j = i + 1; j < segments.length; j++) {
          const [a, b] = segments[i];
          const [c, d] = segments[j];
          if ((a - c) * (b - d) < 0) total++;
        }
      }
    }
    return total;
  }

  function number(layer) {
    layer.forEach((v, i) => { v.pos = i; });
  }

  /** Reorder one layer by the mean position of each vertex's neighbours on one side. */
  function sortByBarycenter(layer, side) {
    const key = new Map();
    for (const v of layer) {
      const near = v[side];
      key.set(v, near.length ? near.reduce((sum, w) => sum + w.pos, 0) / near.length : v.pos);
    }
    layer.sort((a, b) => key.get(a) - key.get(b) || a.pos - b.pos);
    number(layer);
  }

  /** Barycenter sweeps, alternately from the left and from the right, keeping the best order. */
  function order(layers) {
    layers.forEach(number);
    let best = layers.map((layer) => layer.slice());
    let fewest = crossings(layers);
    for (let sweep = 0; sweep < SWEEPS && fewest > 0; sweep++) {
      if (sweep % 2 === 0) for (let l = 1; l < layers.length; l++) sortByBarycenter(layers[l], "down");
      else for (let l = layers.length - 2; l >= 0; l--) sortByBarycenter(layers[l], "up");
      const now = crossings(layers);
      if (now < fewest) {
        fewest = now;
        best = layers.map((layer) => layer.slice());
      }
    }
    best.forEach(number);
    return { layers: best, crossings: fewest };
  }

  /** x, y of every vertex: layers are columns, each centred on the tallest. */
  function place(layers) {
    const heights = layers.map((layer) => layer.reduce((h, v) => h + (v.node ? NODE_H : VIRTUAL_H) + GAP_Y, -GAP_Y));
    const tallest = Math.max(NODE_H, ...heights);
    layers.forEach((layer, l) => {
      let y = PAD + (tallest - heights[l]) / 2;
      for (const v of layer) {
        v.x = PAD + l * (NODE_W + GAP_X);
        v.h = v.node ? NODE_H : VIRTUAL_H;
        v.y = y;
        y += v.h + GAP_Y;
      }
    });
    return {
      width: 2 * PAD + layers.length * (NODE_W + GAP_X) - GAP_X,
      height: 2 * PAD + tallest,
    };
  }

  /** The whole layout: {layers, chains, width, height, crossings}. */
  function layout(nodes, edges) {
    const built = buildLayers(nodes, edges);
    const ordered = order(built.layers);
    const size = place(ordered.layers);
    return { layers: ordered.layers, chains: built.chains, crossings: ordered.crossings, ...size };
  }

  // ----- collapse by family ---------------------------------------------------------------

  function worst(statuses) {
    let best = SEVERITY.length;
    for (const s of statuses) {
      const i = SEVERITY.indexOf(s);
      best = Math.min(best, i < 0 ? SEVERITY.length - 1 : i);
    }
    return SEVERITY[Math.min(best, SEVERITY.length - 1)];
  }

  /** Same-family nodes of one layer become one node; edges between groups are merged. */
  function collapse(nodes, edges) {
    const rank = layerOf(nodes.map((n) => n.key), edges);
    const groups = new Map();
    const groupOf = new Map();
    for (const n of nodes) {
      const key = rank.get(n.key) + "\u0000" + n.family;
      if (!groups.has(key)) groups.set(key, { key, family: n.family, members: [] });
      groups.get(key).members.push(n);
      groupOf.set(n.key, key);
    }
    const merged = [];
    for (const g of groups.values()) {
      if (g.members.length === 1) {
        merged.push({ ...g.members[0], key: g.key });
      } else {
        const statuses = g.members.map((m) => m.status);
        merged.push({
          key: g.key, family: g.family, status: worst(statuses), members: g.members,
          root: g.members.some((m) => m.root),
        });
      }
    }
    const seen = new Set();
    const mergedEdges = [];
    for (const e of edges) {
      const from = groupOf.get(e.from);
      const to = groupOf.get(e.to);
      const key = from + "\u0001" + to;
      if (from !== to && !seen.has(key)) {
        seen.add(key);
        mergedEdges.push({ from, to });
      }
    }
    return { nodes: merged, edges: mergedEdges };
  }

  // ----- drawing --------------------------------------------------------------------------

  function clip(text, max) {
    return text.length > max ? text.slice(0, max - 1) + "…" : text;
  }

  function summary(members) {
    const counts = new Map();
    for (const m of members) counts.set(m.status, (counts.get(m.status) || 0) + 1);
    return [...counts].map(([s, n]) => n + " " + (Pipes.STATUS_LABELS[s] || s)).join(", ");
  }

  function drawNode(v) {
    const n = v.node;
    const group = n.members !== undefined;
    const label = Pipes.STATUS_LABELS[n.status] || n.status;
    const props = group
      ? { class: "node group s-" + n.status, "data-family": n.family, "data-count": n.members.length }
      : { class: "node s-" + n.status, "data-task-id": n.task_id };
    if (n.root) props.class += " root";
    props.transform = "translate(" + v.x + "," + v.y + ")";
    const href = group ? "/tasks?family=" + encodeURIComponent(n.family) : Pipes.taskHref(n.task_id);
    const title = group
      ? n.family + " × " + n.members.length + ": " + summary(n.members)
      : n.task_id + " (" + label + ")";
    const line1 = group ? n.family + " × " + n.members.length : n.family || n.task_id;
    const line2 = group ? summary(n.members) : n.task_id;
    return Pipes.svg("g", props, Pipes.svg("a", { href },
      Pipes.svg("title", { text: title }),
      Pipes.svg("rect", { width: NODE_W, height: NODE_H, rx: 5 }),
      Pipes.svg("rect", { width: 6, height: NODE_H, rx: 2, class: "strip" }),
      Pipes.svg("text", { x: 12, y: 15, class: "family", text: clip(line1, 30) }),
      Pipes.svg("text", { x: 12, y: 29, class: "id", text: clip(line2, 34) })));
  }

  /** A smooth path from the dependency (left) through any virtual points to its dependent. */
  function edgePath(chain) {
    const first = chain[0];
    let x = first.x + NODE_W;
    let y = first.y + first.h / 2;
    let d = "M" + x + "," + y;
    for (let i = 1; i < chain.length; i++) {
      const v = chain[i];
      const tx = v.x;
      const ty = v.y + v.h / 2;
      const bend = (tx - x) / 2;
      d += " C" + (x + bend) + "," + y + " " + (tx - bend) + "," + ty + " " + tx + "," + ty;
      x = tx;
      y = ty;
      if (!v.node) { // through the virtual point's column
        x = v.x + NODE_W;
        d += " L" + x + "," + y;
      }
    }
    return d;
  }

  function draw(svgNode, graph) {
    const result = layout(graph.nodes, graph.edges);
    svgNode.setAttribute("width", result.width);
    svgNode.setAttribute("height", result.height);
    svgNode.setAttribute("viewBox", "0 0 " + result.width + " " + result.height);
    const defs = Pipes.svg("defs", {}, Pipes.svg("marker", {
      id: "arrow", viewBox: "0 0 10 10", refX: 10, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto",
    }, Pipes.svg("path", { d: "M0,0 L10,5 L0,10 z", class: "arrow" })));
    const edgeLayer = Pipes.svg("g", { class: "edges" });
    for (const { edge, chain } of result.chains) {
      const dep = chain[0].node;
      edgeLayer.append(Pipes.svg("path", {
        class: "edge s-" + dep.status, d: edgePath(chain), "marker-end": "url(#arrow)",
        "data-from": edge.from, "data-to": edge.to,
      }));
    }
    const nodeLayer = Pipes.svg("g", { class: "nodes" });
    for (const layer of result.layers) for (const v of layer) if (v.node) nodeLayer.append(drawNode(v));
    svgNode.replaceChildren(defs, edgeLayer, nodeLayer);
    return result;
  }

  // ----- the page -------------------------------------------------------------------------

  let data = null;
  let scrolled = false;

  function options() {
    const url = new URLSearchParams(location.search);
    return {
      depth: Math.max(1, parseInt(url.get("depth") || "3", 10) || 3),
      collapse: url.get("collapse") === "1",
    };
  }

  function render() {
    const opts = options();
    const rootId = document.body.dataset.taskId;
    const nodes = data.nodes.map((n) => ({ ...n, key: n.task_id, root: n.task_id === rootId }));
    const known = new Set(nodes.map((n) => n.key));
    const edges = data.edges.filter((e) => known.has(e.from) && known.has(e.to));
    const shown = opts.collapse ? collapse(nodes, edges) : { nodes, edges };
    const box = document.getElementById("graph");
    const result = draw(box, shown);
    document.getElementById("graph-truncated").hidden = !data.truncated;
    document.getElementById("graph-stats").textContent =
      Pipes.number(data.nodes.length) + " tasks, " + Pipes.number(data.edges.length) + " dependencies" +
      (opts.collapse ? " · " + shown.nodes.length + " boxes after collapsing" : "") +
      (result.crossings ? " · " + result.crossings + " crossings" : "");
    if (!scrolled) { // once: later refreshes keep where the reader scrolled to
      scrolled = true;
      const frame = box.parentElement;
      for (const layer of result.layers) {
        for (const v of layer) {
          if (v.node && v.node.root) {
            frame.scrollLeft = v.x + NODE_W / 2 - frame.clientWidth / 2;
            frame.scrollTop = v.y + NODE_H / 2 - frame.clientHeight / 2;
          }
        }
      }
    }
  }

  async function load() {
    const opts = options();
    data = await Pipes.api("graph", { task_id: document.body.dataset.taskId, depth: opts.depth });
    render();
  }

  function legend() {
    const box = document.getElementById("legend");
    for (const [status, label] of Object.entries(Pipes.STATUS_LABELS)) {
      box.append(Pipes.el("span", { class: "swatch s-" + status }), label + " ");
    }
    box.append(Pipes.el("span", { class: "muted", text: "· arrows run from a task to the tasks that need it" }));
  }

  function setup() {
    const opts = options();
    const depth = document.getElementById("depth");
    if (![...depth.options].some((o) => o.value === String(opts.depth))) {
      depth.append(Pipes.el("option", { value: opts.depth, text: opts.depth }));
    }
    depth.value = String(opts.depth);
    depth.addEventListener("change", () => document.getElementById("graph-form").requestSubmit());
    const toggle = document.getElementById("collapse");
    toggle.checked = opts.collapse;
    toggle.addEventListener("change", () => { // redraw in place: no need to ask the server again
      const url = new URL(location.href);
      if (toggle.checked) url.searchParams.set("collapse", "1");
      else url.searchParams.delete("collapse");
      history.replaceState(null, "", url);
      if (data) render();
    });
    legend();
    Pipes.start(load, 10000);
  }

  if (document.body && document.body.dataset.page === "graph") {
    document.addEventListener("DOMContentLoaded", setup);
  }

  return { layout, collapse, layerOf };
})();
