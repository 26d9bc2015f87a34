"""The web page at ``/``: paste or pick a dialogue, choose beams and length, read the summary,
its latency and the model's facts. Plain HTML and a little JavaScript, no build step."""

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
<p><label>Beams <select id="beams"><option>1</option><option>2</option><option selected>4</option>
<option>8</option></select></label>
<label>Max new tokens <input id="length" type="number" min="1" max="512" value="64"></label>
<button id="go">Summarize</button></p>
<h2>Summary</h2><div id="summary"></div><p id="latency"></p><p id="error"></p>
<script>
const $ = (id) => document.getElementById(id);
fetch("v1/model").then((r) => r.json()).then((m) => {
  const rows = [["model", m.source], ["backend", m.backend], ["method", m.method || "base"],
    ["base model", m.base_model || "-"], ["quantization", m.quantize || "none"],
    ["decoding defaults", JSON.stringify(m.generation_defaults)]];
  $("facts").innerHTML = "<table>" + rows.map(([k, v]) =>
    `<tr><td>${k}</td><td>${String(v).replace(/</g, "&lt;")}</td></tr>`).join("") + "</table>";
});
fetch("v1/samples").then((r) => r.json()).then((samples) => {
  samples.forEach((s, i) => { const o = document.createElement("option");
    o.value = i; o.textContent = s.id; $("sample").appendChild(o); });
  $("sample").onchange = () => { const i = $("sample").value;
    if (i !== "") $("dialogue").value = samples[i].dialogue; };
});
$("go").onclick = async () => {
  $("error").textContent = ""; $("summary").textContent = "..."; const started = performance.now();
  const body = {inputs: $("dialogue").value, parameters: {generate_parameters:
    {num_beams: Number($("beams").value), max_new_tokens: Number($("length").value)}}};
  const response = await fetch("v1/summarize", {method: "POST",
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
