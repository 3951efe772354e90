// Headless Chromium for the demo's browser test and benchmark: Debian's chromium (or
// $CHROMIUM) with WebGPU on (its SwiftShader where there is no GPU), and a wait for the page's
// status (window.wgtrainDemo.status, set by www/demo.js).

import { chromium } from 'playwright-core';

export const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';

/** Launch headless Chromium, with WebGPU unless `webgpu` is false (GPU off entirely). */
export function launch({ webgpu = true } = {}) {
  const args = ['--headless=new', '--no-sandbox', webgpu ? '--enable-unsafe-webgpu' : '--disable-gpu'];
  return chromium.launch({ executablePath, args });
}

/** Wait until the page's status is one of `statuses`; resolves to the page's demo state. */
export async function waitForStatus(page, statuses, timeout) {
  await page.waitForFunction((s) => s.includes(window.wgtrainDemo?.status), statuses, { timeout });
  return page.evaluate(() => window.wgtrainDemo);
}
