// `wgbench suite --quick` in headless Chromium: the page's WebGPU (SwiftShader without a GPU)
// runs the suite's entries (wasm/src/suite.rs) and this script writes the JSON record that
// `wgbench report` merges with the native ones, its header filled in from this machine.
//
//   node wasm/tests/suite.mjs OUT.json        (after wasm/build.sh)

import { execSync } from 'node:child_process';
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { serve, WWW } from '../serve.mjs';
import { launch, waitForStatus } from './chromium.mjs';

const here = fileURLToPath(new URL('.', import.meta.url));
const repo = resolve(here, '../..');
const out = process.argv[2];
if (!out) {
  console.error('usage: node wasm/tests/suite.mjs OUT.json');
  process.exit(2);
}
if (!existsSync(join(WWW, 'pkg/wgtrain_web.js'))) {
  console.error('the demo package is missing: run wasm/build.sh');
  process.exit(2);
}
const lock = readFileSync(join(repo, 'Cargo.lock'), 'utf8');
const wgpuVersion = (lock.match(/name = "wgpu"\nversion = "([^"]+)"/) || [])[1] || 'unknown';
const sh = (cmd) => { try { return execSync(cmd, { cwd: repo, encoding: 'utf8' }).trim(); } catch { return ''; } };
let commit = sh('git rev-parse --short=12 HEAD') || 'unknown';
if (commit !== 'unknown' && sh('git status --porcelain --untracked-files=no')) commit += '-dirty';

const server = await serve(WWW, 0);
const browser = await launch();
let code = 0;
try {
  const page = await browser.newPage();
  page.on('console', (m) => { if (m.type() === 'error') console.error('console:', m.text().slice(0, 300)); });
  await page.goto(`http://127.0.0.1:${server.address().port}/`);
  const s = await waitForStatus(page, ['ready', 'error'], 60_000);
  if (s.status === 'error') throw new Error(s.error);
  const started = Date.now();
  const json = await page.evaluate(async () => {
    const m = await import('./pkg/wgtrain_web.js');
    const text = await (await fetch('sample.txt')).text();
    const demo = await m.Demo.open();
    return await demo.suite(text);
  });
  const record = JSON.parse(json);
  const ua = await page.evaluate(() => navigator.userAgent);
  if (!record.adapter.name) {
    // Chromium may give wgpu an empty name: take the adapter's own info.
    record.adapter.name = await page.evaluate(async () => {
      const i = (await navigator.gpu.requestAdapter())?.info;
      return i ? [i.vendor, i.architecture, i.description].filter(Boolean).join(' ') : '';
    }) || 'unknown';
  }
  record.host = { cpu: os.cpus()[0]?.model || 'unknown', cores: os.cpus().length, os: `${os.type()} ${os.release()}, ${ua}` };
  record.commit = commit;
  record.wgpu_version = wgpuVersion;
  record.date = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
  record.command = `node wasm/tests/suite.mjs ${out}`;
  writeFileSync(out + '.tmp', JSON.stringify(record, null, 2) + '\n');
  renameSync(out + '.tmp', out);
  const skipped = record.entries.filter((e) => e.skipped);
  console.log(`browser suite: ${record.entries.length} entries (${skipped.length} skipped) on ` +
    `${record.adapter.name} (${record.adapter.backend}) in ${((Date.now() - started) / 1000).toFixed(0)} s; record ${out}`);
  for (const e of skipped) console.log(`  skipped: ${e.family} | ${e.name}: ${e.skipped}`);
} catch (e) {
  console.error('browser suite failed:', e.message);
  code = 1;
} finally {
  await browser.close();
  server.close();
}
process.exit(code);
