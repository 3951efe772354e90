// A static file server for the demo page (wasm/www), with the MIME types browsers need for
// ES modules and WebAssembly. `node wasm/serve.mjs [port]`; tests import `serve`.
import { createServer } from 'node:http';
import { readFile, stat } from 'node:fs/promises';
import { extname, join, normalize, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const TYPES = {
  '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8', '.css': 'text/css; charset=utf-8',
  '.wasm': 'application/wasm', '.txt': 'text/plain; charset=utf-8', '.json': 'application/json',
  '.png': 'image/png', '.svg': 'image/svg+xml',
};

export const WWW = resolve(fileURLToPath(new URL('./www', import.meta.url)));

/** Serve `root` on `port` (0: any free port); resolves to the listening http.Server. */
export function serve(root = WWW, port = 8080, host = '127.0.0.1') {
  const server = createServer(async (req, res) => {
    try {
      const path = decodeURIComponent(new URL(req.url, 'http://x').pathname);
      let file = normalize(join(root, path));
      if (file !== root && !file.startsWith(root + sep)) throw Object.assign(new Error('outside'), { code: 'EACCES' });
      if ((await stat(file)).isDirectory()) file = join(file, 'index.html');
      const body = await readFile(file);
      res.writeHead(200, { 'content-type': TYPES[extname(file)] || 'application/octet-stream', 'cache-control': 'no-store' });
      res.end(body);
    } catch (e) {
      res.writeHead(e.code === 'EACCES' ? 403 : 404, { 'content-type': 'text/plain' });
      res.end(e.code === 'EACCES' ? 'forbidden\n' : 'not found\n');
    }
  });
  return new Promise((ok, err) => {
    server.once('error', err);
    server.listen(port, host, () => ok(server));
  });
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const port = Number(process.argv[2] || process.env.PORT || 8080);
  serve(WWW, port).then((s) => {
    console.log(`wgtrain demo: http://localhost:${s.address().port}/  (Ctrl-C to stop)`);
    console.log('Needs a browser with WebGPU; on Linux start Chrome/Chromium with --enable-unsafe-webgpu.');
  }, (e) => {
    console.error(`cannot serve on port ${port}: ${e.message} (pass another port: node wasm/serve.mjs 8081)`);
    process.exit(1);
  });
}
