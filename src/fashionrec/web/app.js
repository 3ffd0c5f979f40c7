// fashionrec web page: plain JavaScript over the JSON API (no build step, no CDN, no framework).
//
// One query is "current" at a time: an uploaded photo, a catalogue product ("more like this") or, when the
// server offers /api/search, a text. Changing k or a filter re-runs the current query. Responses to outdated
// requests are dropped, so fast clicking never shows stale results.
"use strict";

const $ = (id) => document.getElementById(id);

const state = {
  mode: null, // "photo" | "similar" | "text"
  file: null, // the uploaded photo, kept so "back to my photo" can re-run it
  itemId: null, // product of a "more like this" query
  text: "",
  like: new Map(), // id -> name: the shopper's choices, sent with every query (the server keeps nothing)
  unlike: new Map(),
  differ: null, // column the results must differ in from the "more like this" product
  box: null, // {x, y, w, h} in fractions of the photo, or null for the whole photo
  request: 0, // sequence number of the latest request
  look: null, // the photo's /api/look answer: its garments, each with a box and its products
  lookKey: "", // the photo and parameters the shown (or pending) look was asked for
  lookRequest: 0,
  garment: null, // number (1-based) of the garment whose box is searched, or null
  trendsLoaded: false,
  roles: {}, // what the catalogue's columns mean (label, colour, name: /api/facets), so no column name is assumed
};

// Colour names of the Kaggle catalogue mapped to CSS colours (for swatches and the colour chart).
const COLOURS = {
  Beige: "#e8dcc0", Black: "#1b1b1b", Blue: "#2f6fd6", Bronze: "#a0692b", Brown: "#7b4a26",
  Burgundy: "#7a1f35", Charcoal: "#3d4347", Coffee: "#5b3a29", Copper: "#b56a3c", Cream: "#f4ecd2",
  Gold: "#d4a72c", Green: "#2e8b57", Grey: "#8c8f93", "Grey Melange": "#a9acb0", Khaki: "#b9a770",
  Lavender: "#b9a6e0", Magenta: "#c2185b", Maroon: "#6d1a26", Mauve: "#b784a7", Metallic: "#9ea7ad",
  Mushroom: "#b6a493", Mustard: "#d5a419", "Navy Blue": "#1f2f5c", Nude: "#e3bfa3",
  Olive: "#6b6d2a", Orange: "#ef7d22", Peach: "#f6b99b", Pink: "#ef8fb6", Purple: "#6c3fa0", Red: "#d3312f",
  Rose: "#e3879e", Rust: "#a8461e", "Sea Green": "#3e9f86", Silver: "#c0c5ca", Skin: "#e6b898",
  Steel: "#71808f", Tan: "#c79e6e", Taupe: "#8b7e72", Teal: "#16807f", "Turquoise Blue": "#2bb3c0",
  White: "#ffffff", Yellow: "#f2d43b", "Fluorescent Green": "#4fe34a", "Lime Green": "#8ccf3f",
};

// ---------------------------------------------------------------------------------------------- helpers
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "text") node.textContent = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  node.append(...children.filter((c) => c !== null && c !== undefined));
  return node;
}

async function api(path, options = {}) {
  const response = await fetch(path, options);
  const body = await response.json().catch(() => null);
  if (!response.ok) {
    const message = body && body.error ? body.error : `${response.status} ${response.statusText}`;
    throw new Error(message);
  }
  return body;
}

function setStatus(text) {
  $("status").textContent = text;
}

function showError(message) {
  const box = $("error");
  box.textContent = message;
  box.hidden = !message;
}

function productName(meta, id) {
  return (state.roles.name && meta[state.roles.name]) || meta.productDisplayName || meta.name || meta.title
    || `Product ${id}`;
}

function swatch(colour) {
  const dot = el("span", { class: "swatch", "aria-hidden": "true" });
  if (COLOURS[colour]) dot.style.background = COLOURS[colour];
  else dot.classList.add(colour === "Multi" ? "multi" : "unknown");
  return dot;
}

// ---------------------------------------------------------------------------------------------- filters
function currentFilters() {
  const specs = [];
  for (const select of document.querySelectorAll("#filter-fields select")) {
    if (select.value) specs.push(`${select.dataset.column}=${select.value}`);
  }
  return specs;
}

// Weight of the neighbours' articleType vote when "Same kind first" is on (README, "Neighbour consensus").
const CONSENSUS_WEIGHT = 0.5;

function queryString(extra = {}) {
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(extra)) params.set(key, value);
  const k = Math.max(1, Math.min(100, parseInt($("k-input").value, 10) || 12));
  params.set("k", String(k));
  if (state.mode !== "text" && $("consensus-input").checked) params.set("consensus", String(CONSENSUS_WEIGHT));
  for (const spec of currentFilters()) params.append("filter", spec);
  if (state.mode !== "text") {
    for (const id of state.like.keys()) params.append("like", id);
    for (const id of state.unlike.keys()) params.append("unlike", id);
  }
  if (state.mode === "similar" && state.differ) params.set("differ", state.differ);
  if (state.mode === "photo" && state.box) {
    const b = state.box;
    params.set("box", [b.x, b.y, b.w, b.h].map((v) => v.toFixed(4)).join(","));
    // a garment of the look: searched among its class's products, as its row is
    if (state.garment && state.look) params.set("garment", state.look.garments[state.garment - 1].label);
  }
  return params.toString();
}

// Shop the look is asked with k and the filters only (no box, no examples): every garment of the photo.
function lookQuery() {
  const params = new URLSearchParams();
  const k = Math.max(1, Math.min(100, parseInt($("k-input").value, 10) || 12));
  params.set("k", String(Math.min(k, LOOK_MAX_K)));
  for (const spec of currentFilters()) params.append("filter", spec);
  return params.toString();
}

// ---------------------------------------------------------------------------------------------- steering
function resetSteering() {
  state.like.clear();
  state.unlike.clear();
  state.differ = null;
}

function judge(result, liked) {
  const name = productName(result.metadata, result.id);
  const [mine, other] = liked ? [state.like, state.unlike] : [state.unlike, state.like];
  other.delete(result.id);
  if (mine.has(result.id)) mine.delete(result.id);
  else mine.set(result.id, name);
  run();
}

function renderChips() {
  const chips = [];
  const chip = (kind, label, remove, testid) =>
    el("li", { class: `chip ${kind}`, "data-testid": testid },
      el("span", { text: label }),
      el("button", { type: "button", class: "chip-remove", "aria-label": `Remove ${label}`, onclick: remove,
        "data-testid": "chip-remove" }, "×"));
  for (const [id, name] of state.like) {
    chips.push(chip("liked", `👍 ${name}`, () => { state.like.delete(id); run(); }, "chip-like"));
  }
  for (const [id, name] of state.unlike) {
    chips.push(chip("disliked", `👎 ${name}`, () => { state.unlike.delete(id); run(); }, "chip-unlike"));
  }
  if (state.mode === "similar" && state.differ) {
    chips.push(chip("differ", `Another ${labelOf(state.differ).toLowerCase()}`, () => { state.differ = null; run(); },
      "chip-differ"));
  }
  $("examples").replaceChildren(...chips);
  $("examples").hidden = chips.length === 0;
}

function buildFilters(facets) {
  const container = $("filter-fields");
  container.replaceChildren();
  for (const facet of facets.facets) {
    const id = `filter-${facet.column}`;
    const values = [...facet.values].sort((a, b) => a.value.localeCompare(b.value, undefined, { numeric: true }));
    const select = el(
      "select",
      { id, "data-column": facet.column, "data-testid": id, onchange: run },
      el("option", { value: "", text: "Any" }),
      ...values.map((v) => el("option", { value: v.value, text: `${v.value} (${v.count})` })),
    );
    container.append(el("div", { class: "field" }, el("label", { for: id, text: labelOf(facet.column) }), select));
  }
}

function labelOf(column) {
  // "masterCategory" -> "Master category", "baseColour" -> "Base colour"
  const words = column.replace(/([a-z])([A-Z])/g, "$1 $2").replace(/[_-]+/g, " ").toLowerCase();
  return words.charAt(0).toUpperCase() + words.slice(1);
}

// ---------------------------------------------------------------------------------------------- queries
async function run() {
  if (!state.mode) return;
  if (state.mode === "photo") runLook();
  const seq = ++state.request;
  showError("");
  setStatus("Searching…");
  $("results").setAttribute("aria-busy", "true");
  try {
    let data;
    if (state.mode === "photo") {
      const form = new FormData();
      form.append("file", state.file, state.file.name || "photo");
      data = await api(`/api/recommend?${queryString()}`, { method: "POST", body: form });
    } else if (state.mode === "similar") {
      data = await api(`/api/items/${encodeURIComponent(state.itemId)}/similar?${queryString()}`);
    } else {
      data = await api(`/api/search?${queryString({ q: state.text })}`);
    }
    if (seq !== state.request) return; // a newer query was started meanwhile
    render(data);
  } catch (err) {
    if (seq !== state.request) return;
    $("results").replaceChildren();
    setStatus("");
    showError(err.message);
  } finally {
    if (seq === state.request) $("results").removeAttribute("aria-busy");
  }
}

function queryPhoto(file) {
  if (!file) return;
  state.mode = "photo";
  state.file = file;
  resetSteering();
  setBox(null, false);
  state.look = null;
  state.lookKey = "";
  renderLook();
  const preview = $("preview");
  if (preview.src) URL.revokeObjectURL(preview.src);
  preview.src = URL.createObjectURL(file);
  preview.alt = `Your photo: ${file.name || "pasted image"}`;
  preview.hidden = false;
  $("dropzone").classList.add("has-image");
  $("crop-image").src = preview.src;
  $("crop").hidden = false;
  run();
}

function querySimilar(itemId, differ = null) {
  state.mode = "similar";
  state.itemId = itemId;
  resetSteering();
  state.differ = differ;
  run().then(() => $("results-title").focus());
}

function queryText(text) {
  resetSteering();
  state.mode = "text";
  state.text = text;
  run();
}

// ---------------------------------------------------------------------------------------------- rendering
function render(data) {
  const n = data.results.length;
  const filters = Object.entries(data.filters).map(([c, v]) => `${labelOf(c)}: ${v.join(" or ")}`);
  const filtered = filters.length ? ` matching ${filters.join(", ")}` : "";
  $("empty").hidden = true;
  $("back-button").hidden = !(state.mode === "similar" && state.file);
  const similarTo = $("similar-to");
  if (data.item) {
    $("results-title").textContent = "More like this";
    similarTo.replaceChildren(
      el("img", { src: data.item.image_url, alt: productName(data.item.metadata, data.item.id) }),
      el("p", {}, el("span", { class: "muted", text: "Products similar to " }),
        el("strong", { text: productName(data.item.metadata, data.item.id) })),
    );
    similarTo.hidden = false;
  } else {
    const garment = state.mode === "photo" && state.garment && state.look ? state.look.garments[state.garment - 1] : null;
    $("results-title").textContent = state.mode === "text" ? `Results for “${state.text}”`
      : garment ? `Similar to garment ${state.garment}: ${garment.label}` : "Similar products";
    similarTo.hidden = true;
  }
  setStatus(n ? `${n} product${n === 1 ? "" : "s"}${filtered}.` : `No products${filtered}.`);
  renderChips();
  $("results").replaceChildren(...data.results.map((r) => card(r)));
  $("look").hidden = state.mode !== "photo" || !state.look;
}

function card(result, testid = "result-card") {
  const meta = result.metadata;
  const name = productName(meta, result.id);
  const kind = (state.roles.label && meta[state.roles.label]) || meta.articleType || meta.subCategory
    || meta.masterCategory;
  const category = [meta.gender, kind].filter(Boolean).join(" · ");
  const colourColumn = state.roles.colour; // "Other colours" differs in the recorded colour column, when there is one
  const colour = (colourColumn && meta[colourColumn]) || "";
  const score = Math.max(0, Math.min(1, result.score));
  const more = () => querySimilar(result.id);
  const meter = el("span", { class: "meter", "aria-hidden": "true" }, el("span", { class: "meter-fill" }));
  meter.firstChild.style.width = `${(score * 100).toFixed(1)}%`;
  return el(
    "li",
    { class: "card", "data-testid": testid, "data-id": result.id },
    el("div", { class: "card-image", onclick: more }, el("img", { src: result.image_url, alt: name })),
    el("div", { class: "card-body" },
      el("span", { class: "rank", text: `#${result.rank}` }),
      el("h3", { class: "card-title", title: name, text: name, "data-testid": "result-name" }),
      category ? el("p", { class: "card-category", text: category, "data-testid": "result-category" }) : null,
      colour ? el("p", { class: "card-colour", "data-testid": "result-colour" }, swatch(colour), colour) : null,
      el("p", { class: "card-score", "data-testid": "result-score" },
        meter, el("span", { text: `similarity ${result.score.toFixed(3)}` })),
      el("button", { type: "button", class: "button small", onclick: more, "data-testid": "more-like-this",
        "aria-label": `More like ${name}` }, "More like this"),
      state.mode === "text" ? null : el("div", { class: "card-actions" },
        el("button", { type: "button", class: "button small thumb", "data-testid": "like",
          "aria-pressed": String(state.like.has(result.id)), "aria-label": `More like ${name}, fewer like the others`,
          title: "Like: show more like this", onclick: () => judge(result, true) }, "👍"),
        el("button", { type: "button", class: "button small thumb", "data-testid": "unlike",
          "aria-pressed": String(state.unlike.has(result.id)), "aria-label": `Less like ${name}`,
          title: "Dislike: show fewer like this", onclick: () => judge(result, false) }, "👎"),
        colour ? el("button", { type: "button", class: "button small subtle", "data-testid": "another-colour",
          "aria-label": `${name} in another colour`, onclick: () => querySimilar(result.id, colourColumn) },
        "Other colours") : null),
    ),
  );
}

// ---------------------------------------------------------------------------------------------- crop box
// Drag on the photo (mouse, pen or touch) to search only that region; with the keyboard, focus the photo and
// use the arrow keys to move the box and Shift + arrows to resize it. "Whole photo" removes the box.
const clamp = (v, lo, hi) => Math.max(lo, Math.min(hi, v));

function setBox(box, rerun = true) {
  state.box = box;
  state.garment = null;
  markGarment();
  const frame = $("crop-box");
  frame.hidden = !box;
  if (box) {
    Object.assign(frame.style, { left: `${box.x * 100}%`, top: `${box.y * 100}%`, width: `${box.w * 100}%`,
      height: `${box.h * 100}%` });
  }
  $("crop-clear").hidden = !box;
  $("crop-area").setAttribute("aria-label", box
    ? `Search region: ${Math.round(box.w * 100)}% by ${Math.round(box.h * 100)}% of the photo, from ${Math.round(box.x * 100)}% left, ${Math.round(box.y * 100)}% top. Arrows move it, Shift+arrows resize it.`
    : "Whole photo searched. Drag on it, or press an arrow key, to search only a region.");
  if (rerun && state.mode === "photo") run();
}

function setUpCrop() {
  const area = $("crop-area");
  let start = null;
  const point = (event) => {
    const r = area.getBoundingClientRect();
    return { x: clamp((event.clientX - r.left) / r.width, 0, 1), y: clamp((event.clientY - r.top) / r.height, 0, 1) };
  };
  const boxFrom = (a, b) => ({ x: Math.min(a.x, b.x), y: Math.min(a.y, b.y), w: Math.abs(a.x - b.x), h: Math.abs(a.y - b.y) });
  let startGarment = null; // the garment whose number the drag started on
  area.addEventListener("pointerdown", (event) => {
    event.preventDefault();
    start = point(event);
    const tag = event.target.closest("[data-garment]");
    startGarment = tag ? Number(tag.dataset.garment) : null;
    area.setPointerCapture(event.pointerId);
  });
  area.addEventListener("pointermove", (event) => {
    if (!start) return;
    const box = boxFrom(start, point(event));
    if (box.w > 0.01 && box.h > 0.01) setBox(box, false);
  });
  area.addEventListener("pointerup", (event) => {
    if (!start) return;
    const end = point(event);
    const box = boxFrom(start, end);
    start = null;
    if (box.w > 0.02 && box.h > 0.02) setBox(box);
    else if (box.w < 0.01 && box.h < 0.01) { // a click, not a drag: the garment under it, if any
      const chosen = startGarment || garmentAt(end);
      if (chosen) chooseGarment(chosen);
    }
  });
  area.addEventListener("keydown", (event) => {
    const moves = { ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, -1], ArrowDown: [0, 1] };
    if (!(event.key in moves)) return;
    event.preventDefault();
    const [dx, dy] = moves[event.key].map((v) => v * 0.05);
    const b = state.box ? { ...state.box } : { x: 0.25, y: 0.25, w: 0.5, h: 0.5 };
    if (state.box && event.shiftKey) {
      b.w = clamp(b.w + dx, 0.05, 1 - b.x);
      b.h = clamp(b.h + dy, 0.05, 1 - b.y);
    } else if (state.box) {
      b.x = clamp(b.x + dx, 0, 1 - b.w);
      b.y = clamp(b.y + dy, 0, 1 - b.h);
    }
    setBox(b);
  });
  $("crop-clear").addEventListener("click", () => setBox(null));
}

// ---------------------------------------------------------------------------------------------- shop the look
// After a photo is chosen the page also asks /api/look: the garments found in it are drawn over the photo as
// numbered, labelled boxes, with a row of products per garment below the results. A click on a garment's box
// (or its number, or its row's heading; Enter on a focused number) searches that region of the photo with
// /api/recommend, exactly like a box the shopper draws.
const LOOK_MAX_K = 8; // products per garment row
const GARMENT_COLOURS = 8; // .garment-1 ... .garment-8 in style.css

async function runLook() {
  const key = lookQuery();
  if (state.lookKey === key) return; // already shown, or on its way
  state.lookKey = key;
  const seq = ++state.lookRequest;
  const file = state.file;
  $("look").hidden = false;
  $("look-status").textContent = "Finding the garments…";
  $("look-rows").setAttribute("aria-busy", "true");
  try {
    const form = new FormData();
    form.append("file", file, file.name || "photo");
    const data = await api(`/api/look?${key}`, { method: "POST", body: form });
    if (seq !== state.lookRequest) return;
    state.look = data;
    renderLook();
  } catch (err) {
    if (seq !== state.lookRequest) return;
    state.look = null;
    state.lookKey = ""; // asked again with the next query
    renderLook();
    $("look").hidden = state.mode !== "photo";
    $("look-status").textContent = `Could not find the garments: ${err.message}`;
  } finally {
    if (seq === state.lookRequest) $("look-rows").removeAttribute("aria-busy");
  }
}

function garmentBox(garment) {
  const { width, height } = state.look.query;
  const [x, y, w, h] = garment.box;
  return { x: x / width, y: y / height, w: w / width, h: h / height };
}

function garmentAt(p) {
  // The smallest garment box under the point (a bag drawn over a coat is the bag).
  if (!state.look) return null;
  let best = null;
  state.look.garments.forEach((g, i) => {
    const b = garmentBox(g);
    const inside = p.x >= b.x && p.x <= b.x + b.w && p.y >= b.y && p.y <= b.y + b.h;
    if (inside && (!best || b.w * b.h < best.area)) best = { n: i + 1, area: b.w * b.h };
  });
  return best ? best.n : null;
}

function chooseGarment(n) {
  if (!state.look || !state.look.garments[n - 1]) return;
  setBox(garmentBox(state.look.garments[n - 1]), false);
  state.garment = n;
  markGarment();
  run();
}

function markGarment() {
  for (const node of document.querySelectorAll("[data-garment]")) {
    node.setAttribute("aria-pressed", String(Number(node.dataset.garment) === state.garment));
  }
}

function renderLook() {
  const look = state.look;
  const garments = look ? look.garments : [];
  const boxes = garments.map((g, i) => {
    const n = i + 1;
    const b = garmentBox(g);
    const name = `Garment ${n}: ${g.label}, ${Math.round(g.score * 100)}% sure. Search only this garment`;
    const frame = el("div", { class: `look-box garment-${((n - 1) % GARMENT_COLOURS) + 1}`, "data-testid": "look-box",
      "data-label": g.label, "data-box": g.box.join(",") },
    el("button", { type: "button", class: "look-tag", "data-garment": String(n), "aria-label": name,
      "aria-pressed": "false", "data-testid": "look-tag", onclick: () => chooseGarment(n) }, `${n} ${g.label}`));
    Object.assign(frame.style, { left: `${b.x * 100}%`, top: `${b.y * 100}%`, width: `${b.w * 100}%`,
      height: `${b.h * 100}%` });
    return frame;
  });
  $("look-boxes").replaceChildren(...boxes);
  const rows = garments.map((g, i) => {
    const n = i + 1;
    return el("div", { class: "look-row", "data-testid": "look-row", "data-label": g.label },
      el("h3", {},
        el("button", { type: "button", class: `button subtle small look-heading garment-${((n - 1) % GARMENT_COLOURS) + 1}`,
          "data-garment": String(n), "aria-pressed": "false", "data-testid": "look-garment",
          onclick: () => chooseGarment(n) },
        el("span", { class: "look-number", text: String(n) }), ` ${g.label}`,
        el("small", { class: "muted", text: ` ${Math.round(g.score * 100)}% sure · search only this garment` }))),
      el("ol", { class: "grid look-results" }, ...g.results.map((r) => card(r, "look-card"))));
  });
  $("look-rows").replaceChildren(...rows);
  if (look) {
    const n = garments.length;
    $("look-status").textContent = n
      ? `${n} garment${n === 1 ? "" : "s"} found, most confident first. Click one on the photo to search only it.`
      : "No garments found in this photo.";
  } else {
    $("look-status").textContent = "";
  }
  markGarment();
}

// ---------------------------------------------------------------------------------------------- trends
async function loadTrends() {
  if (state.trendsLoaded) return;
  try {
    const trends = await api("/api/trends");
    state.trendsLoaded = true;
    $("trends-summary").textContent =
      `${trends.items.toLocaleString()} products in the catalogue. Bars show how many products have each value.`;
    $("charts").replaceChildren(...trends.charts.map(chart));
  } catch (err) {
    $("trends-summary").textContent = `Could not load the trends: ${err.message}`;
  }
}

function chart(data) {
  const rows = data.counts.map((c) => ({ label: c.value, count: c.count, colour: COLOURS[c.value] }));
  if (data.other) rows.push({ label: "Other", count: data.other, muted: true });
  const max = Math.max(1, ...rows.map((r) => r.count));
  const total = rows.reduce((sum, r) => sum + r.count, 0);
  const colourChart = data.column === "baseColour" || data.column === "colour";
  const rowH = 22, labelW = 130, barW = 220, countW = 64;
  const width = labelW + barW + countW;
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", `0 0 ${width} ${rows.length * rowH}`);
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", `${data.title}: ` + rows.map((r) => `${r.label} ${r.count}`).join(", "));
  rows.forEach((row, i) => {
    const y = i * rowH;
    const g = document.createElementNS(ns, "g");
    g.setAttribute("class", "bar-row");
    const label = document.createElementNS(ns, "text");
    label.setAttribute("x", labelW - 8);
    label.setAttribute("y", y + rowH / 2);
    label.setAttribute("class", "bar-label");
    label.textContent = row.label.length > 18 ? `${row.label.slice(0, 17)}…` : row.label;
    const tip = document.createElementNS(ns, "title");
    tip.textContent = `${row.label}: ${row.count.toLocaleString()} (${((100 * row.count) / total).toFixed(1)}%)`;
    const rect = document.createElementNS(ns, "rect");
    rect.setAttribute("x", labelW);
    rect.setAttribute("y", y + 3);
    rect.setAttribute("height", rowH - 6);
    rect.setAttribute("rx", 3);
    rect.setAttribute("width", Math.max(2, (barW * row.count) / max));
    const classes = ["bar"];
    if (row.muted) classes.push("muted-bar");
    if (colourChart && row.colour) {
      rect.style.fill = row.colour; // CSSOM, so it wins over the stylesheet's bar colour (and passes the CSP)
      classes.push("colour-bar");
    }
    rect.setAttribute("class", classes.join(" "));
    const count = document.createElementNS(ns, "text");
    count.setAttribute("x", labelW + Math.max(2, (barW * row.count) / max) + 6);
    count.setAttribute("y", y + rowH / 2);
    count.setAttribute("class", "bar-count");
    count.textContent = row.count.toLocaleString();
    g.append(tip, label, rect, count);
    svg.append(g);
  });
  const notes = data.missing ? `${data.missing.toLocaleString()} products have no value.` : "";
  return el("figure", { class: "chart", "data-testid": "trend-chart", "data-column": data.column },
    el("figcaption", {}, el("h3", { text: data.title }), notes ? el("small", { class: "muted", text: notes }) : null),
    svg);
}

// ---------------------------------------------------------------------------------------------- tabs
function selectTab(name) {
  for (const tab of ["search", "trends"]) {
    const selected = tab === name;
    $(`tab-${tab}`).setAttribute("aria-selected", String(selected));
    $(`tab-${tab}`).tabIndex = selected ? 0 : -1;
    $(`view-${tab}`).hidden = !selected;
  }
  if (name === "trends") loadTrends();
  if (location.hash !== `#${name}`) history.replaceState(null, "", `#${name}`);
}

function setUpTabs() {
  const tabs = ["search", "trends"];
  for (const name of tabs) {
    const tab = $(`tab-${name}`);
    tab.addEventListener("click", () => selectTab(name));
    tab.addEventListener("keydown", (event) => {
      if (event.key !== "ArrowRight" && event.key !== "ArrowLeft") return;
      const next = tabs[(tabs.indexOf(name) + (event.key === "ArrowRight" ? 1 : tabs.length - 1)) % tabs.length];
      selectTab(next);
      $(`tab-${next}`).focus();
    });
  }
  selectTab(location.hash === "#trends" ? "trends" : "search");
}

// ---------------------------------------------------------------------------------------------- input
function setUpInput() {
  const zone = $("dropzone");
  const input = $("file-input");
  zone.addEventListener("click", () => input.click());
  zone.addEventListener("keydown", (event) => {
    if (event.key === "Enter" || event.key === " ") {
      event.preventDefault();
      input.click();
    }
  });
  input.addEventListener("change", () => {
    queryPhoto(input.files[0]);
    input.value = ""; // choosing the same file again still triggers a query
  });
  for (const type of ["dragenter", "dragover"]) {
    zone.addEventListener(type, (event) => {
      event.preventDefault();
      zone.classList.add("dragging");
    });
  }
  for (const type of ["dragleave", "drop"]) zone.addEventListener(type, () => zone.classList.remove("dragging"));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    queryPhoto(event.dataTransfer.files[0]);
  });
  document.addEventListener("paste", (event) => {
    const item = [...(event.clipboardData?.items || [])].find((i) => i.kind === "file" && i.type.startsWith("image/"));
    if (!item) return;
    event.preventDefault();
    selectTab("search");
    queryPhoto(item.getAsFile());
  });
  $("k-input").addEventListener("change", run);
  $("consensus-input").addEventListener("change", run);
  $("clear-filters").addEventListener("click", () => {
    for (const select of document.querySelectorAll("#filter-fields select")) select.value = "";
    run();
  });
  $("back-button").addEventListener("click", () => {
    state.mode = "photo";
    run();
  });
  $("text-search").addEventListener("submit", (event) => {
    event.preventDefault();
    const text = $("text-query").value.trim();
    if (text) queryText(text);
  });
}

// ---------------------------------------------------------------------------------------------- start
async function start() {
  setUpTabs();
  setUpInput();
  setUpCrop();
  try {
    const [health, facets, openapi] = await Promise.all([api("/healthz"), api("/api/facets"), api("/openapi.json")]);
    $("index-info").textContent = `${health.items.toLocaleString()} products · ${health.model}`;
    state.roles = facets.roles || {};
    buildFilters(facets);
    // Text search is an optional server feature: offer it only when the server documents it.
    $("text-search").hidden = !("/api/search" in openapi.paths);
    document.body.dataset.ready = "true";
  } catch (err) {
    showError(`The server did not answer: ${err.message}`);
  }
}

document.addEventListener("DOMContentLoaded", start);
