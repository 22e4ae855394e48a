"""The one page of `quickfit serve`: it asks `/info` what the model takes and builds the form for it (an
image upload, the export's columns, a user and an item, a text box, a seed), then shows what `/predict`
answers: the label with a bar per class, a value, or the picture (points drawn, mask overlaid, image made).
No external script or style: it works offline and behind any proxy (every URL is relative)."""

# ruff: noqa: E501 (the page's HTML and script keep their own line lengths)

from __future__ import annotations

import html

__all__ = ["page_html"]


def page_html(title: str) -> str:
    return _PAGE.replace("{{title}}", html.escape(title))


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{title}}</title><link rel="icon" href="data:,">
<style>
 body { font: 16px/1.45 system-ui, sans-serif; max-width: 44rem; margin: 2rem auto; padding: 0 1rem; color: #222; }
 h1 { font-size: 1.4rem; margin-bottom: .2rem; } .sub { color: #666; margin-top: 0; }
 form { display: grid; gap: .6rem; margin: 1.2rem 0; }
 label { display: grid; gap: .2rem; font-size: .9rem; color: #444; }
 input, select, textarea, button { font: inherit; padding: .35rem .5rem; }
 textarea { min-height: 6rem; } button { width: fit-content; padding: .4rem 1.2rem; cursor: pointer; }
 #preview, #output { width: 100%; max-width: 24rem; height: auto; display: block; margin: .5rem 0; }
 #prediction { font-size: 1.5rem; font-weight: 600; margin: .8rem 0 .4rem; }
 .bar { display: grid; grid-template-columns: 9rem 1fr 4rem; gap: .5rem; align-items: center; margin: .15rem 0; }
 .bar span:nth-child(2) { background: #e8e8e8; height: .9rem; border-radius: 3px; overflow: hidden; }
 .bar i { display: block; height: 100%; background: #3b82f6; }
 .error { color: #b91c1c; } .muted { color: #777; font-size: .85rem; }
 .row { display: grid; grid-template-columns: repeat(auto-fill, minmax(12rem, 1fr)); gap: .6rem; }
</style></head>
<body>
<h1>{{title}}</h1><p class="sub" id="about">loading the model's description...</p>
<form id="form"></form>
<div id="result"><p id="prediction"></p><div id="bars"></div><img id="output" alt="" hidden><p id="error" class="error"></p></div>
<p class="muted">JSON API: <a href="info">GET info</a> · POST predict · <a href="health">GET health</a></p>
<script>
const $ = (id) => document.getElementById(id);
const el = (tag, attrs = {}, ...kids) => { const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v); e.append(...kids); return e; };
const fmt = (x) => typeof x === "number" ? (Math.abs(x) >= 1000 ? x.toFixed(1) : x.toPrecision(4)) : String(x);

function field(label, input) { return el("label", {}, label, input); }

function build(info) {
  const form = $("form"), inp = info.input, type = inp.type;
  const what = { image: "an image", row: "a row of " + (inp.columns || []).length + " columns",
                 pair: "a user and an item", text: "a text", seed: "a seed for the noise" }[type];
  $("about").textContent = info.application + " · " + info.kind.replaceAll("_", " ") + " · takes " + what
    + (info.classes && info.classes.length ? " · classes: " + info.classes.slice(0, 12).join(", ")
       + (info.classes.length > 12 ? ", ..." : "") : "");
  if (type === "image") {
    const file = el("input", { type: "file", id: "file", name: "file", accept: "image/*", required: "" });
    const preview = el("img", { id: "preview", alt: "", hidden: "" });
    preview.addEventListener("load", crisp);
    file.addEventListener("change", () => { if (file.files[0]) { preview.src = URL.createObjectURL(file.files[0]); preview.hidden = false; } });
    form.append(field("Image", file), preview);
  } else if (type === "row") {
    const grid = el("div", { class: "row" });
    for (const c of inp.columns) {
      let input;
      if (c.type === "category") {
        input = el("select", { name: c.name, "data-column": c.name });
        for (const v of c.choices) input.append(el("option", { value: v }, v));
      } else {
        input = el("input", { type: "number", step: "any", name: c.name, "data-column": c.name });
        if (c.default !== null && c.default !== undefined) input.value = +c.default.toPrecision(6);
        if (!c.missing_ok) input.required = true;
      }
      grid.append(field(c.name, input));
    }
    form.append(grid);
  } else if (type === "pair") {
    for (const [k, name, ids] of [["user", inp.user_name, inp.users], ["item", inp.item_name, inp.items]]) {
      const list = el("datalist", { id: k + "-ids" }); for (const v of ids) list.append(el("option", { value: v }));
      form.append(field(name + " (" + k + ")", el("input", { id: k, name: k, list: k + "-ids", required: "", value: ids[0] || "" })), list);
    }
  } else if (type === "text") {
    form.append(field(info.kind === "translation" ? "Sentence to translate" : "Text",
                      el("textarea", { id: "text", name: "text", required: "", maxlength: inp.max_chars })));
    if (info.kind === "language_model") {
      form.append(el("div", { class: "row" },
        field("Words to add", el("input", { type: "number", id: "n_words", min: 1, max: inp.max_words, value: inp.n_words })),
        field("Temperature (0: most likely)", el("input", { type: "number", id: "temperature", min: 0, max: 10, step: "any", value: inp.temperature })),
        field("Seed (empty: random)", el("input", { type: "number", id: "seed", min: 0, step: 1 }))));
    }
  } else if (type === "seed") {
    form.append(field("Seed of the noise (empty: random)", el("input", { type: "number", id: "seed", min: 0, step: 1 })));
  }
  form.append(el("button", { type: "submit", id: "submit" }, type === "seed" ? "Generate" : "Predict"));
  form.addEventListener("submit", (ev) => { ev.preventDefault(); send(info); });
}

function body(info) {
  const type = info.input.type, num = (id) => $(id) && $(id).value !== "" ? Number($(id).value) : undefined;
  if (type === "image") { const fd = new FormData(); fd.append("file", $("file").files[0]); return fd; }
  if (type === "row") {
    const row = {};
    for (const e of document.querySelectorAll("[data-column]"))
      row[e.dataset.column] = e.tagName === "SELECT" ? e.value : (e.value === "" ? null : Number(e.value));
    return JSON.stringify({ row });
  }
  if (type === "pair") return JSON.stringify({ user: $("user").value, item: $("item").value });
  if (type === "text") return JSON.stringify({ text: $("text").value, n_words: num("n_words"), temperature: num("temperature"), seed: num("seed") });
  return JSON.stringify({ seed: num("seed") });
}

async function send(info) {
  $("prediction").textContent = ""; $("bars").replaceChildren(); $("error").textContent = ""; $("output").hidden = true;
  $("submit").disabled = true;
  try {
    const b = body(info), headers = typeof b === "string" ? { "Content-Type": "application/json" } : {};
    const r = await fetch("predict", { method: "POST", body: b, headers });
    const out = await r.json();
    if (!r.ok) { $("error").textContent = out.error || ("error " + r.status); return; }
    show(out);
  } catch (e) { $("error").textContent = "request failed: " + e; }
  finally { $("submit").disabled = false; }
}

function show(out) {
  let main = out.prediction;
  if (Array.isArray(main)) main = out.points ? out.points.length + " points" : (main.length ? main.join(", ") : "(none)");
  $("prediction").textContent = out.image && main === "image" ? "" : fmt(main);
  if (out.seed !== undefined) $("prediction").textContent = "seed " + out.seed;
  const probs = out.probabilities || out.shares;
  if (probs) {
    const rows = Object.entries(probs).sort((a, b) => b[1] - a[1]).slice(0, 10);
    for (const [k, p] of rows) {
      const bar = el("i"); bar.style.width = (100 * p).toFixed(1) + "%";
      $("bars").append(el("div", { class: "bar" }, el("span", {}, k), el("span", {}, bar), el("span", {}, (100 * p).toFixed(1) + "%")));
    }
  }
  if (out.image) { $("output").src = out.image; $("output").hidden = false; }
}

// a small picture (a GAN's 28 px digit, a thumbnail) is shown enlarged with its pixels sharp
function crisp(ev) { ev.target.style.imageRendering = ev.target.naturalWidth < 256 ? "pixelated" : "auto"; }
$("output").addEventListener("load", crisp);

fetch("info").then((r) => r.json()).then(build).catch((e) => { $("about").textContent = "cannot read info: " + e; });
</script>
</body></html>
"""
