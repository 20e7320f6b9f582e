/* posebridge report: draws the layer graph (layout by the inlined dagre), shows a layer's
 * parameters on hover/click, folds groups, and sorts/filters the layer table.
 * When done, <body> carries data-report-status="drawn" and data-graph-nodes (layer nodes drawn);
 * uncaught errors are collected in data-report-errors (read by the headless-browser test). */
(function () {
  "use strict";
  var body = document.body;
  var errors = [];
  window.addEventListener("error", function (event) {
    errors.push(String(event.message));
    body.setAttribute("data-report-errors", errors.join(" | "));
  });

  var SVG_NS = "http://www.w3.org/2000/svg";
  var NODE_HEIGHT = 36;
  var NAME_FONT = "600 12px system-ui, sans-serif";
  var SUB_FONT = "10.5px system-ui, sans-serif";
  var EDGE_FONT = "10px system-ui, sans-serif";
  var TITLE_FONT = "600 12px system-ui, sans-serif";
  var data = JSON.parse(document.getElementById("report-data").textContent);
  var layerInfo = {};
  data.layers.forEach(function (layer) { layerInfo[layer.name] = layer; });
  var clusters = {};
  data.graph.clusters.forEach(function (cluster) { clusters[cluster.id] = cluster; });
  var collapsed = {};
  var selected = null;
  var pinned = false;
  var current = null;   // the laid-out dagre graph
  var view = { k: 1, x: 0, y: 0 };
  var svg = document.getElementById("graph");
  var viewport = document.getElementById("viewport");
  var details = document.getElementById("details");
  var measureContext = document.createElement("canvas").getContext("2d");

  // ---- small helpers -------------------------------------------------------------------
  function textWidth(text, font) {
    measureContext.font = font;
    return measureContext.measureText(text).width;
  }
  function svgEl(name, attrs, parent) {
    var element = document.createElementNS(SVG_NS, name);
    Object.keys(attrs || {}).forEach(function (key) { element.setAttribute(key, attrs[key]); });
    if (parent) { parent.appendChild(element); }
    return element;
  }
  function htmlEl(name, text, parent, className) {
    var element = document.createElement(name);
    if (text !== undefined && text !== null) { element.textContent = text; }
    if (className) { element.className = className; }
    if (parent) { parent.appendChild(element); }
    return element;
  }
  function human(value, units, base) {
    if (value === null || value === undefined) { return "?"; }
    for (var i = 0; i < units.length; i++) {
      if (Math.abs(value) >= units[i][0]) { return (value / units[i][0]).toFixed(base) + " " + units[i][1]; }
    }
    return String(value);
  }
  function count(value) { return human(value, [[1e12, "T"], [1e9, "G"], [1e6, "M"], [1e3, "k"]], 2); }
  function bytes(value) {
    var text = human(value, [[1073741824, "GiB"], [1048576, "MiB"], [1024, "KiB"]], 1);
    return /[KMG]iB$/.test(text) || text === "?" ? text : text + " B";
  }
  function shapeText(shape) {
    if (shape === null || shape === undefined) { return "?"; }
    return shape.length ? shape.join("x") : "scalar";
  }
  function pairText(pair) {
    if (!pair) { return "?"; }
    return pair[0] === pair[1] ? String(pair[0]) : pair[0] + "x" + pair[1];
  }

  // ---- which clusters and nodes are drawn ----------------------------------------------
  function clusterChain(id) {   // innermost first
    var chain = [];
    while (id && clusters[id]) { chain.push(id); id = clusters[id].parent; }
    return chain;
  }
  function collapsedOwner(id) {   // the outermost collapsed cluster containing `id`, or null
    var owner = null;
    clusterChain(id).forEach(function (c) { if (collapsed[c]) { owner = c; } });
    return owner;
  }
  function nodeLines(node) {
    var sub = node.type;
    if (node.folded.length) {
      sub += " + " + node.folded.map(function (f) { return f.type; }).join(" + ");
    }
    return [node.id, sub];
  }

  function buildLayout() {
    var g = new dagre.graphlib.Graph({ compound: true, multigraph: true });
    g.setGraph({ rankdir: "TB", nodesep: 22, ranksep: 26, edgesep: 10, marginx: 24, marginy: 24 });
    g.setDefaultEdgeLabel(function () { return {}; });
    var drawnAs = {};
    var lastIndex = {};
    var hasContent = {};
    function markContent(clusterId) { clusterChain(clusterId).forEach(function (c) { hasContent[c] = true; }); }

    data.graph.nodes.forEach(function (node) {
      var owner = collapsedOwner(node.cluster);
      if (owner) {
        drawnAs[node.id] = "group:" + owner;
        lastIndex[owner] = Math.max(lastIndex[owner] || 0, layerInfo[node.id].index);
        return;
      }
      drawnAs[node.id] = node.id;
      var lines = nodeLines(node);
      var width = Math.max(textWidth(lines[0], NAME_FONT), textWidth(lines[1], SUB_FONT)) + 18;
      g.setNode(node.id, { kind: "layer", node: node, lines: lines, width: Math.max(width, 64), height: NODE_HEIGHT });
      if (node.cluster) { markContent(node.cluster); }
    });
    Object.keys(clusters).forEach(function (id) {
      if (!collapsed[id] || collapsedOwner(clusters[id].parent)) { return; }
      var cluster = clusters[id];
      var lines = [cluster.label, cluster.layers + " layers · " + count(cluster.params) + " params · " +
                   count(cluster.macs) + " MACs"];
      var width = Math.max(textWidth(lines[0], NAME_FONT), textWidth(lines[1], SUB_FONT)) + 22;
      g.setNode("group:" + id, { kind: "group", cluster: cluster, lines: lines, width: width, height: NODE_HEIGHT + 4,
                                  lastIndex: lastIndex[id] || 0 });
      if (cluster.parent) { markContent(cluster.parent); }
    });
    Object.keys(clusters).forEach(function (id) {
      if (hasContent[id] && !collapsedOwner(id)) {
        g.setNode(id, { kind: "cluster", cluster: clusters[id] });
      }
    });
    g.nodes().forEach(function (id) {
      var label = g.node(id);
      var parent = null;
      if (label.kind === "layer") { parent = label.node.cluster; }
      else { parent = label.cluster.parent; }
      if (parent && g.hasNode(parent) && g.node(parent).kind === "cluster") { g.setParent(id, parent); }
    });
    addClusterTitles(g);
    var seen = {};
    data.graph.edges.forEach(function (edge) {
      var source = drawnAs[edge.source];
      var target = drawnAs[edge.target];
      if (!source || !target || source === target) { return; }
      var key = source + "\u0000" + target + "\u0000" + edge.label;
      if (seen[key]) { return; }
      seen[key] = true;
      g.setEdge(source, target, { label: edge.label, blob: edge.blob, width: textWidth(edge.label, EDGE_FONT) + 6,
                                  height: 12, labelpos: "c" }, key);
    });
    linkClusterTitles(g);
    dagre.layout(g);
    return g;
  }

  // A cluster's title is a small node inside it, linked by invisible edges above the cluster's
  // entry nodes, so dagre reserves room for it (width and height) like for any node.
  function addClusterTitles(g) {
    g.nodes().forEach(function (id) {
      var label = g.node(id);
      if (label.kind !== "cluster") { return; }
      var text = "\u25be " + label.cluster.short_label;
      g.setNode("title:" + id, { kind: "title", cluster: label.cluster, text: text,
                                  width: textWidth(text, TITLE_FONT) + 12, height: 14 });
      g.setParent("title:" + id, id);
    });
  }
  function orderOf(g, id) {   // topological position of a drawn node (a folded group: its last layer)
    var label = g.node(id);
    return label.kind === "layer" ? layerInfo[id].index : label.lastIndex;
  }
  function isInside(g, id, clusterId) {
    var parent = g.parent(id);
    while (parent) {
      if (parent === clusterId) { return true; }
      parent = g.parent(parent);
    }
    return false;
  }
  // Each title sits above the cluster's entry nodes (those fed from outside it, or by nothing) and
  // two ranks below whatever feeds them, so the cluster never shares a rank with its predecessors.
  function linkClusterTitles(g) {
    var links = [];
    g.nodes().forEach(function (id) {
      if (g.node(id).kind !== "cluster") { return; }
      var title = "title:" + id;
      g.children(id).forEach(function (child) {
        if (child === title) { return; }
        if (g.node(child).kind === "cluster") {
          links.push([title, "title:" + child, 1]);
          return;
        }
        var incoming = (g.inEdges(child) || []).map(function (e) { return e.v; });
        if (incoming.some(function (v) { return isInside(g, v, id); })) { return; }
        links.push([title, child, 1]);
        if (incoming.length) {   // the latest feeder only: others are earlier, and long invisible edges cost width
          var latest = incoming.reduce(function (a, b) { return orderOf(g, a) >= orderOf(g, b) ? a : b; });
          links.push([latest, title, 2]);
        }
      });
    });
    links.forEach(function (link) {
      g.setEdge(link[0], link[1], { invisible: true, width: 0, height: 0, minlen: link[2], weight: 1 }, "title");
    });
  }

  // ---- drawing ---------------------------------------------------------------------------
  function edgePath(points) {
    var d = "M" + points[0].x + "," + points[0].y;
    for (var i = 1; i < points.length - 1; i++) {
      var mx = (points[i].x + points[i + 1].x) / 2;
      var my = (points[i].y + points[i + 1].y) / 2;
      d += " Q" + points[i].x + "," + points[i].y + " " + mx + "," + my;
    }
    var last = points[points.length - 1];
    return d + " L" + last.x + "," + last.y;
  }

  function draw(g) {
    while (viewport.firstChild) { viewport.removeChild(viewport.firstChild); }
    var clusterLayer = svgEl("g", { "class": "clusters" }, viewport);
    var edgeLayer = svgEl("g", { "class": "edges" }, viewport);
    var nodeLayer = svgEl("g", { "class": "nodes" }, viewport);
    var clusterIds = g.nodes().filter(function (id) { return g.node(id).kind === "cluster"; });
    clusterIds.sort(function (a, b) { return clusterChain(a).length - clusterChain(b).length; });
    clusterIds.forEach(function (id) {
      var box = g.node(id);
      var depth = clusterChain(id).length - 1;
      var group = svgEl("g", { "class": "cluster depth-" + depth, "data-cluster": id }, clusterLayer);
      svgEl("rect", { x: box.x - box.width / 2, y: box.y - box.height / 2, width: box.width, height: box.height, rx: 8 }, group);
      var titleBox = g.node("title:" + id);
      var title = svgEl("text", { "class": "cluster-title", x: titleBox.x, y: titleBox.y + 4, "text-anchor": "middle" }, group);
      title.textContent = titleBox.text;
      svgEl("title", {}, title).textContent = box.cluster.label + ": click to fold";
      title.addEventListener("click", function (event) { event.stopPropagation(); if (!moved) { toggleCluster(id); } });
    });
    g.edges().forEach(function (e) {
      var edge = g.edge(e);
      if (edge.invisible) { return; }
      var group = svgEl("g", { "class": "edge" }, edgeLayer);
      svgEl("path", { d: edgePath(edge.points), "marker-end": "url(#arrow)" }, group);
      if (edge.label) {
        var label = svgEl("text", { "class": "edge-label", x: edge.x, y: edge.y + 3, "text-anchor": "middle" }, group);
        label.textContent = edge.label;
        var title = svgEl("title", {}, label);
        title.textContent = edge.blob + ": " + edge.label;
      }
    });
    var layerNodes = 0;
    g.nodes().forEach(function (id) {
      var box = g.node(id);
      if (box.kind === "cluster" || box.kind === "title") { return; }
      var classes = "node ";
      if (box.kind === "layer") {
        layerNodes++;
        classes += "layer-node cat-" + box.node.category + (box.node.opaque ? " opaque" : "") +
                   (box.node.flagged ? " flagged" : "") + (id === selected ? " selected" : "");
      } else {
        classes += "group-node cat-group";
      }
      var group = svgEl("g", { "class": classes, transform: "translate(" + (box.x - box.width / 2) + "," + (box.y - box.height / 2) + ")" }, nodeLayer);
      group.setAttribute(box.kind === "layer" ? "data-layer" : "data-cluster", box.kind === "layer" ? id : box.cluster.id);
      svgEl("rect", { width: box.width, height: box.height, rx: 5 }, group);
      var name = svgEl("text", { "class": "name", x: box.width / 2, y: 15, "text-anchor": "middle" }, group);
      name.textContent = box.lines[0];
      var sub = svgEl("text", { "class": "sub", x: box.width / 2, y: 29, "text-anchor": "middle" }, group);
      sub.textContent = box.lines[1];
      if (box.kind === "layer") {
        group.addEventListener("mouseenter", function () { if (!pinned) { showDetails(id); } });
        group.addEventListener("click", function (event) { event.stopPropagation(); if (!moved) { select(id, false); } });
      } else {
        group.addEventListener("click", function (event) { event.stopPropagation(); if (!moved) { toggleCluster(box.cluster.id); } });
      }
    });
    body.setAttribute("data-graph-nodes", String(layerNodes));
    body.setAttribute("data-graph-groups", String(g.nodes().filter(function (id) { return g.node(id).kind === "group"; }).length));
  }

  function relayout(keepView) {
    current = buildLayout();
    draw(current);
    if (!keepView) { fitWidth(); } else { applyView(); }
  }

  function toggleCluster(id) {
    collapsed[id] = !collapsed[id];
    relayout(true);
  }

  // ---- pan and zoom ----------------------------------------------------------------------
  function applyView() {
    viewport.setAttribute("transform", "translate(" + view.x + "," + view.y + ") scale(" + view.k + ")");
  }
  function graphSize() {
    var info = current.graph();
    return { width: info.width || 1, height: info.height || 1 };
  }
  function fitAll() {
    var size = graphSize();
    var box = svg.getBoundingClientRect();
    view.k = Math.min(box.width / size.width, box.height / size.height, 1.5);
    view.x = (box.width - size.width * view.k) / 2;
    view.y = (box.height - size.height * view.k) / 2;
    applyView();
  }
  function fitWidth() {
    var size = graphSize();
    var box = svg.getBoundingClientRect();
    view.k = Math.min(box.width / size.width, 1.2);
    view.x = (box.width - size.width * view.k) / 2;
    view.y = 0;
    applyView();
  }
  function centerOn(id) {
    if (!current || !current.hasNode(id)) { return; }
    var box = svg.getBoundingClientRect();
    var node = current.node(id);
    view.k = Math.max(view.k, 0.8);
    view.x = box.width / 2 - node.x * view.k;
    view.y = box.height / 2 - node.y * view.k;
    applyView();
  }
  var dragStart = null;
  var moved = false;
  svg.addEventListener("mousedown", function (event) {
    dragStart = { x: event.clientX, y: event.clientY, vx: view.x, vy: view.y };
    moved = false;
  });
  window.addEventListener("mousemove", function (event) {
    if (!dragStart) { return; }
    var dx = event.clientX - dragStart.x;
    var dy = event.clientY - dragStart.y;
    if (Math.abs(dx) + Math.abs(dy) > 3) { moved = true; svg.classList.add("dragging"); }
    view.x = dragStart.vx + dx;
    view.y = dragStart.vy + dy;
    applyView();
  });
  window.addEventListener("mouseup", function () { dragStart = null; svg.classList.remove("dragging"); });
  svg.addEventListener("wheel", function (event) {
    event.preventDefault();
    var box = svg.getBoundingClientRect();
    var px = event.clientX - box.left;
    var py = event.clientY - box.top;
    var factor = Math.exp(-event.deltaY * 0.0015);
    var k = Math.min(Math.max(view.k * factor, 0.05), 4);
    view.x = px - (px - view.x) * (k / view.k);
    view.y = py - (py - view.y) * (k / view.k);
    view.k = k;
    applyView();
  }, { passive: false });
  svg.addEventListener("click", function () { if (!moved) { pinned = false; } });

  // ---- the details panel -----------------------------------------------------------------
  function keyValueTable(parent, pairs) {
    var table = htmlEl("table", null, parent);
    pairs.forEach(function (pair) {
      var row = htmlEl("tr", null, table);
      htmlEl("td", pair[0], row);
      htmlEl("td", pair[1], row);
    });
    return table;
  }
  function settingsSection(parent, title, layer) {
    htmlEl("h4", title, parent);
    var keys = Object.keys(layer.settings);
    if (layer.raw_text) {
      htmlEl("pre", layer.raw_text, parent);
    } else if (keys.length) {
      keyValueTable(parent, keys.map(function (k) { return [k, layer.settings[k]]; }));
    } else {
      htmlEl("p", "all parameters at their defaults", parent, "placeholder");
    }
  }
  function weightsSection(parent, layer) {
    if (!layer.weights) { return; }
    layer.weights.forEach(function (w) {
      htmlEl("h4", "caffemodel blob: " + w.blob + " " + shapeText(w.shape), parent);
      var fmt = function (v) { return v === null ? "-" : Number(v).toPrecision(4); };
      keyValueTable(parent, [["mean", fmt(w.mean)], ["std", fmt(w.std)], ["min", fmt(w.min)], ["max", fmt(w.max)],
                             ["zeros", (100 * w.zero_fraction).toFixed(1) + "%"]]);
      w.flags.forEach(function (flag) { htmlEl("p", flag, parent, "flag"); });
    });
  }
  function showDetails(name) {
    var layer = layerInfo[name];
    if (!layer) { return; }
    while (details.firstChild) { details.removeChild(details.firstChild); }
    var folded = data.layers.filter(function (l) { return l.folded_into === name; });
    htmlEl("h3", layer.name, details);
    htmlEl("div", layer.type + (layer.opaque ? " (opaque: kept with its raw text)" : "") +
           (folded.length ? " + " + folded.map(function (l) { return l.type + " " + l.name; }).join(" + ") : ""), details);
    keyValueTable(details, [
      ["group", layer.group || "-"],
      ["bottoms", layer.bottoms.join(", ") || "-"],
      ["tops", layer.tops.join(", ") || "-"],
      ["output", layer.output_shapes.map(shapeText).join(", ") || "-"],
      ["params", count(layer.params) + (layer.params ? " (" + layer.params.toLocaleString("en-US") + ")" : "")],
      ["MACs", count(layer.macs)],
      ["activation memory", bytes(layer.activation_bytes)],
      ["receptive field", pairText(layer.rf_size) + " px, stride " + pairText(layer.rf_stride)]
    ]);
    settingsSection(details, "parameters (non-default)", layer);
    weightsSection(details, layer);
    folded.forEach(function (f) {
      settingsSection(details, "folded in place: " + f.name + " (" + f.type + ")", f);
      weightsSection(details, f);
    });
  }
  function select(name, fromTable) {
    selected = name;
    pinned = true;
    showDetails(name);
    Array.prototype.forEach.call(viewport.querySelectorAll(".layer-node.selected"), function (n) { n.classList.remove("selected"); });
    var host = (layerInfo[name] && layerInfo[name].folded_into) || name;
    var nodeElement = viewport.querySelector('.layer-node[data-layer="' + cssEscape(host) + '"]');
    if (nodeElement) { nodeElement.classList.add("selected"); }
    Array.prototype.forEach.call(document.querySelectorAll("#layers tr.selected"), function (r) { r.classList.remove("selected"); });
    var row = document.querySelector('#layers tr.layer-row[data-layer="' + cssEscape(name) + '"]');
    if (row) { row.classList.add("selected"); }
    if (fromTable) {
      var graphNode = data.graph.nodes.filter(function (n) { return n.id === host; })[0];
      var owner = graphNode ? collapsedOwner(graphNode.cluster) : null;
      if (owner) {
        clusterChain(graphNode.cluster).forEach(function (c) { collapsed[c] = false; });
        relayout(true);
        viewport.querySelector('.layer-node[data-layer="' + cssEscape(host) + '"]').classList.add("selected");
      }
      centerOn(host);
      document.getElementById("graph-section").scrollIntoView({ behavior: "smooth" });
    }
  }
  function cssEscape(text) { return window.CSS && CSS.escape ? CSS.escape(text) : text.replace(/["\\]/g, "\\$&"); }

  // ---- the layer table -------------------------------------------------------------------
  var table = document.getElementById("layers");
  var tbody = table.tBodies[0];
  var originalOrder = Array.prototype.slice.call(tbody.rows);
  var sortState = { key: null, dir: 1 };
  function cellValue(row, index, kind) {
    var raw = row.cells[index].getAttribute("data-v");
    if (kind === "num") { return raw === "" || raw === null ? null : Number(raw); }
    return raw || "";
  }
  Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, index) {
    th.addEventListener("click", function () {
      var kind = th.getAttribute("data-kind");
      sortState.dir = sortState.key === index ? -sortState.dir : (kind === "num" ? -1 : 1);
      sortState.key = index;
      Array.prototype.forEach.call(table.tHead.rows[0].cells, function (c) { c.classList.remove("asc", "desc"); });
      th.classList.add(sortState.dir > 0 ? "asc" : "desc");
      var rows = originalOrder.filter(function (r) { return r.classList.contains("layer-row"); });
      rows.sort(function (a, b) {
        var va = cellValue(a, index, kind);
        var vb = cellValue(b, index, kind);
        if (va === null && vb === null) { return 0; }
        if (va === null) { return 1; }     // unknown values last in both directions
        if (vb === null) { return -1; }
        var order = kind === "num" ? va - vb : String(va).localeCompare(String(vb));
        return order * sortState.dir;
      });
      table.classList.add("sorted");
      rows.forEach(function (r) { tbody.appendChild(r); });
      originalOrder.forEach(function (r) { if (!r.classList.contains("layer-row")) { tbody.appendChild(r); } });
      applyFilter();
    });
  });
  document.getElementById("group-order").addEventListener("click", function () {
    table.classList.remove("sorted");
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (c) { c.classList.remove("asc", "desc"); });
    sortState.key = null;
    originalOrder.forEach(function (r) { tbody.appendChild(r); });
    applyFilter();
  });
  var foldedSections = {};
  originalOrder.forEach(function (row) {
    if (row.classList.contains("group-row")) {
      row.addEventListener("click", function () {
        var id = row.getAttribute("data-section");
        foldedSections[id] = !foldedSections[id];
        row.classList.toggle("folded", foldedSections[id]);
        applyFilter();
      });
    } else if (row.classList.contains("layer-row")) {
      row.cells[1].addEventListener("click", function () { select(row.getAttribute("data-layer"), true); });
      row.cells[1].style.cursor = "pointer";
    }
  });
  function sectionFolded(groupId) {
    return clusterChain(groupId).some(function (c) { return foldedSections[c]; }) || (!!groupId && !!foldedSections[groupId]);
  }
  var filterInput = document.getElementById("filter");
  var hideInPlace = document.getElementById("hide-inplace");
  function applyFilter() {
    var terms = filterInput.value.toLowerCase().split(/\s+/).filter(Boolean);
    var sums = { params: 0, macs: 0, mem: 0, shown: 0 };
    var sorted = table.classList.contains("sorted");
    originalOrder.forEach(function (row) {
      if (!row.classList.contains("layer-row")) { return; }
      var text = row.getAttribute("data-search");
      var match = terms.every(function (t) { return text.indexOf(t) >= 0; });
      if (hideInPlace.checked && row.classList.contains("inplace")) { match = false; }
      var folded = !sorted && sectionFolded(row.getAttribute("data-group"));
      row.classList.toggle("hidden", !match || folded);
      if (match) {
        sums.shown++;
        sums.params += Number(row.cells[5].getAttribute("data-v") || 0);
        sums.macs += Number(row.cells[6].getAttribute("data-v") || 0);
        if (row.getAttribute("data-counted") === "1") { sums.mem += Number(row.cells[7].getAttribute("data-v") || 0); }
      }
    });
    document.getElementById("shown-label").textContent = "matching the filter (" + sums.shown + " layers)";
    document.getElementById("shown-params").textContent = count(sums.params);
    document.getElementById("shown-macs").textContent = count(sums.macs);
    document.getElementById("shown-mem").textContent = bytes(sums.mem);
  }
  filterInput.addEventListener("input", applyFilter);
  hideInPlace.addEventListener("change", applyFilter);

  // ---- toolbar and start -----------------------------------------------------------------
  document.getElementById("fit-all").addEventListener("click", fitAll);
  document.getElementById("fit-width").addEventListener("click", fitWidth);
  document.getElementById("expand-all").addEventListener("click", function () { collapsed = {}; relayout(false); });
  document.getElementById("collapse-all").addEventListener("click", function () {
    collapsed = {};
    Object.keys(clusters).forEach(function (id) { if (!clusters[id].parent) { collapsed[id] = true; } });
    relayout(false);
  });

  applyFilter();
  var options = (window.location.hash || "").replace(/^#/, "").split(",");
  if (options.indexOf("collapsed") >= 0) {
    Object.keys(clusters).forEach(function (id) { if (!clusters[id].parent) { collapsed[id] = true; } });
  }
  relayout(false);
  if (options.indexOf("fit") >= 0) { fitAll(); }
  window.addEventListener("resize", function () { applyView(); });
  body.setAttribute("data-report-status", "drawn");
}());
