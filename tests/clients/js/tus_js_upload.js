// Uploads one file to a tus server with tus-js-client's Node build, as an
// application would.
//
//   node tus_js_upload.js --endpoint URL --token TOKEN --file PATH
//       [--chunk-size N] [--parallel N] [--upload-url URL] [--url-storage PATH]
//       [--abort-after N] [--abort-mid-patch] [--filename NAME]
//       [--stream] [--defer-length] [--data-during-creation]
//
// The file goes in as an fs.ReadStream (tus-js-client reads it by ranges),
// or with --stream as a plain Readable of unknown size, read once in order
// (needs --chunk-size; with --defer-length the size is declared at the end).
// --data-during-creation sends the first chunk with the POST.
// --abort-after N calls upload.abort() once the server has acknowledged at
// least N bytes: between two PATCHes, or with --abort-mid-patch while the
// next PATCH's body is on the wire. --upload-url resumes from that URL;
// --url-storage keeps URLs in a file (FileUrlStorage) and resumes the first
// upload findPreviousUploads() finds there. Prints one JSON object on stdout:
// the upload URL, whether it was aborted (and how far its progress had got),
// and every request that got an answer (method, status, Upload-Offset and
// Upload-Length sent, Upload-Offset received, Upload-Defer-Length, Upload-Concat, Content-Type).
// The claimcheck test suite (tests/tests/suite/tus/clients.rs) runs it.
//
// tus-js-client comes from $CLAIMCHECK_TUS_JS_DIR/node_modules when set (the
// tools cache scripts/lib/tus-clients.sh fills), else from next to this file.
'use strict'

const fs = require('node:fs')
const path = require('node:path')
const { PassThrough } = require('node:stream')

const tus = require(
  require.resolve('tus-js-client', {
    paths: [process.env.CLAIMCHECK_TUS_JS_DIR || __dirname],
  }),
)

function parseArgs(argv) {
  const args = { chunkSize: Number.POSITIVE_INFINITY, parallel: 1 }
  const flags = {
    '--abort-mid-patch': 'abortMidPatch',
    '--stream': 'stream',
    '--defer-length': 'deferLength',
    '--data-during-creation': 'dataDuringCreation',
  }
  const valued = {
    '--endpoint': 'endpoint',
    '--token': 'token',
    '--file': 'file',
    '--chunk-size': 'chunkSize',
    '--parallel': 'parallel',
    '--upload-url': 'uploadUrl',
    '--url-storage': 'urlStorage',
    '--abort-after': 'abortAfter',
    '--filename': 'filename',
  }
  const numeric = new Set(['chunkSize', 'parallel', 'abortAfter'])
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]
    if (flags[arg]) {
      args[flags[arg]] = true
    } else if (valued[arg] && i + 1 < argv.length) {
      const value = argv[++i]
      args[valued[arg]] = numeric.has(valued[arg]) ? Number(value) : value
    } else {
      throw new Error(`unknown or incomplete argument: ${arg}`)
    }
  }
  for (const required of ['endpoint', 'token', 'file']) {
    if (!args[required]) throw new Error(`--${required} is required`)
  }
  return args
}

let finished = false
function finish(result, code) {
  finished = true
  process.stdout.write(`${JSON.stringify(result)}\n`, () => process.exit(code))
}

async function main() {
  const args = parseArgs(process.argv.slice(2))
  const result = { url: null, aborted: false, resumed_from_storage: false, requests: [] }
  let acked = 0
  let upload = null
  // Node exits, with status 0, once nothing is left to wait for: an upload
  // that stalls without an error or a success callback must not pass for one.
  process.on('beforeExit', () => {
    if (finished) return
    result.error = 'tus-js-client stopped without calling onSuccess, onError or abort'
    process.stderr.write(`${result.error}\n`)
    finish(result, 3)
  })

  const abort = (progress) => {
    if (result.aborted) return
    result.aborted = true
    result.abort_progress = progress
    result.url = upload.url
    result.offset = acked
    // abort() cuts the requests in flight (if any); no callback runs after it.
    upload.abort().then(storedForResuming).then(() => finish(result, 0))
  }
  // A parallel upload stores its partial uploads' URLs without waiting: an
  // application exits only once they are stored, or it could not resume.
  const storedForResuming = async () => {
    for (let tries = 0; args.urlStorage && tries < 100; tries++) {
      if ((await upload.findPreviousUploads()).length > 0) return
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
  }
  // A parallel upload is aborted only once all its partial uploads exist:
  // before that, tus-js-client has no set of URLs to store, and a resume
  // could only start over (on a busy machine the other creations may
  // still be in flight when the first partial has its bytes).
  const created = () => result.requests.filter((r) => r.method === 'POST' && r.status === 201).length
  const wantAbort = () =>
    args.abortAfter !== undefined &&
    acked >= args.abortAfter &&
    (!args.parallel || args.parallel < 2 || created() >= args.parallel)

  const options = {
    endpoint: args.endpoint,
    headers: { Authorization: `Bearer ${args.token}` },
    chunkSize: args.chunkSize,
    parallelUploads: args.parallel,
    metadata: {
      filename: args.filename || path.basename(args.file),
      filetype: 'application/octet-stream',
    },
    onAfterResponse(req, res) {
      const header = (name) => req.getHeader(name) ?? null
      result.requests.push({
        method: req.getMethod(),
        url: req.getURL(),
        status: res.getStatus(),
        offset_sent: header('Upload-Offset'),
        length_sent: header('Upload-Length'),
        defer_length: header('Upload-Defer-Length'),
        offset_received: res.getHeader('Upload-Offset') ?? null,
        upload_concat: header('Upload-Concat'),
        content_type: header('Content-Type'),
      })
    },
    onChunkComplete(_chunk, bytesAccepted) {
      acked = bytesAccepted
      if (wantAbort() && !args.abortMidPatch) abort(bytesAccepted)
    },
    onProgress(bytesSent) {
      // Progress past the last acknowledged offset: a PATCH body is on the wire.
      if (args.abortMidPatch && wantAbort() && bytesSent > acked) abort(bytesSent)
    },
    onSuccess() {
      result.url = upload.url
      result.offset = fs.statSync(args.file).size
      finish(result, 0)
    },
    onError(error) {
      process.stderr.write(`tus-js-client: ${error}\n`)
      result.error = String(error)
      finish(result, 1)
    },
  }
  if (args.deferLength) options.uploadLengthDeferred = true
  if (args.dataDuringCreation) options.uploadDataDuringCreation = true
  if (args.uploadUrl) options.uploadUrl = args.uploadUrl
  if (args.urlStorage) options.urlStorage = new tus.FileUrlStorage(args.urlStorage)

  // An fs.ReadStream with a path: tus-js-client reads it by ranges
  // (FileSource), each PATCH a fresh fs.ReadStream. Piped through a
  // PassThrough it is a stream like any other (StreamSource, buffered chunk
  // by chunk), as from a socket or a pipe.
  const file = fs.createReadStream(args.file)
  const input = args.stream ? file.pipe(new PassThrough()) : file
  if (args.stream && !args.deferLength) options.uploadSize = fs.statSync(args.file).size
  upload = new tus.Upload(input, options)
  if (args.urlStorage) {
    const previous = await upload.findPreviousUploads()
    if (previous.length > 0) {
      upload.resumeFromPreviousUpload(previous[0])
      result.resumed_from_storage = true
    }
  }
  upload.start()
}

main().catch((error) => {
  process.stderr.write(`${error.stack || error}\n`)
  process.exit(2)
})
