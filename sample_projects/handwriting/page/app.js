// The handwriting demo page: draw on #pad; after each stroke the drawing goes to the server
// (POST /handwriting/prepare -> 28x28 PNG -> POST /predict/digits and /predict/siamese) and the
// answers fill #prediction, #scores, #embedding, #neighbours and #siamese-prediction.
"use strict";

const K = 5;  // neighbours voting, as in sample_projects/siamese/demo.py
const COLOURS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                 "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];  // matplotlib's tab10
const SVG = "http://www.w3.org/2000/svg";
const PEN_WIDTH = 20;

const $ = (id) => document.getElementById(id);
const pad = $("pad");
const ink = pad.getContext("2d");
let gallery = null;      // {labels, points, thumbnail}
let map = null;          // {svg, toScreen, drawn}
let strokes = 0;         // strokes on the pad
let request = 0;         // the newest analysis; older answers are dropped

// ---- drawing pad -------------------------------------------------------------------------------
function clearPad() {
  ink.fillStyle = "#000";
  ink.fillRect(0, 0, pad.width, pad.height);
  strokes = 0;
}

function padPoint(event) {
  const box = pad.getBoundingClientRect();
  return [(event.clientX - box.left) * pad.width / box.width, (event.clientY - box.top) * pad.height / box.height];
}

let last = null;       // the pen's last point while a stroke is being drawn
let penId = null;      // the pointer drawing it; other fingers are ignored meanwhile
pad.addEventListener("pointerdown", (event) => {
  event.preventDefault();
  if (penId !== null) return;
  penId = event.pointerId;
  pad.setPointerCapture(event.pointerId);
  last = padPoint(event);
  ink.fillStyle = "#fff";
  ink.beginPath();
  ink.arc(last[0], last[1], PEN_WIDTH / 2, 0, 2 * Math.PI);
  ink.fill();
});
pad.addEventListener("pointermove", (event) => {
  if (last === null || event.pointerId !== penId) return;
  const events = event.getCoalescedEvents ? event.getCoalescedEvents() : [event];
  ink.strokeStyle = "#fff";
  ink.lineWidth = PEN_WIDTH;
  ink.lineCap = "round";
  ink.lineJoin = "round";
  ink.beginPath();
  ink.moveTo(last[0], last[1]);
  for (const e of (events.length ? events : [event])) {
    last = padPoint(e);
    ink.lineTo(last[0], last[1]);
  }
  ink.stroke();
});
function endStroke(event) {
  if (last === null || event.pointerId !== penId) return;
  last = null;
  penId = null;
  strokes += 1;
  analyse();
}
pad.addEventListener("pointerup", endStroke);
pad.addEventListener("pointercancel", endStroke);

$("clear").addEventListener("click", () => {
  request += 1;
  clearPad();
  showEmpty();
});

// ---- talking to the server ---------------------------------------------------------------------
async function post(path, body) {
  const response = await fetch(path, {method: "POST", body, headers: {"Content-Type": "image/png"}});
  if (!response.ok) {
    let message = `${response.status} ${response.statusText}`;
    try { message = (await response.json()).error || message; } catch (_) { /* not JSON */ }
    throw new Error(`${path}: ${message}`);
  }
  return response;
}

async function analyse() {
  const mine = ++request;
  document.body.dataset.requested = String(mine);
  try {
    const drawing = await new Promise((resolve) => pad.toBlob(resolve, "image/png"));
    const prepared = await (await post("/handwriting/prepare", drawing)).blob();
    const [digits, siamese] = await Promise.all(
      ["digits", "siamese"].map(async (name) => (await post(`/predict/${name}`, prepared)).json()));
    if (mine !== request) return;
    showError(null);
    showPrepared(prepared);
    showScores(digits.outputs["y'"]);
    showSiamese(siamese.outputs["y'"]);
    document.body.dataset.analysed = String(mine);
  } catch (error) {
    if (mine === request) showError(error.message);
  }
}

// ---- results -----------------------------------------------------------------------------------
function showPrepared(blob) {
  const img = $("prepared");
  if (img.src) URL.revokeObjectURL(img.src);
  img.src = URL.createObjectURL(blob);
  img.classList.add("shown");
}

function buildScores() {
  const box = $("scores");
  box.replaceChildren();
  for (let digit = 0; digit < 10; digit++) {
    const row = document.createElement("div");
    row.className = "score";
    row.dataset.digit = digit;
    row.innerHTML = `<span class="label">${digit}</span><span class="bar"><span class="fill"></span></span>` +
                    `<span class="value"></span>`;
    row.querySelector(".fill").style.background = COLOURS[digit];
    box.appendChild(row);
  }
}

function showScores(scores) {
  const best = scores.indexOf(Math.max(...scores));
  $("prediction").textContent = String(best);
  $("prediction").style.color = COLOURS[best];
  $("confidence").textContent = `score ${(scores[best] * 100).toFixed(1)} %`;
  for (const row of $("scores").children) {
    const value = scores[Number(row.dataset.digit)];
    row.querySelector(".fill").style.width = `${(value * 100).toFixed(2)}%`;
    row.querySelector(".value").textContent = value >= 0.001 ? `${(value * 100).toFixed(1)}%` : "";
    row.classList.toggle("best", Number(row.dataset.digit) === best);
  }
}

function nearest(point) {
  const order = gallery.points.map((p, i) => [(p[0] - point[0]) ** 2 + (p[1] - point[1]) ** 2, i]);
  order.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  return order.slice(0, K).map(([d2, i]) => ({index: i, label: gallery.labels[i], distance: Math.sqrt(d2)}));
}

function vote(neighbours) {
  // Majority; a tie goes to the tied digit whose point is nearest (demo.py's knn_predict).
  const counts = new Map();
  for (const n of neighbours) counts.set(n.label, (counts.get(n.label) || 0) + 1);
  const most = Math.max(...counts.values());
  const winner = neighbours.find((n) => counts.get(n.label) === most).label;
  return {winner, count: most};
}

function showThumbnail(picture, index, scale) {
  // gallery.png holds the thumbnails in rows of `columns`, in gallery order
  const {size, columns} = gallery.thumbnail;
  picture.style.backgroundImage = `url(${gallery.thumbnail.file})`;
  picture.style.backgroundSize = `${columns * size * scale}px auto`;
  picture.style.backgroundPosition =
    `-${(index % columns) * size * scale}px -${Math.floor(index / columns) * size * scale}px`;
}

function thumbnail(index, label) {
  const cell = document.createElement("figure");
  cell.className = "neighbour";
  const picture = document.createElement("div");
  picture.className = "thumb";
  showThumbnail(picture, index, 2.4);  // 20 px thumbnails shown at 48 px (style.css)
  const caption = document.createElement("figcaption");
  caption.textContent = String(label);
  caption.style.background = COLOURS[label];
  cell.append(picture, caption);
  return cell;
}

function showSiamese(point) {
  const neighbours = nearest(point);
  const {winner, count} = vote(neighbours);
  $("siamese-prediction").textContent = String(winner);
  $("siamese-prediction").style.color = COLOURS[winner];
  $("vote-detail").textContent = `${count} of ${K} neighbours`;
  $("neighbours").replaceChildren(...neighbours.map((n) => thumbnail(n.index, n.label)));
  markOnMap(point, neighbours);
}

function showEmpty() {
  for (const id of ["prediction", "confidence", "siamese-prediction", "vote-detail"]) $(id).textContent = "";
  $("neighbours").replaceChildren();
  const img = $("prepared");
  if (img.src) URL.revokeObjectURL(img.src);
  img.removeAttribute("src");
  img.classList.remove("shown");
  if (map) map.drawn.replaceChildren();
  buildScores();
  showError(null);
  delete document.body.dataset.analysed;
}

function showError(message) {
  $("error").hidden = !message;
  $("error").textContent = message || "";
}

// ---- the map -----------------------------------------------------------------------------------
function svgElement(name, attributes, parent) {
  const element = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attributes)) element.setAttribute(key, value);
  if (parent) parent.appendChild(element);
  return element;
}

function buildMap() {
  const width = 560, height = 420, margin = 14;
  const xs = gallery.points.map((p) => p[0]), ys = gallery.points.map((p) => p[1]);
  const [x0, x1, y0, y1] = [Math.min(...xs), Math.max(...xs), Math.min(...ys), Math.max(...ys)];
  const scale = Math.min((width - 2 * margin) / (x1 - x0), (height - 2 * margin) / (y1 - y0));
  const left = (width - scale * (x1 - x0)) / 2, top = (height - scale * (y1 - y0)) / 2;
  // y grows upwards on the map, as in the README's plot
  const toScreen = ([x, y]) => [left + (x - x0) * scale, top + (y1 - y) * scale];
  const svg = svgElement("svg", {viewBox: `0 0 ${width} ${height}`, class: "map"});
  const dots = svgElement("g", {class: "gallery"}, svg);
  gallery.points.forEach((p, i) => {
    const [cx, cy] = toScreen(p);
    svgElement("circle", {cx: cx.toFixed(1), cy: cy.toFixed(1), r: 2.4, fill: COLOURS[gallery.labels[i]]}, dots);
  });
  dots.addEventListener("pointerover", (event) => {
    const index = Array.prototype.indexOf.call(dots.children, event.target);
    if (index < 0) return;
    const tip = $("map-tip");
    showThumbnail(tip.querySelector(".thumb"), index, 2.4);
    tip.querySelector("span").textContent = `training digit ${index + 1}: a ${gallery.labels[index]}`;
    const box = $("embedding").getBoundingClientRect(), dot = event.target.getBoundingClientRect();
    tip.style.left = `${dot.left - box.left + 10}px`;
    tip.style.top = `${dot.top - box.top + 10}px`;
    tip.hidden = false;
  });
  dots.addEventListener("pointerout", () => { $("map-tip").hidden = true; });
  const names = svgElement("g", {class: "cluster-labels"}, svg);
  for (let digit = 0; digit < 10; digit++) {
    const mine = gallery.points.filter((_, i) => gallery.labels[i] === digit);
    const median = (values) => values.sort((a, b) => a - b)[Math.floor(values.length / 2)];
    const [cx, cy] = toScreen([median(mine.map((p) => p[0])), median(mine.map((p) => p[1]))]);
    const text = svgElement("text", {x: cx.toFixed(1), y: (cy + 6).toFixed(1), fill: COLOURS[digit]}, names);
    text.textContent = String(digit);
  }
  const drawn = svgElement("g", {class: "drawn"}, svg);
  $("embedding").prepend(svg);
  map = {svg, toScreen, drawn, width, height};
}

function markOnMap(point, neighbours) {
  const clamp = (v, lo, hi) => Math.min(hi, Math.max(lo, v));
  const [rawX, rawY] = map.toScreen(point);
  const [x, y] = [clamp(rawX, 8, map.width - 8), clamp(rawY, 8, map.height - 8)];
  map.drawn.replaceChildren();
  for (const n of neighbours) {
    const [nx, ny] = map.toScreen(gallery.points[n.index]);
    svgElement("line", {x1: x, y1: y, x2: nx, y2: ny, class: "link"}, map.drawn);
  }
  const marker = svgElement("g", {id: "drawn-point", transform: `translate(${x.toFixed(1)} ${y.toFixed(1)})`,
                                  "data-x": point[0], "data-y": point[1]}, map.drawn);
  svgElement("circle", {r: 13, class: "halo"}, marker);
  svgElement("circle", {r: 7, class: "ring"}, marker);
  svgElement("circle", {r: 2.5, class: "centre"}, marker);
  const label = svgElement("text", {x: 16, y: -12, class: "you"}, marker);
  label.textContent = "yours";
}

// ---- start -------------------------------------------------------------------------------------
async function start() {
  clearPad();
  showEmpty();
  try {
    gallery = await (await fetch("gallery.json")).json();
    buildMap();
    for (let attempt = 0; ; attempt++) {
      const ready = await fetch("/v2/health/ready").then((r) => r.ok, () => false);
      if (ready) break;
      await new Promise((resolve) => setTimeout(resolve, Math.min(2000, 200 * (attempt + 1))));
    }
    $("status").textContent = "models ready";
    $("status").classList.add("ready");
    document.body.dataset.ready = "true";
  } catch (error) {
    showError(`cannot start: ${error.message}`);
  }
}

start();
