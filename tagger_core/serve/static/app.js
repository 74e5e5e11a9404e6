// The tagger page: tag names and files, and review label sets into the corrections file.
// Plain JavaScript, no framework and nothing from a CDN: it works on an offline machine.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { taggers: {}, server: {}, tagged: [], items: [], at: 0, saved: 0 };

function message(text, ok) {
  $("message").textContent = text || "";
  $("message").className = ok ? "ok" : "";
}

function headers(extra) {
  const out = Object.assign({}, extra || {});
  const token = sessionStorage.getItem("tagger-token");
  if (token) out["Authorization"] = "Bearer " + token;
  return out;
}

async function call(path, options) {
  options = options || {};
  options.headers = headers(options.headers);
  const response = await fetch(path, options);
  if (response.status === 401) {
    $("token-box").hidden = false;
    throw new Error("this server needs a token: type it above");
  }
  if (!response.ok) {
    let text = response.status + " " + response.statusText;
    try { text = (await response.json()).error.message; } catch (e) { /* not JSON */ }
    throw new Error(text);
  }
  return response;
}

function current() { return state.taggers[$("tagger").value]; }

function display(tagger, id) {
  const label = tagger.taxonomy.labels.find((l) => l.id === id);
  return label && label.name ? label.name : id;
}

async function loadTaggers() {
  try {
    const body = await (await call("/v1/taggers")).json();
    state.server = body;
    const select = $("tagger");
    const chosen = select.value;
    select.textContent = "";
    for (const tagger of body.taggers) {
      state.taggers[tagger.name] = tagger;
      const option = document.createElement("option");
      option.value = option.textContent = tagger.name;
      select.appendChild(option);
    }
    if (chosen in state.taggers) select.value = chosen;
    if (body.loading.length) {
      message("loading: " + body.loading.join(", "));
      setTimeout(loadTaggers, 1000);
    } else {
      message("");
    }
    showInfo();
  } catch (error) { message(error.message); }
}

function showInfo() {
  const tagger = current();
  if (!tagger) return;
  const t = tagger.taxonomy;
  $("tagger-info").textContent =
    `${t.name} · ${t.labels.length} labels · ${tagger.encoder.name}`;
}

// -- tag names ---------------------------------------------------------------------------

async function tagNames() {
  const texts = $("names").value.split("\n").map((s) => s.trim()).filter((s) => s);
  if (!texts.length) { message("type a name first"); return; }
  const tagger = current();
  try {
    const response = await call(`/v1/taggers/${encodeURIComponent(tagger.name)}/predict`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ texts: texts }),
    });
    const body = await response.json();
    state.tagged = body.predictions;
    showResults(tagger, body.predictions);
    message("");
  } catch (error) { message(error.message); }
}

function chip(text, title) {
  const span = document.createElement("span");
  span.className = "chip";
  span.textContent = text;
  if (title) span.title = title;
  return span;
}

function best(scores, n) {
  return Object.entries(scores).sort((a, b) => b[1] - a[1]).slice(0, n);
}

function showResults(tagger, predictions) {
  const body = $("results").querySelector("tbody");
  body.textContent = "";
  for (const p of predictions) {
    const row = body.insertRow();
    row.insertCell().textContent = p.text;
    const labels = row.insertCell();
    p.labels.forEach((id, i) => labels.appendChild(chip(p.display_names[i], id)));
    if (!p.labels.length) labels.textContent = "(none)";
    row.insertCell().textContent = best(p.scores, 3)
      .map(([id, s]) => `${display(tagger, id)} ${s.toFixed(2)}`).join(" · ");
  }
  $("results").hidden = false;
}

// -- tag a file --------------------------------------------------------------------------

async function tagFile() {
  const file = $("tag-file").files[0];
  if (!file) { message("choose a file first"); return; }
  const form = new FormData();
  form.append("file", file);
  if ($("tag-file-format").value) form.append("output_format", $("tag-file-format").value);
  try {
    message("tagging " + file.name + " …", true);
    const path = `/v1/taggers/${encodeURIComponent(current().name)}/predict-file`;
    const response = await call(path, { method: "POST", body: form });
    const blob = await response.blob();
    const name = (response.headers.get("content-disposition") || "")
      .match(/filename="?([^";]+)"?/);
    const link = $("download-link");
    if (link.href) URL.revokeObjectURL(link.href);
    link.href = URL.createObjectURL(blob);
    link.download = name ? decodeURIComponent(name[1]) : "tagged-" + file.name;
    link.textContent = "Download " + link.download;
    link.hidden = false;
    link.click();
    message("tagged " + file.name, true);
  } catch (error) { message(error.message); }
}

// -- review ------------------------------------------------------------------------------

function startReview(items) {
  state.items = items.map((item) => Object.assign({ chosen: item.labels.slice() }, item));
  state.at = 0;
  if (!state.items.length) { message("nothing to review"); return; }
  $("review").hidden = false;
  showItem();
}

function reviewTagged() {
  if (!state.tagged.length) { message("tag some names first"); return; }
  startReview(state.tagged.map((p, i) => ({
    row: i + 1, id: null, text: p.text, labels: p.labels, file_labels: [], scores: p.scores,
  })));
}

async function reviewFile() {
  const file = $("review-file").files[0];
  if (!file) { message("choose a file first"); return; }
  const form = new FormData();
  form.append("file", file);
  try {
    const path = `/v1/taggers/${encodeURIComponent(current().name)}/review-items`;
    const body = await (await call(path, { method: "POST", body: form })).json();
    message(`${body.items.length} names from ${body.file}`, true);
    startReview(body.items);
  } catch (error) { message(error.message); }
}

function constraintsText(t) {
  const c = t.constraints, parts = [];
  if (t.mode === "single-label") parts.push("exactly one label");
  if (c.min_labels) parts.push(`at least ${c.min_labels}`);
  if (c.max_labels) parts.push(`at most ${c.max_labels}`);
  if (c.exclusive.length) parts.push(`${c.exclusive.join(", ")} alone`);
  return parts.length ? "(" + parts.join("; ") + ")" : "";
}

// The taxonomy's constraints, applied as boxes are ticked: the server checks them again.
function tick(item, id, on) {
  const t = current().taxonomy, c = t.constraints;
  let chosen = item.chosen.filter((x) => x !== id);
  if (on) {
    if (t.mode === "single-label" || c.exclusive.includes(id)) chosen = [];
    chosen = chosen.filter((x) => !c.exclusive.includes(x));
    for (const group of c.exclusive_groups) {
      if (group.includes(id)) chosen = chosen.filter((x) => !group.includes(x));
    }
    chosen.push(id);
  }
  item.chosen = chosen;
}

function problem(item) {
  const t = current().taxonomy, c = t.constraints, n = item.chosen.length;
  if (t.mode === "single-label" && n !== 1) return "choose exactly one label";
  if (n < c.min_labels) return `choose at least ${c.min_labels} label(s)`;
  if (c.max_labels && n > c.max_labels) return `at most ${c.max_labels} label(s)`;
  return null;
}

function showItem() {
  const tagger = current(), t = tagger.taxonomy, item = state.items[state.at];
  $("review-position").textContent = `${state.at + 1} of ${state.items.length}`;
  $("review-constraints").textContent = constraintsText(t);
  $("review-text").textContent = item.text;
  $("review-file-labels").textContent = item.file_labels.length
    ? "the file says: " + item.file_labels.map((id) => display(tagger, id)).join(", ") : "";
  const box = $("review-labels");
  box.textContent = "";
  const ordered = t.labels.slice().sort((a, b) => (item.scores[b.id] || 0) - (item.scores[a.id] || 0));
  const full = t.constraints.max_labels && item.chosen.length >= t.constraints.max_labels;
  for (const label of ordered) {
    const row = document.createElement("label");
    const input = document.createElement("input");
    input.type = "checkbox";
    input.value = label.id;
    input.checked = item.chosen.includes(label.id);
    input.disabled = Boolean(full && !input.checked);
    input.addEventListener("change", () => { tick(item, label.id, input.checked); showItem(); });
    row.appendChild(input);
    row.appendChild(document.createTextNode(" " + (label.name || label.id) + " "));
    if (label.name && label.name !== label.id) {
      const id = document.createElement("span");
      id.className = "muted";
      id.textContent = label.id;
      row.appendChild(id);
    }
    const score = item.scores[label.id] || 0;
    const bar = document.createElement("span");
    bar.className = "bar";
    bar.style.width = Math.round(score * 80) + "px";
    row.appendChild(bar);
    const shown = document.createElement("span");
    shown.className = "score";
    shown.textContent = " " + score.toFixed(2);
    row.appendChild(shown);
    if (label.description) row.title = label.description;
    box.appendChild(row);
  }
  const why = problem(item);
  $("save").disabled = Boolean(why);
  $("save").textContent = sameSet(item.chosen, item.labels) ? "Accept" : "Save correction";
  $("review-status").textContent = why || (item.saved ? "saved, row " + item.saved : "");
  $("back").disabled = state.at === 0;
}

function sameSet(a, b) {
  return a.length === b.length && a.every((x) => b.includes(x));
}

function newId() {
  if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
  return Date.now().toString(36) + Math.random().toString(36).slice(2);
}

async function save() {
  const item = state.items[state.at];
  if (problem(item)) return;
  const body = {
    text: item.text, labels: item.chosen, predicted: item.labels,
    review_id: newId(),
  };
  if (item.id !== null && item.id !== undefined) body.id = item.id;
  const reviewer = $("reviewer").value.trim();
  if (reviewer) body.reviewer = reviewer;
  const path = `/v1/taggers/${encodeURIComponent(current().name)}/corrections`;
  // A dropped connection is retried with the same review_id: written once either way.
  for (let attempt = 0; ; attempt++) {
    try {
      const response = await call(path, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify(body),
      });
      const answer = await response.json();
      item.saved = answer.row;
      state.saved += answer.written ? 1 : 0;
      message(`saved to ${answer.file}, row ${answer.row}`, true);
      break;
    } catch (error) {
      if (!(error instanceof TypeError) || attempt >= 2) {
        $("review-status").textContent = error.message;
        return;
      }
    }
  }
  if (state.at < state.items.length - 1) state.at++;
  showItem();
}

function move(step) {
  state.at = Math.min(Math.max(state.at + step, 0), state.items.length - 1);
  showItem();
}

// -- wiring ------------------------------------------------------------------------------

$("token").value = sessionStorage.getItem("tagger-token") || "";
$("token").addEventListener("change", () => {
  sessionStorage.setItem("tagger-token", $("token").value);
  loadTaggers();
});
$("reviewer").value = localStorage.getItem("tagger-reviewer") || "";
$("reviewer").addEventListener("change", () => localStorage.setItem("tagger-reviewer", $("reviewer").value));
$("tagger").addEventListener("change", () => { showInfo(); $("review").hidden = true; });
$("tag-button").addEventListener("click", tagNames);
$("tag-file-button").addEventListener("click", tagFile);
$("review-tagged").addEventListener("click", reviewTagged);
$("review-file-button").addEventListener("click", reviewFile);
$("save").addEventListener("click", save);
$("skip").addEventListener("click", () => move(1));
$("back").addEventListener("click", () => move(-1));
document.addEventListener("keydown", (event) => {
  if ($("review").hidden || ["TEXTAREA", "INPUT", "SELECT"].includes(event.target.tagName) &&
      event.target.type !== "checkbox") return;
  if (event.key === "Enter") { event.preventDefault(); save(); }
  if (event.key === "ArrowRight") move(1);
  if (event.key === "ArrowLeft") move(-1);
});
loadTaggers();
