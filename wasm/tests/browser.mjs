// The demo in a real browser: headless Chromium (WebGPU on its SwiftShader) loads the page
// from a local static server, trains a small model through the page's own controls, checks
// that the loss fell, that generation returns text and that ReLoRA's resets come on
// schedule, saves screenshots, downloads the checkpoint and reads it with the wgtrain CLI.
//
//   node wasm/tests/browser.mjs            (after wasm/build.sh and cargo build --release)
//
// Environment: CHROMIUM (default /usr/bin/chromium), WGTRAIN_BIN (default
// target/release/wgtrain), DEMO_STEPS (plain steps, default 40), DEMO_RELORA_STEPS (ReLoRA
// steps, resets every 10, default 30). Output in wasm/tests/out/.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { serve, WWW } from '../serve.mjs';
import { executablePath, launch, waitForStatus } from './chromium.mjs';

const here = fileURLToPath(new URL('.', import.meta.url));
const repo = resolve(here, '../..');
const out = join(here, 'out');
const steps = Number(process.env.DEMO_STEPS || 40);
const reloraSteps = Number(process.env.DEMO_RELORA_STEPS || 30);
const wgtrain = resolve(repo, process.env.WGTRAIN_BIN || 'target/release/wgtrain');
const wgbench = join(wgtrain, '..', 'wgbench');

for (const [what, path, fix] of [
  ['the demo package', join(WWW, 'pkg/wgtrain_web.js'), 'run wasm/build.sh'],
  ['Chromium', executablePath, 'apt-get install chromium, or set CHROMIUM'],
  ['the wgtrain CLI', wgtrain, 'run cargo build --release, or set WGTRAIN_BIN'],
  ['wgbench', wgbench, 'run cargo build --release'],
]) {
  if (!existsSync(path)) {
    console.error(`browser test: ${what} is missing (${path}): ${fix}`);
    process.exit(2);
  }
}

rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });
const log = (...a) => console.log('[browser test]', ...a);
const run = (args, opts = {}) => {
  const r = spawnSync(args[0], args.slice(1), { encoding: 'utf8', ...opts });
  assert.equal(r.status, 0, `${args.join(' ')} failed:\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
};
const mean = (xs) => xs.reduce((a, b) => a + b, 0) / xs.length;

const server = await serve(WWW, 0);
const url = `http://127.0.0.1:${server.address().port}/`;
const browser = await launch();
const pageErrors = [];
let failed = false;
let page = null;
try {
  page = await browser.newPage({ viewport: { width: 1100, height: 900 }, acceptDownloads: true });
  page.on('pageerror', (e) => pageErrors.push(e.message));
  page.on('console', (m) => { if (m.type() === 'error') log('console error:', m.text().slice(0, 400)); });
  const demoState = () => page.evaluate(() => window.wgtrainDemo);
  const waitStatus = async (statuses, timeout) => {
    const s = await waitForStatus(page, statuses, timeout);
    assert.notEqual(s.status, 'error', `the page reported an error: ${s.error}`);
    return s;
  };

  await page.goto(url);
  let s = await waitStatus(['ready', 'error'], 60_000);
  log('adapter:', JSON.stringify(s.adapter));
  assert.equal(s.adapter.backend, 'webgpu');

  // Plain training, small enough for a software renderer on two cores.
  await page.selectOption('#dmodel', '32');
  await page.fill('#batch', '4');
  await page.fill('#seq', '32');
  await page.fill('#steps', String(steps));
  await page.fill('#metrics-every', '20');
  await page.dispatchEvent('#seq', 'change');
  await page.click('#train');
  // The page answers while it trains: time a round trip into its event loop a few times.
  const lags = [];
  while (lags.length < 5 && (await demoState()).status === 'training') {
    const t0 = Date.now();
    await page.evaluate(() => new Promise((r) => setTimeout(r, 0)));
    lags.push(Date.now() - t0);
    await new Promise((r) => setTimeout(r, 500));
  }
  log('event-loop round trips while training (ms):', lags.join(', '));
  assert.ok(lags.length > 0 && Math.max(...lags) < 5000, `the page froze while training: ${lags}`);
  s = await waitStatus(['done', 'error'], 600_000);
  const losses = s.points.map((p) => p.loss);
  assert.equal(losses.length, steps);
  assert.ok(losses.every(Number.isFinite), 'every loss is finite');
  const first = losses[0];
  const last = mean(losses.slice(-5));
  log(`plain: loss ${first.toFixed(3)} -> ${last.toFixed(3)} over ${steps} steps; ` +
    `${s.stepsPerSec.toFixed(2)} steps/s, ${Math.round(s.tokensPerSec)} tokens/s`);
  assert.ok(Math.abs(first - Math.log(320)) < 0.6, `first loss ${first} should be near ln 320`);
  assert.ok(last < 0.75 * first, `loss should fall: ${first} -> ${last}`);
  assert.ok(s.heldout.length >= 2 && s.heldout.at(-1).loss < s.heldout[0].loss - 1,
    `held-out loss should fall: ${JSON.stringify(s.heldout)}`);
  assert.ok(s.metrics.length >= 2 && s.metrics.every((m) => m.per > 0 && m.per <= 1 && m.condition_number >= 1),
    `PER and condition number: ${JSON.stringify(s.metrics.map((m) => [m.per, m.condition_number]))}`);
  const plainSpeed = { stepsPerSec: s.stepsPerSec, tokensPerSec: s.tokensPerSec };
  // The same session natively (wgbench demo, the default adapter) reaches the same loss:
  // same seed, batches and schedule; only the two adapters' rounding differs.
  const native = run([wgbench, 'demo', '--d-model', '32', '--batch', '4', '--seq', '32', '--steps', String(steps - 1)]);
  const nativeLoss = Number((native.match(/loss ([0-9.]+) after (\d+) steps/) || [])[1]);
  log(`native: ${native.trim().split("\n").at(-1)}; browser: loss ${losses.at(-1).toFixed(3)} after ${steps} steps`);
  assert.ok(Math.abs(nativeLoss - losses.at(-1)) < 0.02 * losses.at(-1),
    `browser loss ${losses.at(-1)} at step ${steps} should match the native ${nativeLoss}`);

  // Generation from the trained model.
  await page.fill('#prompt', 'The keeper');
  await page.fill('#length', '80');
  await page.click('#generate');
  await page.waitForFunction(() => window.wgtrainDemo.lastSample !== null || window.wgtrainDemo.status === 'error',
    null, { timeout: 120_000 });
  s = await demoState();
  assert.ok(s.lastSample && s.lastSample.trim().length > 0, `generation returned ${JSON.stringify(s.lastSample)}`);
  log('generated:', JSON.stringify(s.lastSample.slice(0, 80)));
  await page.screenshot({ path: join(out, 'demo.png'), fullPage: true });

  // The checkpoint, downloaded as the user would.
  const [download] = await Promise.all([page.waitForEvent('download', { timeout: 60_000 }), page.click('#download')]);
  assert.equal(download.suggestedFilename(), 'wgtrain-demo.tar');
  const tar = join(out, 'wgtrain-demo.tar');
  await download.saveAs(tar);

  // ReLoRA: a new model, resets every 10 steps, marked on the chart.
  await page.selectOption('#mode', 'relora');
  await page.fill('#rank', '4');
  await page.fill('#reset', '10');
  await page.dispatchEvent('#reset', 'change');
  await page.fill('#steps', String(reloraSteps));
  await page.click('#train');
  s = await waitStatus(['done', 'error'], 600_000);
  assert.equal(s.summary.options.relora, true);
  assert.ok(s.summary.trainable_params < s.summary.total_params);
  const expected = [];
  for (let t = 11; t <= reloraSteps; t += 10) expected.push(t);
  assert.deepEqual(s.resets, expected, 'merge-and-reset at steps 11, 21, ...');
  const rl = s.points.map((p) => p.loss);
  assert.equal(rl.length, reloraSteps);
  assert.ok(mean(rl.slice(-5)) < 0.9 * rl[0], `ReLoRA loss should fall: ${rl[0]} -> ${mean(rl.slice(-5))}`);
  log(`relora: loss ${rl[0].toFixed(3)} -> ${mean(rl.slice(-5)).toFixed(3)}, resets at ${s.resets}`);
  // Sampling from the ReLoRA model goes through the merged W + s·B·A.
  await page.click('#generate');
  await page.waitForFunction(() => window.wgtrainDemo.lastSample !== null || window.wgtrainDemo.status === 'error',
    null, { timeout: 120_000 });
  s = await demoState();
  assert.ok(s.lastSample && s.lastSample.trim().length > 0, `ReLoRA generation returned ${JSON.stringify(s.lastSample)}`);
  await page.screenshot({ path: join(out, 'demo-relora.png'), fullPage: true });

  // A text from a file replaces the sample (the file chooser, as a user would use it).
  const book = resolve(repo, '../shared/data/tinyshakespeare/input.txt');
  assert.ok(existsSync(book), `${book} is missing: the tests read ../shared/data`);
  await page.setInputFiles('#file', book);
  await page.waitForFunction(() => document.getElementById('text').value.startsWith('First Citizen'), null,
    { timeout: 30_000 });
  const info = await page.textContent('#text-info');
  assert.match(info, /1\D?115\D?394 bytes/, `file source: ${info}`);
  log('file source:', info);

  assert.deepEqual(pageErrors, [], 'no uncaught errors in the page');

  // The downloaded checkpoint in the CLI.
  run(['tar', 'xf', tar], { cwd: out });
  const ckpt = join(out, 'wgtrain-demo');
  const evalOut = run([wgtrain, 'eval', '--checkpoint', ckpt, '--text', join(WWW, 'sample.txt')]);
  const ppl = Number((evalOut.match(/perplexity ([0-9.]+) \(mean NLL/) || [])[1]);
  log('wgtrain eval:', evalOut.trim().split('\n').at(-1));
  assert.ok(ppl > 1 && ppl < Math.exp(last + 0.5), `wgtrain eval perplexity ${ppl} should match the trained loss ${last}`);
  const genOut = run([wgtrain, 'generate', '--checkpoint', ckpt, '--prompt', 'The sea', '--max-new-tokens', '40']);
  assert.ok(genOut.trim().length > 'The sea'.length, `wgtrain generate printed ${JSON.stringify(genOut)}`);
  log('wgtrain generate:', JSON.stringify(genOut.trim().slice(0, 80)));

  // Without WebGPU the page says what to enable instead of failing silently.
  const bare = await launch({ webgpu: false });
  try {
    const p2 = await bare.newPage();
    await p2.goto(url);
    await waitForStatus(p2, ['ready', 'error'], 60_000);
    const panel = await p2.evaluate(() => [document.getElementById('adapter').dataset.state,
      document.getElementById('adapter').textContent]);
    assert.equal(panel[0], 'missing', 'no adapter without WebGPU');
    assert.match(panel[1], /needs WebGPU|has no WebGPU/);
    log('without WebGPU:', panel[1].slice(0, 100));
  } finally {
    await bare.close();
  }

  const summary = { adapter: s.adapter, plain: { steps, ...plainSpeed, firstLoss: first, lastLoss: last, cliPerplexity: ppl } };
  writeFileSync(join(out, 'summary.json'), JSON.stringify(summary, null, 2) + '\n');
  log(`passed: screenshots and summary in ${out}`);
} catch (e) {
  failed = true;
  console.error('[browser test] FAILED:', e.message);
  if (pageErrors.length) console.error('page errors:', pageErrors);
  if (page) await page.screenshot({ path: join(out, 'failure.png'), fullPage: true }).catch(() => {});
} finally {
  await browser.close();
  server.close();
}
process.exit(failed ? 1 : 0);
