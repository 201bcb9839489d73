// node stamp.mjs FILE: writes a fresh random nonce and the MiB's index at
// the start of every MiB of FILE, in place, so that each upload of the same
// file brings the S3 server blocks it has never seen (Garage deduplicates
// identical blocks). A window of 1 MiB anywhere in the file holds a stamp.
import { randomBytes } from 'node:crypto';
import { open } from 'node:fs/promises';

const MIB = 1 << 20;
const file = process.argv[2];
if (!file) {
  console.error('usage: node stamp.mjs FILE');
  process.exit(2);
}
const fh = await open(file, 'r+');
try {
  const { size } = await fh.stat();
  const nonce = randomBytes(8);
  const mark = Buffer.alloc(16);
  nonce.copy(mark, 0);
  for (let i = 0; i * MIB < size; i++) {
    mark.writeBigUInt64LE(BigInt(i), 8);
    const n = Math.min(mark.length, size - i * MIB);
    await fh.write(mark, 0, n, i * MIB);
  }
} finally {
  await fh.close();
}
