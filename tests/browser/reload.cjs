// A reload in the middle of an upload resumes it: the page uploads a file
// in 5 MiB chunks; the third PATCH is held back (never reaches the server)
// and the page is reloaded. Golden Retriever brings the file back (as a
// "ghost" past its 10 MiB IndexedDB limit), the person picks the same file
// again, and the tus fingerprint Uppy stored resumes the upload at the
// server's offset: no new POST, the first PATCH at 10 MiB.
//
// argv[2]: {"url": page URL with #token=..., "file": path}
// result: {"before": [requests], "after": [requests], "ghost": bool,
//          "upload_url": Location of the creation, "problems": {...}}

'use strict';

const { args, emit, launch, run, watchPage } = require('./lib.cjs');

const MiB = 1024 * 1024;

/**
 * Logs the tus requests the page makes (method, URL, offset sent) into
 * `log[phase()]`: before the reload and after it.
 */
function tusLog(page, phase) {
  const log = { before: [], after: [] };
  page.on('request', (req) => {
    if (!req.url().includes('/v1/tus')) return;
    log[phase()].push({
      method: req.method(),
      url: req.url(),
      offset: req.headers()['upload-offset'] ?? null,
    });
  });
  return log;
}

run(async () => {
  const { url, file } = args();
  const browser = await launch();
  try {
    const context = await browser.newContext();
    const page = await context.newPage();
    const problems = await watchPage(page);
    let reloaded = false;
    const log = tusLog(page, () => (reloaded ? 'after' : 'before'));

    // Hold the PATCH that starts at 10 MiB: the upload is then mid-way with
    // two chunks acknowledged, and the reload aborts the held one.
    let held;
    const heldPatch = new Promise((resolve) => {
      held = resolve;
    });
    await page.route('**/v1/tus/*', (route) => {
      const req = route.request();
      if (req.method() === 'PATCH' && Number(req.headers()['upload-offset']) >= 10 * MiB) {
        held();
        return; // neither continued nor fulfilled: the reload aborts it
      }
      route.continue();
    });
    let uploadUrl = null;
    page.on('response', (res) => {
      if (res.request().method() === 'POST' && res.url().endsWith('/v1/tus')) {
        uploadUrl = res.headers().location ?? null;
      }
    });

    await page.goto(url);
    const input = page.locator('.uppy-Dashboard-input').first();
    await input.setInputFiles(file);
    await heldPatch;

    await page.unroute('**/v1/tus/*');
    reloaded = true;
    // The token survives in sessionStorage; the fragment is gone already.
    await page.reload();
    // Golden Retriever's restored file list: a ghost for a file this large.
    const ghost = await page
      .locator('.uppy-Dashboard-Item.is-ghost')
      .first()
      .waitFor({ timeout: 15_000 })
      .then(() => true, () => false);
    // As a person does: "Re-select", pick the same file, "Upload".
    await page.locator('.uppy-Dashboard-Item-reSelect').first().click();
    await page.locator('.uppy-Dashboard-input').first().setInputFiles(file);
    await page.locator('.uppy-StatusBar-actionBtn--upload:not([disabled])').click();
    await page.waitForFunction(
      () => {
        const files = window.claimcheckUppy.getFiles();
        return files.length > 0 && files.every((f) => f.progress.uploadComplete || f.error);
      },
      null,
      { timeout: 60_000, polling: 250 },
    );
    const errors = await page.evaluate(() =>
      window.claimcheckUppy.getFiles().filter((f) => f.error).map((f) => String(f.error)));
    emit('result', { ...log, ghost, upload_url: uploadUrl, errors, problems });
  } finally {
    await browser.close();
  }
});
