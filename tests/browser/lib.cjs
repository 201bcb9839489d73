// Shared by the browser scripts the Rust browser tests launch
// (tests/tests/suite/browser/): Chromium through playwright-core, a tiny
// static server for a second origin, and the line protocol with the test.
//
// Protocol: the test passes one JSON object as argv[2]; a script writes
// JSON lines on stdout ({"event": ...}), may read JSON lines the test
// writes on stdin, and ends with {"event": "result", ...} and exit code 0.
// Anything on stderr is for people reading a failed test.

'use strict';

const fs = require('node:fs');
const http = require('node:http');
const path = require('node:path');
const readline = require('node:readline');

function required(name) {
  const value = process.env[name];
  if (!value) {
    throw new Error(`${name} is not set: run the browser tests with scripts/test, which installs Chromium and the harness (scripts/lib/browser.sh)`);
  }
  return value;
}

/** A package from the harness's `npm ci` (tests/browser/package-lock.json). */
function harnessModule(name) {
  return require(path.join(required('CLAIMCHECK_TEST_BROWSER_MODULES'), name));
}

/** The path of a file inside a package of the harness. */
function harnessFile(...parts) {
  return path.join(required('CLAIMCHECK_TEST_BROWSER_MODULES'), ...parts);
}

/** The test's arguments (argv[2], JSON). */
function args() {
  return JSON.parse(process.argv[2] ?? '{}');
}

/** Writes one protocol line. */
function emit(event, fields = {}) {
  process.stdout.write(`${JSON.stringify({ event, ...fields })}\n`);
}

const stdinLines = readline.createInterface({ input: process.stdin })[Symbol.asyncIterator]();

/** The next JSON line the test sends. */
async function receive() {
  const { value, done } = await stdinLines.next();
  if (done) throw new Error('the test closed stdin');
  return JSON.parse(value);
}

/**
 * Debian's Chromium, headless. Without the background-networking flags it
 * keeps dialling Google's hosts, which this machine's closed network refuses.
 */
async function launch() {
  const { chromium } = harnessModule('playwright-core');
  return chromium.launch({
    executablePath: required('CLAIMCHECK_TEST_CHROMIUM'),
    headless: true,
    chromiumSandbox: false,
    args: [
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--disable-dev-shm-usage',
    ],
  });
}

/**
 * Collects what a page complains about: console errors, uncaught
 * exceptions and Content-Security-Policy violations (from the
 * `securitypolicyviolation` event, which a script injected by the driver
 * may listen to whatever the CSP says).
 */
async function watchPage(page) {
  const problems = { console: [], exceptions: [], csp: [] };
  page.on('console', (m) => {
    if (m.type() === 'error') problems.console.push(m.text());
  });
  page.on('pageerror', (e) => problems.exceptions.push(String(e)));
  await page.exposeFunction('__reportCsp', (v) => problems.csp.push(v));
  await page.addInitScript(() => {
    document.addEventListener('securitypolicyviolation', (e) => {
      window.__reportCsp(`${e.violatedDirective} ${e.blockedURI}`);
    });
  });
  return problems;
}

/**
 * A static server on 127.0.0.1 (a port of its own: another origin than the
 * API's): `routes(path)` answers `{ type, file }`, `{ type, body }` or
 * nothing (404).
 */
async function staticServer(routes) {
  const server = http.createServer((req, res) => {
    const route = routes(new URL(req.url, 'http://x').pathname);
    if (!route) {
      res.writeHead(404, { 'Content-Type': 'text/plain' });
      res.end('not found');
      return;
    }
    res.writeHead(200, { 'Content-Type': route.type, 'Cache-Control': 'no-store' });
    if (route.file) {
      fs.createReadStream(route.file).pipe(res);
    } else {
      res.end(route.body);
    }
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, origin: `http://127.0.0.1:${server.address().port}` };
}

/** Runs `main`, reporting a failure on stderr with exit code 1. */
function run(main) {
  main().then(
    () => process.exit(0),
    (err) => {
      process.stderr.write(`${err?.stack ?? err}\n`);
      process.exit(1);
    },
  );
}

module.exports = {
  args,
  emit,
  harnessFile,
  harnessModule,
  launch,
  receive,
  run,
  staticServer,
  watchPage,
};
