// node upload.mjs ENDPOINT FILE CHUNK_SIZE: one upload of FILE with
// tus-js-client, read from disk by its Node file input (a fs.ReadStream with
// a path: each chunk is a new read stream over its range). CHUNK_SIZE in
// bytes, or Infinity for the whole file in one PATCH. No retries, so a
// failure shows. Sends `Authorization: Bearer $BENCH_TOKEN` when
// BENCH_TUS_AUTH=1. Prints name=value lines: bytes, secs, mib_s, patches,
// url (or error=...; exit 1).
import { createReadStream, statSync } from 'node:fs';
import { basename } from 'node:path';
import { performance } from 'node:perf_hooks';
import * as tus from 'tus-js-client';

const [endpoint, file, chunk] = process.argv.slice(2);
if (!endpoint || !file || !chunk) {
  console.error('usage: node upload.mjs ENDPOINT FILE CHUNK_SIZE|Infinity');
  process.exit(2);
}
const headers = {};
if (process.env.BENCH_TUS_AUTH === '1') {
  headers.Authorization = `Bearer ${process.env.BENCH_TOKEN}`;
}

let patches = 0;
const bytes = statSync(file).size;
const t0 = performance.now();
const url = await new Promise((resolve, reject) => {
  const upload = new tus.Upload(createReadStream(file), {
    endpoint,
    headers,
    chunkSize: Number(chunk),
    retryDelays: null,
    metadata: { filename: basename(file), filetype: 'application/octet-stream' },
    onBeforeRequest: (req) => {
      if (req.getMethod() === 'PATCH') patches++;
    },
    onError: reject,
    onSuccess: () => resolve(upload.url),
  });
  upload.start();
}).catch((e) => {
  console.log(`error=${String(e?.message ?? e).replace(/\s+/g, ' ').slice(0, 400)}`);
  process.exit(1);
});
const secs = (performance.now() - t0) / 1000;
console.log(`bytes=${bytes}`);
console.log(`secs=${secs.toFixed(2)}`);
console.log(`mib_s=${(bytes / (1 << 20) / secs).toFixed(0)}`);
console.log(`patches=${patches}`);
console.log(`url=${url}`);
