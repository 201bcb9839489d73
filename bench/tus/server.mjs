// tus-node-server for bench/run tus: @tus/server with @tus/s3-store on the
// bench's Garage bucket, listening on 127.0.0.1:$TUS_NODE_PORT at /files.
// S3Store and Server options are the packages' defaults but for what an
// S3-compatible server needs (endpoint, region, keys, path-style URLs) and
// the checksum settings, which follow claimcheck's own S3 client (checksums
// only when an operation requires them).
import { S3Store } from '@tus/s3-store';
import { Server } from '@tus/server';

const env = (name) => {
  const v = process.env[name];
  if (!v) {
    console.error(`server.mjs: ${name} is not set`);
    process.exit(2);
  }
  return v;
};

const datastore = new S3Store({
  s3ClientConfig: {
    bucket: env('CLAIMCHECK_TEST_S3_BUCKET'),
    region: env('CLAIMCHECK_TEST_S3_REGION'),
    endpoint: env('CLAIMCHECK_TEST_S3_ENDPOINT'),
    forcePathStyle: true,
    credentials: {
      accessKeyId: env('CLAIMCHECK_TEST_S3_ACCESS_KEY'),
      secretAccessKey: env('CLAIMCHECK_TEST_S3_SECRET_KEY'),
    },
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  },
});
const server = new Server({ path: '/files', datastore });
const port = Number(env('TUS_NODE_PORT'));
const http = server.listen({ host: '127.0.0.1', port }, () => {
  console.log(`tus-node-server listening on http://127.0.0.1:${port}/files`);
});
const stop = () => http.close(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
