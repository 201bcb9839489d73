// Uploads from a page on another origin than the API, as browser apps do:
// tus-js-client's browser build and plain fetch through /v1/tus, and the
// REST multipart API with parts PUT straight to S3 on presigned URLs. A
// second page, on an origin the API does not allow, tries the same.
//
// Protocol: starts two static servers (ports of their own), writes
//   {"event": "origins", "allowed": origin, "refused": origin}
// and reads {"api": base URL, "token": ..., "files": {"tus", "fetch",
// "rest": paths}} once the test has started the API (and the bucket) with
// CORS for the allowed origin only. Result:
//   {"allowed": {what the allowed page read}, "refused": {...}, "problems"}

'use strict';

const { emit, harnessFile, launch, receive, run, staticServer, watchPage } = require('./lib.cjs');

// The other app's page: no CSP of ours, just tus-js-client's browser build
// (its UMD file, as a plain <script> tag would load it from a CDN).
const PAGE = '<!doctype html><html><head><meta charset="utf-8"><title>another app</title>'
  + '<link rel="icon" href="data:,">'
  + '<script src="/tus.min.js"></script></head><body>another origin</body></html>';

function routes(files) {
  const served = {
    '/': { type: 'text/html; charset=utf-8', body: PAGE },
    '/tus.min.js': { type: 'text/javascript', file: harnessFile('tus-js-client', 'dist', 'tus.min.js') },
  };
  for (const [name, file] of Object.entries(files ?? {})) {
    served[`/files/${name}`] = { type: 'application/octet-stream', file };
  }
  return served;
}

/** Runs in the allowed page: every upload path a browser app takes. */
async function uploadEverything({ api, token }) {
  const MiB = 1024 * 1024;
  const auth = { Authorization: `Bearer ${token}` };
  const tusHeaders = { ...auth, 'Tus-Resumable': '1.0.0' };
  const blobOf = async (name) => (await fetch(`/files/${name}`)).blob();
  const out = {};

  // tus-js-client: creation, 5 MiB PATCHes, Location resolved by the client.
  const tusBlob = await blobOf('tus');
  out.tus_client = await new Promise((resolve) => {
    const upload = new window.tus.Upload(tusBlob, {
      endpoint: `${api}/v1/tus`,
      headers: auth,
      chunkSize: 5 * MiB,
      retryDelays: [],
      metadata: { filename: 'tus-client.bin', filetype: 'application/octet-stream' },
      onError: (e) => resolve({ error: String(e) }),
      onSuccess: () => resolve({ url: upload.url }),
    });
    upload.start();
  });

  // Plain fetch speaking tus: every header it needs must be readable.
  const fetchBlob = await blobOf('fetch');
  const half = Math.floor(fetchBlob.size / 2);
  let res = await fetch(`${api}/v1/tus`, {
    method: 'POST',
    headers: {
      ...tusHeaders,
      'Upload-Length': String(fetchBlob.size),
      'Upload-Metadata': `filename ${btoa('fetch-tus.bin')},filetype ${btoa('application/octet-stream')}`,
    },
  });
  const created = {
    status: res.status,
    location: res.headers.get('Location'),
    expires: res.headers.get('Upload-Expires'),
    tus_resumable: res.headers.get('Tus-Resumable'),
  };
  // A relative Location is relative to the request's URL (the API), never
  // to this page.
  const uploadUrl = created.location && new URL(created.location, `${api}/v1/tus`).href;
  const patch = (offset, body) => fetch(uploadUrl, {
    method: 'PATCH',
    headers: {
      ...tusHeaders,
      'Upload-Offset': String(offset),
      'Content-Type': 'application/offset+octet-stream',
    },
    body,
  });
  res = await patch(0, fetchBlob.slice(0, half));
  const first = { status: res.status, offset: res.headers.get('Upload-Offset') };
  res = await fetch(uploadUrl, { method: 'HEAD', headers: tusHeaders });
  const head = {
    status: res.status,
    offset: res.headers.get('Upload-Offset'),
    length: res.headers.get('Upload-Length'),
    metadata: res.headers.get('Upload-Metadata'),
  };
  res = await patch(Number(head.offset), fetchBlob.slice(Number(head.offset)));
  const last = { status: res.status, offset: res.headers.get('Upload-Offset') };
  out.fetch_tus = { created, upload_url: uploadUrl, first, head, last };

  // REST multipart, each part PUT to S3 on the URL the API presigned.
  const restBlob = await blobOf('rest');
  res = await fetch(`${api}/v1/uploads/multipart`, {
    method: 'POST',
    headers: { ...auth, 'Content-Type': 'application/json' },
    body: JSON.stringify({
      filename: 'rest.bin',
      content_type: 'application/octet-stream',
      size: restBlob.size,
      part_size: 5 * MiB,
    }),
  });
  const claim = await res.json();
  const rest = { init: res.status, location: res.headers.get('Location'), id: claim.id, parts: [] };
  for (let n = 1; n <= claim.part_count; n += 1) {
    const signed = await (await fetch(`${api}/v1/uploads/${claim.id}/parts/${n}/presign`, {
      method: 'POST',
      headers: auth,
    })).json();
    const body = restBlob.slice((n - 1) * claim.part_size, n * claim.part_size);
    // The browser sets Content-Length (signed) itself from the body.
    const put = await fetch(signed.url, { method: signed.method, headers: signed.headers, body });
    rest.parts.push({ status: put.status, etag: put.headers.get('ETag'), url: signed.url });
  }
  res = await fetch(`${api}/v1/uploads/${claim.id}/complete`, { method: 'POST', headers: auth });
  rest.complete = res.status;
  rest.status = (await res.json()).status;
  out.rest = rest;

  // Single-shot REST.
  res = await fetch(`${api}/v1/uploads?filename=hello.txt`, {
    method: 'POST',
    headers: { ...auth, 'Content-Type': 'text/plain' },
    body: 'hello from another origin',
  });
  out.single = { status: res.status, location: res.headers.get('Location') };
  return out;
}

/** Runs in the refused page: the same calls must not get through. */
async function tryFromRefusedOrigin({ api, token }) {
  const auth = { Authorization: `Bearer ${token}` };
  const attempt = async (url, init) => {
    try {
      const res = await fetch(url, init);
      return `answered ${res.status}`;
    } catch (e) {
      return `refused: ${e.name}`;
    }
  };
  const out = {
    tus_create: await attempt(`${api}/v1/tus`, {
      method: 'POST',
      headers: { ...auth, 'Tus-Resumable': '1.0.0', 'Upload-Length': '5' },
    }),
    list: await attempt(`${api}/v1/uploads`, { headers: auth }),
    single: await attempt(`${api}/v1/uploads?filename=x.txt`, {
      method: 'POST',
      headers: { ...auth, 'Content-Type': 'text/plain' },
      body: 'x',
    }),
  };
  out.tus_client = await new Promise((resolve) => {
    const upload = new window.tus.Upload(new Blob(['hello']), {
      endpoint: `${api}/v1/tus`,
      headers: auth,
      retryDelays: [],
      onError: () => resolve('error'),
      onSuccess: () => resolve('success'),
    });
    upload.start();
  });
  return out;
}

run(async () => {
  // The servers start before the test knows its files: it needs the
  // origins first (the API's CORS setting), so files come with the config.
  let files = {};
  const allowed = await staticServer((path) => routes(files)[path]);
  const refused = await staticServer((path) => routes({})[path]);
  emit('origins', { allowed: allowed.origin, refused: refused.origin });
  const config = await receive();
  files = config.files;

  const browser = await launch();
  try {
    const page = await browser.newPage();
    const problems = await watchPage(page);
    await page.goto(`${allowed.origin}/`);
    const allowedResult = await page.evaluate(uploadEverything, config);
    const other = await browser.newPage();
    await other.goto(`${refused.origin}/`);
    const refusedResult = await other.evaluate(tryFromRefusedOrigin, config);
    emit('result', { allowed: allowedResult, refused: refusedResult, problems });
  } finally {
    await browser.close();
    allowed.server.close();
    refused.server.close();
  }
});
