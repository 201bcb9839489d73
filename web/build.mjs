// Builds the upload page into static files that claimcheck-api serves:
//
//   DIST/index.html          the page (no inline script or style)
//   DIST/assets/app.js       Uppy and the page's code, one ES module
//   DIST/assets/app.css      Uppy's styles and the page's
//
//   node web/build.mjs [--modules DIR] [--out DIST]
//
// --modules: the node_modules holding this package's locked dependencies
// (`npm ci` of web/package-lock.json; default web/node_modules; scripts/lib/
// web.sh installs them into the tools cache instead); --out: default web/dist.
// Takes about a second; nothing is fetched here.

import { copyFile, mkdir, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));

function option(name, fallback) {
  const i = process.argv.indexOf(name);
  return i >= 0 && process.argv[i + 1] ? path.resolve(process.argv[i + 1]) : fallback;
}

const modules = option('--modules', path.join(here, 'node_modules'));
const out = option('--out', path.join(here, 'dist'));

// esbuild from the same node_modules as Uppy, wherever that is.
const require = createRequire(path.join(modules, 'noop.js'));
const esbuild = require('esbuild');

await rm(out, { recursive: true, force: true });
await mkdir(path.join(out, 'assets'), { recursive: true });
await esbuild.build({
  entryPoints: { app: path.join(here, 'src/main.js') },
  outdir: path.join(out, 'assets'),
  bundle: true,
  format: 'esm',
  minify: true,
  // Browsers of the last few years; Uppy 6 needs no more.
  target: ['chrome111', 'firefox111', 'safari16'],
  // Bare imports resolve in `modules`, which need not be beside the sources.
  nodePaths: [modules],
  legalComments: 'eof',
  logLevel: 'warning',
});
await copyFile(path.join(here, 'src/index.html'), path.join(out, 'index.html'));
console.log(`built the upload page into ${out}`);
