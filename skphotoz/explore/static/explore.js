// skphotoz explore: the page's script. Plain JavaScript, no libraries; every value from the
// server is written with textContent (never as HTML).
"use strict";

const state = {
  info: null, map: null, colour: null, view: null, selected: null, neighbours: [],
  ready: false, drag: null, ticket: 0,
};

// Viridis, sampled at 9 evenly spaced points (matplotlib's colour map), interpolated linearly.
const VIRIDIS = [
  [68, 1, 84], [71, 44, 122], [59, 81, 139], [44, 113, 142], [33, 144, 141],
  [39, 173, 129], [92, 200, 99], [170, 220, 50], [253, 231, 37],
];
function viridis(t) {
  t = Math.min(1, Math.max(0, t)) * (VIRIDIS.length - 1);
  const i = Math.min(VIRIDIS.length - 2, Math.floor(t)), f = t - i;
  return VIRIDIS[i].map((c, k) => Math.round(c + f * (VIRIDIS[i + 1][k] - c)));
}

function showError(message) {
  const box = document.getElementById("error");
  box.textContent = message;
  box.hidden = !message;
}

async function getJSON(url, options) {
  let response;
  try {
    response = await fetch(url, options);
  } catch (e) {
    throw new Error("the explore server does not answer (was it stopped?)");
  }
  let body = null;
  try { body = await response.json(); } catch (e) { /* not JSON */ }
  if (!response.ok) {
    throw new Error(body && body.error ? body.error : `${url}: HTTP ${response.status}`);
  }
  return body;
}

// ---- the map -------------------------------------------------------------------------------

const canvas = document.getElementById("map");
const ctx = canvas.getContext("2d");

function fitView() {
  const { x, y } = state.map;
  let x0 = Infinity, x1 = -Infinity, y0 = Infinity, y1 = -Infinity;
  for (let i = 0; i < x.length; i++) {
    if (x[i] === null || y[i] === null) continue;
    x0 = Math.min(x0, x[i]); x1 = Math.max(x1, x[i]);
    y0 = Math.min(y0, y[i]); y1 = Math.max(y1, y[i]);
  }
  const pad = 12, w = canvas.width - 2 * pad, h = canvas.height - 2 * pad;
  const scale = Math.min(w / Math.max(x1 - x0, 1e-9), h / Math.max(y1 - y0, 1e-9));
  state.view = {
    scale,
    ox: pad + (w - scale * (x1 - x0)) / 2 - scale * x0,
    oy: pad + (h - scale * (y1 - y0)) / 2 + scale * y1,
  };
}

// Canvas pixel of a map point (y grows upwards on the map, downwards on the canvas).
function toCanvas(i) {
  const v = state.view;
  return [v.ox + v.scale * state.map.x[i], v.oy - v.scale * state.map.y[i]];
}

function colourValues() {
  return state.colour === "z_phot" ? state.map.z_phot : state.colour === "z_spec" ? state.map.z_spec : null;
}

function colourRange(values) {
  const finite = values.filter((v) => v !== null).sort((a, b) => a - b);
  if (!finite.length) return [0, 1];
  const q = (p) => finite[Math.min(finite.length - 1, Math.floor(p * finite.length))];
  const lo = q(0.01), hi = q(0.99);
  return [lo, hi > lo ? hi : lo + 1e-3];
}

// One RGBA word per galaxy (little-endian ABGR, as a Uint32Array view of ImageData reads it),
// computed when the colouring changes rather than at every redraw.
function paint() {
  const values = colourValues(), n = state.map.x.length;
  const [lo, hi] = values ? colourRange(values) : [0, 1];
  const lut = new Uint32Array(256);
  for (let i = 0; i < 256; i++) {
    const [r, g, b] = viridis(i / 255);
    lut[i] = (255 << 24) | (b << 16) | (g << 8) | r;
  }
  const grey = (255 << 24) | (150 << 16) | (150 << 8) | 150;
  const words = new Uint32Array(n);
  for (let i = 0; i < n; i++) {
    const value = values ? values[i] : null;
    words[i] = value === null ? grey : lut[Math.max(0, Math.min(255, Math.round(255 * (value - lo) / (hi - lo))))];
  }
  state.paint = { words, values, lo, hi };
}

function draw() {
  if (!state.map) return;
  if (!state.paint) paint();
  const w = canvas.width, h = canvas.height;
  const image = ctx.createImageData(w, h);
  const pixels = new Uint32Array(image.data.buffer);
  pixels.fill(0xffffffff);
  const { x, y } = state.map, v = state.view, words = state.paint.words;
  const n = x.length, size = n > 20000 ? 2 : 3;
  for (let i = 0; i < n; i++) {
    if (x[i] === null) continue;
    const px = Math.round(v.ox + v.scale * x[i]), py = Math.round(v.oy - v.scale * y[i]);
    if (px < 0 || py < 0 || px > w - size || py > h - size) continue;
    const word = words[i];
    for (let dy = 0; dy < size; dy++) {
      const base = (py + dy) * w + px;
      for (let dx = 0; dx < size; dx++) pixels[base + dx] = word;
    }
  }
  ctx.putImageData(image, 0, 0);
  for (const nb of state.neighbours) ring(nb.row, "#e08000", 4);
  if (state.selected !== null) ring(state.selected, "#d00000", 7);
  drawColourbar(state.paint.values, state.paint.lo, state.paint.hi);
}

function ring(row, colour, radius) {
  const [x, y] = toCanvas(row);
  ctx.beginPath();
  ctx.arc(x, y, radius, 0, 2 * Math.PI);
  ctx.strokeStyle = colour;
  ctx.lineWidth = 2;
  ctx.stroke();
}

function drawColourbar(values, lo, hi) {
  const bar = document.getElementById("cb"), c = bar.getContext("2d");
  for (let i = 0; i < bar.width; i++) {
    const [r, g, b] = values ? viridis(i / (bar.width - 1)) : [150, 150, 150];
    c.fillStyle = `rgb(${r},${g},${b})`;
    c.fillRect(i, 0, 1, bar.height);
  }
  const none = state.colour === "none" ? "one colour" : "no redshifts";
  document.getElementById("cb-low").textContent = values ? `z = ${lo.toFixed(3)}` : "";
  document.getElementById("cb-high").textContent = values ? hi.toFixed(3) : none;
}

// Canvas coordinates of a mouse event (the canvas may be shown scaled by CSS).
function eventPoint(event) {
  const box = canvas.getBoundingClientRect();
  return [
    (event.clientX - box.left) * (canvas.width / box.width),
    (event.clientY - box.top) * (canvas.height / box.height),
  ];
}

function nearestPoint(cx, cy, radius) {
  let best = null, bestD = radius * radius;
  for (let i = 0; i < state.map.x.length; i++) {
    if (state.map.x[i] === null) continue;
    const [x, y] = toCanvas(i);
    const d = (x - cx) ** 2 + (y - cy) ** 2;
    if (d <= bestD) { bestD = d; best = i; }
  }
  return best;
}

canvas.addEventListener("mousedown", (event) => {
  if (!state.view) return; // the map has not loaded yet
  const [x, y] = eventPoint(event);
  state.drag = { x, y, ox: state.view.ox, oy: state.view.oy, moved: false };
});
window.addEventListener("mousemove", (event) => {
  if (!state.drag) return;
  const [x, y] = eventPoint(event);
  if (Math.abs(x - state.drag.x) + Math.abs(y - state.drag.y) > 3) state.drag.moved = true;
  if (state.drag.moved) {
    state.view.ox = state.drag.ox + x - state.drag.x;
    state.view.oy = state.drag.oy + y - state.drag.y;
    draw();
  }
});
window.addEventListener("mouseup", (event) => {
  const drag = state.drag;
  state.drag = null;
  if (!drag || drag.moved || event.target !== canvas) return;
  const [x, y] = eventPoint(event);
  const row = nearestPoint(x, y, 8);
  if (row !== null) selectGalaxy(row);
});
canvas.addEventListener("wheel", (event) => {
  event.preventDefault();
  if (!state.view) return;
  const [x, y] = eventPoint(event);
  const factor = Math.exp(-event.deltaY * 0.0015);
  const v = state.view;
  v.ox = x - factor * (x - v.ox);
  v.oy = y - factor * (y - v.oy);
  v.scale *= factor;
  draw();
}, { passive: false });
document.getElementById("reset-view").addEventListener("click", () => {
  if (state.map) { fitView(); draw(); }
});
document.getElementById("colour-by").addEventListener("change", (event) => {
  state.colour = event.target.value;
  state.paint = null;
  draw();
});

// ---- galleries and the galaxy panel --------------------------------------------------------

function caption(card) {
  const parts = [`row ${card.row}`];
  if (card.similarity != null) parts.push(`sim ${card.similarity.toFixed(3)}`);
  if (card.score != null) parts.push(`score ${card.score.toFixed(3)}`);
  if (card.z_spec != null) parts.push(`z ${card.z_spec.toFixed(3)}`);
  if (card.z_phot != null) parts.push(`zₚ ${card.z_phot.toFixed(3)}`);
  return parts.join(" · ");
}

function gallery(element, cards) {
  element.replaceChildren();
  for (const card of cards) {
    const figure = document.createElement("figure");
    figure.className = "card";
    figure.dataset.row = String(card.row);
    const img = document.createElement("img");
    img.src = `/stamp/${card.row}.png`;
    img.alt = `galaxy row ${card.row}`;
    img.loading = "lazy";
    const text = document.createElement("figcaption");
    text.textContent = caption(card);
    if (card.objid != null) figure.title = `ObjID ${card.objid}`;
    figure.append(img, text);
    figure.addEventListener("click", () => selectGalaxy(card.row));
    element.append(figure);
  }
}

const LABELS = {
  row: "row", objid: "ObjID", specobjid: "SpecObjID", ra: "RA (deg)", dec: "Dec (deg)",
  redshift: "spectroscopic z", redshift_err: "σ(z) spec.", z_phot: "predicted z",
  extinction: "extinction (mag)", anomaly_rank: "rarity rank",
};

function catalogueTable(values) {
  const table = document.getElementById("catalogue");
  table.replaceChildren();
  for (const [key, value] of Object.entries(values)) {
    if (value === null) continue;
    const tr = document.createElement("tr"), name = document.createElement("td");
    const cell = document.createElement("td");
    name.textContent = LABELS[key] || key;
    let text = Array.isArray(value) ? value.join(", ") : String(value);
    if (typeof value === "number" && !Number.isInteger(value)) {
      if (["ra", "dec"].includes(key)) text = value.toFixed(6);
      else if (Math.abs(value) < 0.01) text = value.toPrecision(2); // e.g. σ(z) ~ 1e-5
      else text = value.toFixed(4);
    }
    if (key === "anomaly_rank") text = `${value} of ${state.info.n_galaxies}`;
    cell.textContent = text;
    tr.append(name, cell);
    table.append(tr);
  }
}

function svg(tag, attributes) {
  const element = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attributes)) element.setAttribute(k, String(v));
  return element;
}

function drawPdf(pdf, zSpec) {
  const box = document.getElementById("pdf-box"), plot = document.getElementById("pdf");
  const note = document.getElementById("pdf-note");
  plot.replaceChildren();
  box.hidden = !pdf;
  note.textContent = pdf && pdf.error ? pdf.error : "";
  plot.style.display = pdf && pdf.error ? "none" : "";
  if (!pdf || pdf.error) return;
  const W = 420, H = 160, pad = 18;
  const z0 = pdf.z[0], z1 = pdf.z[pdf.z.length - 1];
  const top = Math.max(...pdf.density.filter((p) => p !== null)) || 1;
  const sx = (z) => pad + (W - 2 * pad) * (z - z0) / (z1 - z0);
  const sy = (p) => H - pad - (H - 2 * pad) * p / top;
  if (pdf.interval_68) {
    const [a, b] = pdf.interval_68.map(sx);
    plot.append(svg("rect", { x: a, y: pad, width: Math.max(b - a, 1), height: H - 2 * pad, fill: "#dde8f6" }));
  }
  const points = pdf.z.map((z, i) => `${sx(z).toFixed(1)},${sy(pdf.density[i] || 0).toFixed(1)}`);
  plot.append(svg("polyline", { points: points.join(" "), fill: "none", stroke: "#1f4e9c", "stroke-width": 2 }));
  plot.append(svg("line", { x1: pad, y1: H - pad, x2: W - pad, y2: H - pad, stroke: "#444" }));
  const mark = (z, colour, label, dy) => {
    plot.append(svg("line", { x1: sx(z), y1: pad, x2: sx(z), y2: H - pad, stroke: colour, "stroke-dasharray": "4 3" }));
    const t = svg("text", { x: sx(z) + 3, y: pad + 10 + dy, fill: colour, "font-size": 11 });
    t.textContent = label;
    plot.append(t);
  };
  if (pdf.z_phot !== null) mark(pdf.z_phot, "#1f4e9c", `zₚ ${pdf.z_phot.toFixed(3)}`, 0);
  if (zSpec !== undefined && zSpec !== null) mark(zSpec, "#c03000", `z ${zSpec.toFixed(3)}`, 14);
  for (const z of [z0, z1]) {
    const t = svg("text", { x: sx(z) - 8, y: H - 3, "font-size": 11, fill: "#444" });
    t.textContent = z.toFixed(2);
    plot.append(t);
  }
}

async function selectGalaxy(row) {
  const started = performance.now();
  const ticket = ++state.ticket; // the last request made wins, whatever order answers come in
  try {
    const galaxy = await getJSON(`/api/galaxy/${row}`);
    if (ticket !== state.ticket) return;
    showError("");
    state.selected = galaxy.catalogue.row;
    state.neighbours = galaxy.neighbours;
    document.getElementById("galaxy").hidden = false;
    const c = galaxy.catalogue;
    document.getElementById("galaxy-title").textContent =
      `Galaxy row ${c.row}` + (c.objid !== undefined ? ` (ObjID ${c.objid})` : "");
    document.getElementById("galaxy-stamp").src = `/stamp/${c.row}.png`;
    catalogueTable(c);
    drawPdf(galaxy.pdf, c.redshift);
    const neighbours = document.getElementById("neighbours");
    gallery(neighbours, galaxy.neighbours);
    neighbours.dataset.for = String(c.row);
    history.replaceState(null, "", `#row=${c.row}`);
    draw();
    state.selectMs = performance.now() - started; // request, panel and map redrawn
  } catch (e) {
    if (ticket === state.ticket) showError(e.message);
  }
}

document.getElementById("find").addEventListener("submit", async (event) => {
  event.preventDefault();
  const kind = document.getElementById("find-kind").value;
  const value = document.getElementById("find-value").value.trim();
  try {
    if (!value) throw new Error(`type a ${kind === "row" ? "row" : "ObjID"} first`);
    let row = value;
    if (kind === "objid") row = (await getJSON(`/api/objid/${encodeURIComponent(value)}`)).row;
    else if (!/^\d+$/.test(value)) throw new Error(`a row is a whole number ≥ 0; got "${value}"`);
    await selectGalaxy(row);
  } catch (e) {
    showError(e.message);
  }
});

document.getElementById("lookup").addEventListener("submit", async (event) => {
  event.preventDefault();
  const errors = document.getElementById("lookup-errors");
  errors.replaceChildren();
  try {
    const found = await getJSON("/api/lookup", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ objids: document.getElementById("lookup-text").value }),
    });
    showError("");
    gallery(document.getElementById("lookup-results"), found.galaxies);
    for (const e of found.errors) {
      const li = document.createElement("li");
      li.textContent = e.error;
      errors.append(li);
    }
  } catch (e) {
    showError(e.message);
  }
});

// ---- start -----------------------------------------------------------------------------------

async function start() {
  try {
    state.info = await getJSON("/api/info");
    const i = state.info;
    document.getElementById("summary").textContent =
      `${i.archive}: ${i.n_galaxies.toLocaleString("en")} galaxies, ${i.n_features}-d embeddings, ` +
      `${i.index} index` + (i.has_model ? ", photo-z model" : "");
    document.getElementById("map-method").textContent = `(${i.map_method.toUpperCase()})`;
    document.getElementById("find-kind").options[1].disabled = !i.has_objid;
    state.map = await getJSON("/api/map");
    const select = document.getElementById("colour-by");
    const choices = [];
    if (state.map.z_spec) choices.push(["z_spec", "spectroscopic z"]);
    if (state.map.z_phot) choices.push(["z_phot", "predicted z"]);
    choices.push(["none", "none"]);
    for (const [value, label] of choices) select.append(new Option(label, value));
    state.colour = choices[0][0];
    fitView();
    draw();
    const anomalies = await getJSON("/api/anomalies?n=24");
    gallery(document.getElementById("anomalies"), anomalies.galaxies);
    const match = /^#row=(\d+)$/.exec(location.hash);
    if (match) await selectGalaxy(Number(match[1]));
    state.ready = true;
  } catch (e) {
    showError(e.message);
  }
}

// For tests and scripts: where a galaxy is drawn, in the page's coordinates.
window.skphotozExplore = {
  state,
  pagePosition(row) {
    const [x, y] = toCanvas(row), box = canvas.getBoundingClientRect();
    return [box.left + x * box.width / canvas.width, box.top + y * box.height / canvas.height];
  },
};

start();
