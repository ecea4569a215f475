"use strict";
// The built-in page of `nncbridge serve`: pick a model, draw/drop an image or type numbers, see outputs.
// Talks to GET /models and POST /predict/{name}; no libraries, works offline.

const $ = (id) => document.getElementById(id);
const state = { models: [], model: null, inputs: {}, busy: false, pending: false };
const PAD = 280;

function token() { return sessionStorage.getItem("nncbridge-token") || ""; }

async function api(path, options = {}) {
  const headers = Object.assign({}, options.headers || {});
  if (token()) headers["Authorization"] = "Bearer " + token();
  const response = await fetch(path, Object.assign({}, options, { headers }));
  if (response.status === 401) {
    $("token-box").classList.remove("hidden");
    throw new Error("this server needs a token");
  }
  let body;
  try { body = await response.json(); } catch (e) { body = { error: response.statusText }; }
  if (!response.ok) throw new Error(body.error || response.statusText);
  return body;
}

function showMessage(text, isError = true) {
  const box = $("message");
  box.textContent = text;
  box.classList.toggle("hidden", !text);
  box.classList.toggle("error", isError);
}

async function loadModels() {
  try {
    const body = await api("models");
    state.models = body.models;
    $("token-box").classList.add("hidden");
    showMessage("");
  } catch (e) {
    showMessage(e.message);
    return;
  }
  const select = $("model");
  select.innerHTML = "";
  for (const m of state.models) {
    const option = document.createElement("option");
    option.value = m.name;
    option.textContent = m.name;
    select.appendChild(option);
  }
  const wanted = new URLSearchParams(location.search).get("model");
  if (wanted && state.models.some((m) => m.name === wanted)) select.value = wanted;
  chooseModel(select.value);
}

function shapeText(shape) { return "(" + shape.join(", ") + (shape.length === 1 ? "," : "") + ")"; }
function dataName(t) { return t.data_name || t.name; }

function chooseModel(name) {
  const model = state.models.find((m) => m.name === name);
  state.model = model;
  state.inputs = {};
  $("outputs").innerHTML = "";
  $("timing").textContent = "Draw, drop or type an input to see what the model answers.";
  if (!model) return;
  for (const el of document.querySelectorAll(".model-name")) el.textContent = model.name;
  const describe = (t) => t.image ? `${dataName(t)}: an image ${t.shape[t.shape.length - 1]}×${t.shape[t.shape.length - 2]}`
    : `${dataName(t)}: ${t.shape.reduce((a, b) => a * b, 1)} number${t.shape.reduce((a, b) => a * b, 1) === 1 ? "" : "s"}`;
  $("model-summary").textContent = `The model takes ${model.inputs.map(describe).join(" and ")} and gives `
    + `${model.outputs.map((o) => describe(Object.assign({}, o, { image: false }))).join(" and ")}.`;
  const box = $("inputs");
  box.innerHTML = "";
  for (const info of model.inputs) box.appendChild(info.image ? imageInput(info) : numberInput(info));
  $("auto").parentElement.classList.toggle("hidden", !model.inputs.some((i) => i.image));
  updateExample();
  refreshRunButton();
}

function updateExample() {
  const m = state.model;
  const base = location.origin;
  const auth = token() ? ' -H "Authorization: Bearer $NNCBRIDGE_TOKEN"' : "";
  const first = m.inputs[0];
  const body = first.image
    ? `curl${auth} -F ${dataName(first)}=@digit.png ${base}/predict/${m.name}`
    : `curl${auth} -H "Content-Type: application/json" -d '{"${dataName(first)}": [...]}' ${base}/predict/${m.name}`;
  $("curl-example").textContent = body;
}

// -- image inputs: a pad to draw on or drop a file onto ------------------------------------------------
function imageInput(info) {
  const [h, w] = info.shape.slice(-2);
  const gray = info.channels === 1;
  const block = document.createElement("div");
  block.className = "input-block";
  block.innerHTML = `<h3>${dataName(info)} <span class="shape">image ${w}×${h}, ${gray ? "grayscale" : "color"}</span></h3>
    <div class="image-input">
      <div class="pad"><canvas width="${PAD}" height="${PAD}"></canvas>
        <div class="hint">draw here, or drop an image file</div></div>
      <div class="side">
        <button class="clear">Clear</button>
        <label><button class="pick">Choose file…</button>
          <input type="file" accept="image/*" class="hidden"></label>
        <span class="muted">The model sees:</span>
        <canvas class="preview" width="${w}" height="${h}"></canvas>
        <span class="note muted"></span>
      </div>
    </div>`;
  const pad = block.querySelector(".pad");
  const canvas = pad.querySelector("canvas");
  const ctx = canvas.getContext("2d");
  const preview = block.querySelector(".preview");
  const entry = { info, file: null, drawn: false, resize: false };
  state.inputs[info.name] = entry;
  const background = gray ? "#000" : "#fff";
  const ink = gray ? "#fff" : "#000";

  function clear() {
    ctx.fillStyle = background;
    ctx.fillRect(0, 0, PAD, PAD);
    entry.file = null; entry.drawn = false; entry.resize = false;
    block.querySelector(".note").textContent = "";
    pad.querySelector(".hint").classList.remove("hidden");
    preview.getContext("2d").clearRect(0, 0, w, h);
    refreshRunButton();
  }
  function updatePreview() {
    const p = preview.getContext("2d");
    p.imageSmoothingEnabled = true;
    p.imageSmoothingQuality = "high";
    p.fillStyle = background;
    p.fillRect(0, 0, w, h);
    p.drawImage(canvas, 0, 0, w, h);
    if (gray) {  // show it in gray, as the model gets it
      const px = p.getImageData(0, 0, w, h);
      for (let k = 0; k < px.data.length; k += 4) {
        const v = Math.round(0.299 * px.data[k] + 0.587 * px.data[k + 1] + 0.114 * px.data[k + 2]);
        px.data[k] = px.data[k + 1] = px.data[k + 2] = v;
      }
      p.putImageData(px, 0, 0);
    }
  }
  entry.blob = () => entry.file ? Promise.resolve(entry.file)
    : new Promise((resolve) => preview.toBlob(resolve, "image/png"));

  let drawing = false;
  const point = (e) => { const r = canvas.getBoundingClientRect();
    return [(e.clientX - r.left) * PAD / r.width, (e.clientY - r.top) * PAD / r.height]; };
  canvas.addEventListener("pointerdown", (e) => {
    if (entry.file) clear();
    drawing = true;
    try { canvas.setPointerCapture(e.pointerId); } catch (err) { /* synthetic events have no pointer */ }
    const [x, y] = point(e);
    ctx.strokeStyle = ink; ctx.fillStyle = ink; ctx.lineWidth = PAD / 12; ctx.lineCap = "round"; ctx.lineJoin = "round";
    ctx.beginPath(); ctx.moveTo(x, y); ctx.arc(x, y, ctx.lineWidth / 2, 0, 2 * Math.PI); ctx.fill();
    ctx.beginPath(); ctx.moveTo(x, y);
    pad.querySelector(".hint").classList.add("hidden");
  });
  canvas.addEventListener("pointermove", (e) => {
    if (!drawing) return;
    const [x, y] = point(e);
    ctx.lineTo(x, y); ctx.stroke();
    entry.drawn = true;
    updatePreview();
    if ($("auto").checked) schedule();
  });
  const stop = () => { if (!drawing) return; drawing = false; entry.drawn = true; updatePreview();
    refreshRunButton(); if ($("auto").checked) schedule(); };
  canvas.addEventListener("pointerup", stop);
  canvas.addEventListener("pointercancel", stop);

  function useFile(file) {
    if (!file) return;
    const url = URL.createObjectURL(file);
    const img = new Image();
    img.onload = () => {
      ctx.fillStyle = background; ctx.fillRect(0, 0, PAD, PAD);
      const scale = Math.min(PAD / img.width, PAD / img.height);
      const dw = img.width * scale, dh = img.height * scale;
      ctx.imageSmoothingEnabled = scale < 4;
      ctx.drawImage(img, (PAD - dw) / 2, (PAD - dh) / 2, dw, dh);
      entry.file = file; entry.drawn = false;
      entry.resize = img.width !== w || img.height !== h;
      block.querySelector(".note").textContent = entry.resize
        ? `${file.name}: ${img.width}×${img.height}, resized to ${w}×${h} by the server` : file.name;
      pad.querySelector(".hint").classList.add("hidden");
      updatePreview();
      URL.revokeObjectURL(url);
      refreshRunButton();
      predict();
    };
    img.onerror = () => { showMessage(`${file.name} is not an image this browser can show`); URL.revokeObjectURL(url); };
    img.src = url;
  }
  const picker = block.querySelector("input[type=file]");
  block.querySelector(".pick").addEventListener("click", () => picker.click());
  picker.addEventListener("change", () => useFile(picker.files[0]));
  block.querySelector(".clear").addEventListener("click", clear);
  pad.addEventListener("dragover", (e) => { e.preventDefault(); pad.classList.add("dragging"); });
  pad.addEventListener("dragleave", () => pad.classList.remove("dragging"));
  pad.addEventListener("drop", (e) => { e.preventDefault(); pad.classList.remove("dragging");
    useFile(e.dataTransfer.files[0]); });
  entry.ready = () => entry.file !== null || entry.drawn;
  clear();
  return block;
}

// -- number inputs ------------------------------------------------------------------------------------
function numberInput(info) {
  const count = info.shape.reduce((a, b) => a * b, 1);
  const block = document.createElement("div");
  block.className = "input-block";
  block.innerHTML = `<h3>${dataName(info)} <span class="shape">${count} number${count === 1 ? "" : "s"} ${shapeText(info.shape)}</span></h3>
    <textarea class="${count <= 8 ? "short" : ""}" placeholder="${count === 1 ? "a number, e.g. 0.5"
      : `${count} numbers, separated by commas or spaces`}"></textarea>
    <span class="note muted small"></span>`;
  const area = block.querySelector("textarea");
  const note = block.querySelector(".note");
  const entry = { info };
  state.inputs[info.name] = entry;
  entry.values = () => area.value.split(/[\s,;]+/).filter((s) => s.length).map(Number);
  entry.ready = () => { const v = entry.values(); return v.length === count && v.every(Number.isFinite); };
  area.addEventListener("input", () => {
    const v = entry.values();
    note.textContent = v.some((x) => !Number.isFinite(x)) ? "only numbers, please"
      : `${v.length} of ${count} number${count === 1 ? "" : "s"}`;
    refreshRunButton();
  });
  area.addEventListener("keydown", (e) => { if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) predict(); });
  return block;
}

function nest(values, shape) {
  if (shape.length <= 1) return values;
  const step = values.length / shape[0];
  const out = [];
  for (let k = 0; k < shape[0]; k++) out.push(nest(values.slice(k * step, (k + 1) * step), shape.slice(1)));
  return out;
}

// -- predicting ----------------------------------------------------------------------------------------
function refreshRunButton() {
  const entries = Object.values(state.inputs);
  $("run").disabled = !entries.length || !entries.every((e) => e.ready());
}

let timer = null;
function schedule() { clearTimeout(timer); timer = setTimeout(predict, 120); }

async function predict() {
  const model = state.model;
  const entries = Object.values(state.inputs);
  if (!model || !entries.every((e) => e.ready())) return;
  if (state.busy) { state.pending = true; return; }
  state.busy = true;
  try {
    const images = entries.filter((e) => e.info.image);
    const resize = images.some((e) => e.resize);
    let options;
    if (images.length) {
      const form = new FormData();
      for (const e of entries) {
        if (e.info.image) form.append(dataName(e.info), await e.blob(), "image.png");
        else form.append(dataName(e.info), JSON.stringify(nest(e.values(), e.info.shape)));
      }
      options = { method: "POST", body: form };
    } else {
      const body = {};
      for (const e of entries) body[dataName(e.info)] = nest(e.values(), e.info.shape);
      options = { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) };
    }
    const started = performance.now();
    const result = await api(`predict/${encodeURIComponent(model.name)}${resize ? "?resize=true" : ""}`, options);
    const ms = performance.now() - started;
    showMessage("");
    $("timing").textContent = `Answered in ${ms.toFixed(1)} ms.`;
    showOutputs(model, result.outputs);
  } catch (e) {
    showMessage(e.message);
  } finally {
    state.busy = false;
    if (state.pending) { state.pending = false; predict(); }
  }
}

function flatten(v) { return Array.isArray(v) ? v.flat(Infinity) : [v]; }
function format(x) {
  if (!Number.isFinite(x)) return String(x);
  const a = Math.abs(x);
  return a !== 0 && (a < 1e-3 || a >= 1e5) ? x.toExponential(2) : x.toFixed(a < 1 ? 4 : 3);
}

function showOutputs(model, outputs) {
  const box = $("outputs");
  box.innerHTML = "";
  for (const info of model.outputs) {
    const values = flatten(outputs[dataName(info)]);
    const block = document.createElement("div");
    block.className = "output-block";
    const title = `<h3>${dataName(info)} <span class="muted">${shapeText(info.shape)}</span></h3>`;
    if (values.length === 1) {
      block.innerHTML = `${title}<div class="answer">${format(values[0])}</div>`;
    } else if (info.shape.length === 1 && values.length <= 100) {
      block.innerHTML = title + bars(values);
    } else {
      block.innerHTML = `${title}<div class="values">${values.slice(0, 2000).map(format).join(", ")}${
        values.length > 2000 ? ", …" : ""}</div>`;
    }
    box.appendChild(block);
  }
}

function bars(values) {
  const best = values.indexOf(Math.max(...values));
  const probabilities = values.every((v) => v >= 0 && v <= 1) && Math.abs(values.reduce((a, b) => a + b, 0) - 1) < 1e-3;
  const low = Math.min(0, ...values), high = Math.max(...values);
  const span = high - low || 1;
  let html = `<div class="answer">${best} <small>is the highest score${
    probabilities ? ` (${(values[best] * 100).toFixed(1)} %)` : ""}</small></div><div class="bars">`;
  values.forEach((v, k) => {
    const cls = k === best ? " best" : "";
    const width = Math.max(0, (v - low) / span * 100);
    const label = probabilities ? (v * 100).toFixed(1) + " %" : format(v);
    html += `<span class="label${cls}">${k}</span><div class="track${cls}"><div class="fill" style="width:${width}%"></div></div>`
      + `<span class="value${cls}">${label}</span>`;
  });
  return html + "</div>";
}

$("model").addEventListener("change", (e) => chooseModel(e.target.value));
$("run").addEventListener("click", predict);
$("token-form").addEventListener("submit", (e) => {
  e.preventDefault();
  sessionStorage.setItem("nncbridge-token", $("token").value);
  loadModels();
});
loadModels();
