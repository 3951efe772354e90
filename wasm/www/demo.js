// The demo page: wires the form to the wgtrain WebGPU session (pkg/, built by wasm/build.sh).
// Training runs in short chunks of steps; between chunks the page yields to the event loop,
// so charts update and buttons respond while the GPU works.
//
// window.wgtrainDemo exposes the page's state for tests (see wasm/tests/browser.mjs).

import init, { Demo, defaultOptions } from './pkg/wgtrain_web.js';

const $ = (id) => document.getElementById(id);
const state = {
  adapter: null,
  summary: null,
  points: [],      // {step, loss, grad_norm, lr, reset}
  heldout: [],     // {step, loss}
  metrics: [],     // {step, matrix, per, condition_number, spectral}
  resets: [],
  stepsPerSec: null,
  tokensPerSec: null,
  timedSteps: 0,
  timedSeconds: 0,
  status: 'idle',
  error: null,
  lastSample: null,
};
window.wgtrainDemo = state;

let demo = null;
let running = false;
let queue = Promise.resolve();
// One wgtrain operation at a time, in call order.
const exclusive = (op) => (queue = queue.then(op, op));

function setStatus(s, detail) {
  state.status = s;
  const el = $('status');
  el.dataset.state = s;
  el.textContent = detail ? `${s}: ${detail}` : s;
}

function fail(e) {
  const msg = e && e.message ? e.message : String(e);
  state.error = msg;
  running = false;
  setStatus('error', msg);
  console.error(e);
  updateButtons();
}

// ---- text sources ----------------------------------------------------------------------

let sampleText = '';
let fileText = '';

function source() {
  return document.querySelector('input[name=source]:checked').value;
}

function currentText() {
  const s = source();
  if (s === 'sample') return sampleText;
  if (s === 'file') return fileText;
  return $('text').value;
}

function showText() {
  const s = source();
  const ta = $('text');
  ta.readOnly = s !== 'paste';
  if (s === 'sample') ta.value = sampleText;
  if (s === 'file') ta.value = fileText.slice(0, 20000) + (fileText.length > 20000 ? '\n…' : '');
  const bytes = new TextEncoder().encode(currentText()).length;
  $('text-info').textContent = `${bytes.toLocaleString()} bytes = ${bytes.toLocaleString()} tokens` +
    (bytes > 0 ? ' (the last tenth is held out for evaluation)' : '');
}

// ---- options ---------------------------------------------------------------------------

function options() {
  const num = (id) => Number($(id).value);
  return {
    d_model: num('dmodel'),
    n_layers: num('layers'),
    seq: num('seq'),
    batch: num('batch'),
    lr: num('lr'),
    steps: num('steps'),
    relora: $('mode').value === 'relora',
    relora_r: num('rank'),
    relora_reset_every: num('reset'),
  };
}

function showMode() {
  const relora = $('mode').value === 'relora';
  document.querySelectorAll('.relora-only').forEach((el) => { el.hidden = !relora; });
}

// ---- session ---------------------------------------------------------------------------

let settingsChanged = false;

function startSession() {
  settingsChanged = false;
  const summary = JSON.parse(demo.start(currentText(), JSON.stringify(options())));
  state.summary = summary;
  state.points = [];
  state.heldout = [];
  state.metrics = [];
  state.resets = [];
  state.timedSteps = 0;
  state.timedSeconds = 0;
  state.stepsPerSec = state.tokensPerSec = null;
  const m = (n) => (n / 1e6).toFixed(n < 1e6 ? 3 : 2) + ' M';
  $('stat-params').textContent = summary.options.relora
    ? `${m(summary.trainable_params)} trained of ${m(summary.total_params)}`
    : m(summary.total_params);
  const sel = $('matrix');
  const previous = sel.value;
  sel.innerHTML = '';
  for (let i = 0; i < summary.config.n_layers; i++) {
    for (const name of [`layers.${i}.swiglu.w_2.weight`, `layers.${i}.ov_circuit.weights.head_mean`,
      `layers.${i}.attention.q_proj.weight`, `layers.${i}.swiglu.w_0.weight`]) {
      sel.add(new Option(name, name));
    }
  }
  if ([...sel.options].some((o) => o.value === previous)) sel.value = previous;
  for (const id of ['stat-step', 'stat-loss', 'stat-heldout', 'stat-tps', 'stat-sps', 'stat-lr',
    'stat-per', 'stat-cond', 'stat-spec']) {
    $(id).textContent = id === 'stat-step' ? '0' : '–';
  }
  $('sample-out').textContent = '';
  state.lastSample = null;
  drawLoss();
  drawPer();
}

function step() {
  return state.points.length ? state.points[state.points.length - 1].step : 0;
}

async function measureHeldout() {
  const loss = JSON.parse(await demo.heldoutLoss());
  if (loss !== null) {
    state.heldout.push({ step: step(), loss });
    $('stat-heldout').textContent = loss.toFixed(3);
  }
}

async function measureMatrix() {
  const matrix = $('matrix').value;
  const m = JSON.parse(await demo.metrics(matrix));
  state.metrics.push({ step: step(), matrix, ...m });
  const f = (x) => (x === null || x === undefined ? 'n/a' : Number(x).toPrecision(4));
  $('stat-per').textContent = f(m.per);
  $('stat-cond').textContent = f(m.condition_number);
  $('stat-spec').textContent = f(m.spectral);
  drawPer();
}

async function train() {
  if (running) return;
  running = true;
  updateButtons();
  const target = Number($('steps').value);
  try {
    // New text or model settings need a new model; more steps only continue the old one.
    if (!state.summary || settingsChanged) startSession();
    setStatus('training');
    let chunk = 1;
    const tokensPerStep = state.summary.tokens_per_step;
    const every = () => Math.max(1, Number($('metrics-every').value));
    if (state.points.length === 0) {
      await exclusive(measureMatrix);
      await exclusive(measureHeldout);
    }
    while (running && step() < target) {
      const n = Math.min(chunk, target - step());
      const t0 = performance.now();
      const pts = JSON.parse(await exclusive(() => demo.train(n)));
      const seconds = (performance.now() - t0) / 1000;
      // The first chunk compiles the pipelines; leave it out of the speed figures.
      if (step() > 0) {
        state.timedSteps += n;
        state.timedSeconds += seconds;
        state.stepsPerSec = state.timedSteps / state.timedSeconds;
        state.tokensPerSec = state.stepsPerSec * tokensPerStep;
        $('stat-sps').textContent = state.stepsPerSec.toFixed(2);
        $('stat-tps').textContent = Math.round(state.tokensPerSec).toLocaleString();
      }
      for (const p of pts) {
        state.points.push(p);
        if (p.reset) state.resets.push(p.step);
      }
      const last = pts[pts.length - 1];
      $('stat-step').textContent = `${last.step} / ${target}`;
      $('stat-loss').textContent = last.loss.toFixed(3);
      $('stat-lr').textContent = last.lr.toExponential(2);
      const before = step() - n;
      if (Math.floor(step() / every()) > Math.floor(before / every()) || step() === target) {
        await exclusive(measureMatrix);
        await exclusive(measureHeldout);
      }
      drawLoss();
      // Aim for about a tenth of a second per chunk so the page stays responsive.
      chunk = Math.max(1, Math.min(25, Math.round(0.1 / Math.max(seconds / n, 1e-4))));
      await new Promise((r) => setTimeout(r, 0));
    }
    running = false;
    setStatus(step() >= target ? 'done' : 'paused', `${step()} steps`);
  } catch (e) {
    fail(e);
  }
  updateButtons();
}

function updateButtons() {
  const ready = demo !== null;
  $('train').disabled = !ready || running;
  $('pause').disabled = !running;
  $('restart').disabled = !ready || running;
  $('generate').disabled = !ready || !state.summary;
  $('measure').disabled = !ready || !state.summary;
  $('download').disabled = !ready || !state.summary;
}

// ---- charts ------------------------------------------------------------------------------

function axes(ctx, w, h, pad, xmax, ymin, ymax, ylabel) {
  ctx.clearRect(0, 0, w, h);
  ctx.fillStyle = '#fff';
  ctx.fillRect(0, 0, w, h);
  ctx.strokeStyle = '#888';
  ctx.lineWidth = 1;
  ctx.beginPath();
  ctx.moveTo(pad, 10);
  ctx.lineTo(pad, h - pad);
  ctx.lineTo(w - 10, h - pad);
  ctx.stroke();
  ctx.fillStyle = '#333';
  ctx.font = '12px sans-serif';
  for (let i = 0; i <= 4; i++) {
    const v = ymin + ((ymax - ymin) * i) / 4;
    const y = h - pad - ((h - pad - 10) * i) / 4;
    ctx.fillText(v.toFixed(2), 4, y + 4);
  }
  ctx.fillText('step ' + xmax, w - 70, h - 8);
  ctx.fillText(ylabel, pad + 6, 22);
  const x = (s) => pad + ((w - pad - 10) * s) / Math.max(1, xmax);
  const y = (v) => h - pad - ((h - pad - 10) * (v - ymin)) / Math.max(1e-9, ymax - ymin);
  return { x, y };
}

function drawLoss() {
  const c = $('loss-chart');
  const ctx = c.getContext('2d');
  const pts = state.points;
  const xmax = Math.max(Number($('steps').value), step());
  const all = pts.map((p) => p.loss).concat(state.heldout.map((p) => p.loss));
  const ymax = all.length ? Math.max(...all) * 1.05 : 6;
  const ymin = all.length ? Math.max(0, Math.min(...all) * 0.9) : 0;
  const { x, y } = axes(ctx, c.width, c.height, 40, xmax, ymin, ymax, 'loss (nats/byte)');
  ctx.setLineDash([5, 4]);
  ctx.strokeStyle = '#d0731d';
  for (const r of state.resets) {
    ctx.beginPath();
    ctx.moveTo(x(r), 10);
    ctx.lineTo(x(r), c.height - 40);
    ctx.stroke();
  }
  ctx.setLineDash([]);
  ctx.strokeStyle = '#1f5fa8';
  ctx.lineWidth = 1.5;
  ctx.beginPath();
  pts.forEach((p, i) => (i ? ctx.lineTo(x(p.step), y(p.loss)) : ctx.moveTo(x(p.step), y(p.loss))));
  ctx.stroke();
  ctx.fillStyle = '#2a9d4b';
  for (const h of state.heldout) {
    ctx.beginPath();
    ctx.arc(x(h.step), y(h.loss), 4, 0, 2 * Math.PI);
    ctx.fill();
  }
}

function drawPer() {
  const c = $('per-chart');
  const ctx = c.getContext('2d');
  const matrix = $('matrix').value;
  const pts = state.metrics.filter((m) => m.matrix === matrix && m.per !== null);
  const xmax = Math.max(Number($('steps').value), step());
  const vals = pts.map((p) => p.per);
  const ymin = vals.length ? Math.min(...vals) * 0.98 : 0;
  const ymax = vals.length ? Math.min(1, Math.max(...vals) * 1.02) : 1;
  const { x, y } = axes(ctx, c.width, c.height, 40, xmax, ymin, ymax, `PER of ${matrix}`);
  ctx.strokeStyle = '#7b3fa0';
  ctx.fillStyle = '#7b3fa0';
  ctx.beginPath();
  pts.forEach((p, i) => (i ? ctx.lineTo(x(p.step), y(p.per)) : ctx.moveTo(x(p.step), y(p.per))));
  ctx.stroke();
  for (const p of pts) {
    ctx.beginPath();
    ctx.arc(x(p.step), y(p.per), 3, 0, 2 * Math.PI);
    ctx.fill();
  }
}

// ---- start-up ------------------------------------------------------------------------------

async function main() {
  await init();
  document.querySelectorAll('input[name=source]').forEach((r) => r.addEventListener('change', showText));
  $('text').addEventListener('input', () => { settingsChanged = true; showText(); });
  $('file').addEventListener('change', async () => {
    const f = $('file').files[0];
    if (!f) return;
    fileText = await f.text();
    document.querySelector('input[name=source][value=file]').checked = true;
    showText();
  });
  $('mode').addEventListener('change', showMode);
  const defaults = JSON.parse(defaultOptions());
  for (const [id, key] of [['dmodel', 'd_model'], ['layers', 'n_layers'], ['seq', 'seq'], ['batch', 'batch'],
    ['lr', 'lr'], ['steps', 'steps'], ['rank', 'relora_r'], ['reset', 'relora_reset_every']]) {
    $(id).value = defaults[key];
  }
  for (const el of document.querySelectorAll('#setup input, #setup select, #setup textarea')) {
    if (el.id !== 'steps') el.addEventListener('change', () => { settingsChanged = true; });
  }
  showMode();
  sampleText = await (await fetch('sample.txt')).text();
  showText();
  drawLoss();
  drawPer();

  const adapterEl = $('adapter');
  if (!('gpu' in navigator)) {
    adapterEl.dataset.state = 'missing';
    adapterEl.innerHTML = '<b>This browser has no WebGPU.</b> Use a recent Chrome or Edge ' +
      '(on Linux start it with <code>--enable-unsafe-webgpu</code>, or enable ' +
      '<code>chrome://flags/#enable-unsafe-webgpu</code>), Safari 26 or later, or Firefox 141 ' +
      'or later on Windows; and check that hardware acceleration is on.';
    setStatus('error', 'no WebGPU');
    return;
  }
  try {
    demo = await Demo.open();
  } catch (e) {
    adapterEl.dataset.state = 'missing';
    adapterEl.textContent = String(e && e.message ? e.message : e);
    fail(e);
    return;
  }
  const a = JSON.parse(demo.adapter());
  state.adapter = a;
  adapterEl.dataset.state = 'ready';
  adapterEl.textContent = `WebGPU adapter: ${a.name || '(name withheld by the browser)'} · ${a.device_type}` +
    `${a.software ? ' (software renderer: expect it to be slow)' : ''} · driver ${a.driver || '?'} ` +
    `${a.driver_info || ''} · max storage binding ${a.max_storage_binding_mib.toFixed(0)} MiB`;

  $('train').addEventListener('click', train);
  $('pause').addEventListener('click', () => { running = false; });
  $('restart').addEventListener('click', () => {
    try {
      startSession();
      setStatus('idle', 'new model');
    } catch (e) {
      fail(e);
    }
    updateButtons();
  });
  $('measure').addEventListener('click', () => exclusive(measureMatrix).catch(fail));
  $('matrix').addEventListener('change', drawPer);
  $('generate').addEventListener('click', () => exclusive(async () => {
    const out = $('sample-out');
    out.textContent = '…';
    const prompt = $('prompt').value;
    const t0 = performance.now();
    const text = await demo.generate(prompt, Number($('length').value), Number($('temperature').value),
      Number($('topk').value), Math.floor(Math.random() * 2 ** 31));
    state.lastSample = text;
    const s = ((performance.now() - t0) / 1000).toFixed(1);
    out.textContent = '';
    const b = document.createElement('b');
    b.textContent = prompt;
    out.append(b, text, document.createTextNode(`\n\n(${s} s)`));
  }).catch(fail));
  $('download').addEventListener('click', () => exclusive(async () => {
    const bytes = await demo.checkpoint('wgtrain-demo');
    const url = URL.createObjectURL(new Blob([bytes], { type: 'application/x-tar' }));
    const link = document.createElement('a');
    link.href = url;
    link.download = 'wgtrain-demo.tar';
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
  }).catch(fail));
  try {
    startSession();
  } catch (e) {
    fail(e);
  }
  updateButtons();
  setStatus('ready');
}

main().catch(fail);
