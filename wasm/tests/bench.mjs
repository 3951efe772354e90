// Steps/s of the demo page in headless Chromium (WebGPU; SwiftShader without a GPU), for the
// same settings `wgbench demo` takes natively:
//
//   node wasm/tests/bench.mjs [--d-model 64] [--layers 2] [--batch 8] [--seq 64] [--steps 30] [--relora]
//
// The page's own figure is used: optimizer steps over the time spent in training calls, the
// first chunk (pipeline compilation) left out, the metrics and held-out passes not counted.

import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { serve, WWW } from '../serve.mjs';
import { launch, waitForStatus } from './chromium.mjs';

const { values: a } = parseArgs({
  options: {
    'd-model': { type: 'string', default: '64' },
    layers: { type: 'string', default: '2' },
    batch: { type: 'string', default: '8' },
    seq: { type: 'string', default: '64' },
    steps: { type: 'string', default: '30' },
    relora: { type: 'boolean', default: false },
  },
});
if (!existsSync(join(WWW, 'pkg/wgtrain_web.js'))) {
  console.error('the demo package is missing: run wasm/build.sh');
  process.exit(2);
}
const server = await serve(WWW, 0);
const browser = await launch();
let code = 0;
try {
  const page = await browser.newPage();
  await page.goto(`http://127.0.0.1:${server.address().port}/`);
  await waitForStatus(page, ['ready', 'error'], 60_000);
  await page.selectOption('#dmodel', a['d-model']);
  await page.selectOption('#layers', a.layers);
  await page.fill('#batch', a.batch);
  await page.fill('#seq', a.seq);
  await page.fill('#steps', String(Number(a.steps) + 1));
  await page.fill('#metrics-every', '100000');
  if (a.relora) await page.selectOption('#mode', 'relora');
  await page.dispatchEvent('#seq', 'change');
  await page.click('#train');
  const s = await waitForStatus(page, ['done', 'error'], 590_000);
  if (s.status === 'error') throw new Error(s.error);
  console.log(`browser ${s.adapter.backend} (${s.adapter.device_type}${s.adapter.software ? ', software' : ''}), ` +
    `demo ${a.relora ? 'ReLoRA' : 'plain'} (d_model ${a['d-model']}, ${a.layers} layers, batch ${a.batch} x ${a.seq} bytes): ` +
    `${s.stepsPerSec.toFixed(2)} steps/s, ${Math.round(s.tokensPerSec)} tokens/s over ${s.timedSteps} timed steps, ` +
    `loss ${s.points.at(-1).loss.toFixed(3)} after ${s.points.length} steps`);
} catch (e) {
  console.error('bench failed:', e.message);
  code = 1;
} finally {
  await browser.close();
  server.close();
}
process.exit(code);
