"""The web page at ``/``: paste or pick a dialogue, choose the adapter (filled from
``GET /v1/adapters``; the base model by default), beams and length, read the summary, its
latency and the model's facts. Plain HTML and a little JavaScript, no build step."""

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>dialogsum</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font-family:system-ui,sans-serif;max-width:60em;margin:2em auto;padding:0 1em;color:#222}
textarea{width:100%;height:14em;font:inherit;padding:.5em;box-sizing:border-box}
label{margin-right:1em}select,input,button{font:inherit}
button{padding:.4em 1.2em;background:#2d6cdf;color:#fff;border:0;border-radius:4px;cursor:pointer}
#summary{background:#f3f6fb;border-left:4px solid #2d6cdf;padding:.8em;min-height:1.5em;
white-space:pre-wrap}#error{color:#b00020}#facts{font-size:.9em;color:#555}
table{border-collapse:collapse}td{padding:.1em .8em .1em 0;vertical-align:top}
</style></head><body>
<h1>dialogsum</h1>
<p id="facts">Loading the model card...</p>
<p><label>Sample <select id="sample"><option value="">(paste your own)</option></select></label></p>
<textarea id="dialogue" placeholder="#Person1#: ...&#10;#Person2#: ..."></textarea>
<p><label>Adapter <select id="adapter"><option value="">base model</option></select></label>
<label>Beams <select id="beams"><option>1</option><option>2</option><option selected>4</option>
<option>8</option></select></label>
<label>Max new tokens <input id="length" type="number" min="1" max="512" value="64"></label>
<button id="go">Summarize</button></p>
<p id="keyrow" hidden><label>API key <input id="key" type="password" autocomplete="off"></label>
<button id="usekey">Use key</button> <span id="keynote">This server needs its API key.</span></p>
<h2>Summary</h2><div id="summary"></div><p id="latency"></p><p id="error"></p>
<script>
const $ = (id) => document.getElementById(id);
// A server started with an API key answers 401 without it: the page then asks for the key
// and sends it as X-API-Key (kept for this tab only).
async function api(path, options = {}) {
  const headers = {...(options.headers || {})};
  const key = sessionStorage.getItem("dialogsum-key");
  if (key) headers["X-API-Key"] = key;
  const response = await fetch(path, {...options, headers});
  if (response.status === 401) $("keyrow").hidden = false;
  return response;
}
async function loadCard() {
  const response = await api("v1/model");
  if (!response.ok) { $("facts").textContent = "The model card needs the API key."; return; }
  const m = await response.json();
  const rows = [["model", m.source], ["backend", m.backend], ["method", m.method || "base"],
    ["base model", m.base_model || "-"], ["quantization", m.quantize || "none"],
    ["decoding defaults", JSON.stringify(m.generation_defaults)]];
  $("facts").innerHTML = "<table>" + rows.map(([k, v]) =>
    `<tr><td>${k}</td><td>${String(v).replace(/</g, "&lt;")}</td></tr>`).join("") + "</table>";
}
async function loadAdapters() {
  const response = await api("v1/adapters");
  if (!response.ok) return;
  const listed = await response.json();
  const chosen = $("adapter").value;
  $("adapter").length = 1;
  listed.adapters.forEach((a) => { const o = document.createElement("option");
    o.value = a.name; o.textContent = `${a.name} (${a.method})`; $("adapter").appendChild(o); });
  $("adapter").value = listed.adapters.some((a) => a.name === chosen) ? chosen : "";
}
let samples = [];
async function loadSamples() {
  const response = await api("v1/samples");
  if (!response.ok) return;
  samples = await response.json();
  $("sample").length = 1;
  samples.forEach((s, i) => { const o = document.createElement("option");
    o.value = i; o.textContent = s.id; $("sample").appendChild(o); });
}
$("sample").onchange = () => { const i = $("sample").value;
  if (i !== "") $("dialogue").value = samples[i].dialogue; };
$("usekey").onclick = () => {
  sessionStorage.setItem("dialogsum-key", $("key").value);
  $("keyrow").hidden = true; $("error").textContent = ""; loadCard(); loadSamples();
  loadAdapters();
};
loadCard(); loadSamples(); loadAdapters();
$("go").onclick = async () => {
  $("error").textContent = ""; $("summary").textContent = "..."; const started = performance.now();
  const body = {inputs: $("dialogue").value, parameters: {generate_parameters:
    {num_beams: Number($("beams").value), max_new_tokens: Number($("length").value)}}};
  // The base model unless an adapter is picked (parameters.adapter is dialogsum's own).
  if ($("adapter").value) body.parameters.adapter = $("adapter").value;
  const response = await api("v1/summarize", {method: "POST",
    headers: {"Content-Type": "application/json"}, body: JSON.stringify(body)});
  const result = await response.json();
  const ms = Math.round(performance.now() - started);
  if (!response.ok) {
    $("summary").textContent = ""; $("error").textContent = result.error; return;
  }
  $("summary").textContent = result[0].summary_text;
  $("latency").textContent = `${ms} ms`;
};
</script></body></html>
"""
