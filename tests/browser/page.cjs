// The upload page as a person uses it: open the link `dev` prints (token in
// the fragment), drop files on Uppy's Dashboard, watch them upload and show
// up in "Your uploads", and read the messages for the files refused.
//
// argv[2]: {"url": page URL with #token=..., "files": [paths to upload],
//           "refused": [paths the server refuses], "screenshot": path|null}
// result: {"rows": [{id, filename, status, size, sha256}], "messages": [...],
//          "patches": [{url, offset, next}], "fragment_left": bool,
//          "problems": {console, exceptions, csp}, "headers": {...}}

'use strict';

const path = require('node:path');

const { args, emit, launch, run, watchPage } = require('./lib.cjs');

run(async () => {
  const { url, files, refused, screenshot } = args();
  const browser = await launch();
  try {
    const page = await browser.newPage({ viewport: { width: 1100, height: 1000 } });
    const problems = await watchPage(page);
    // Each PATCH with the offset it started at and the offset the server
    // acknowledged: the chunk sizes Uppy's tus plugin sent.
    const patches = [];
    page.on('response', async (res) => {
      const req = res.request();
      if (req.method() !== 'PATCH') return;
      patches.push({
        url: req.url(),
        offset: Number(req.headers()['upload-offset']),
        next: Number(res.headers()['upload-offset']),
        status: res.status(),
      });
    });
    const response = await page.goto(url);
    const headers = response.headers();
    await page.locator('.uppy-Dashboard-input').first().waitFor({ state: 'attached' });
    const fragmentLeft = await page.evaluate(() => location.hash !== '');

    await page.locator('.uppy-Dashboard-input').first().setInputFiles([...files, ...refused]);

    // Done when every accepted file is `uploaded` in the table and every
    // refused one has its message.
    const names = files.map((f) => path.basename(f));
    const refusedNames = refused.map((f) => path.basename(f));
    await page.waitForFunction(
      ({ names, refusedNames }) => {
        const rows = [...document.querySelectorAll('#uploads tbody tr')];
        const uploaded = names.every((n) =>
          rows.some((r) => r.querySelector('.filename').textContent === n && r.dataset.status === 'uploaded'));
        const messages = [...document.querySelectorAll('#messages li.error')].map((li) => li.textContent);
        const said = refusedNames.every((n) => messages.some((m) => m.includes(`“${n}”`)));
        // And Uppy itself is done with every file (so the screenshot shows
        // the finished Dashboard).
        const settled = window.claimcheckUppy.getFiles()
          .every((f) => f.progress.uploadComplete || f.error);
        return uploaded && said && settled;
      },
      { names, refusedNames },
      { timeout: 90_000, polling: 250 },
    );
    const rows = await page.$$eval('#uploads tbody tr', (trs) => trs.map((tr) => ({
      id: tr.dataset.id,
      filename: tr.querySelector('.filename').textContent,
      status: tr.dataset.status,
      size: tr.querySelector('.size').getAttribute('title'),
      sha256: tr.querySelector('.sha256').textContent,
    })));
    const messages = await page.$$eval('#messages li', (lis) => lis.map((li) => ({
      kind: li.className,
      text: li.textContent,
    })));
    if (screenshot) {
      await page.screenshot({ path: screenshot, fullPage: true });
    }
    emit('result', { rows, messages, patches, fragment_left: fragmentLeft, problems, headers });
  } finally {
    await browser.close();
  }
});
