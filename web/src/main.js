// The upload page: Uppy's Dashboard uploading through claimcheck's tus
// endpoint, and below it the caller's uploads (GET /v1/uploads).
//
// Everything here runs under a strict Content-Security-Policy (no inline
// script or style, connections to this origin only), so the DOM is built
// with textContent and classes, never innerHTML or style attributes.

import Uppy from '@uppy/core';
import Dashboard from '@uppy/dashboard';
import GoldenRetriever from '@uppy/golden-retriever';
import Tus from '@uppy/tus';

import '@uppy/core/css/style.min.css';
import '@uppy/dashboard/css/style.min.css';
import './app.css';

import { describeRefusal, formatSize, problemOf } from './problems.js';

const MiB = 1024 * 1024;
// 5 MiB: a reload or a dropped connection loses at most one chunk, and it is
// S3's least part size, so the parts the server cuts line up with chunks.
const CHUNK_SIZE = 5 * MiB;
const TOKEN_KEY = 'claimcheck.token';

// The page is served at the API's root (or under the same prefix behind a
// proxy), so the API is relative to it.
const apiBase = new URL('.', `${location.origin}${location.pathname}`);
const api = (path) => new URL(path, apiBase).href;

/**
 * The token: from the URL fragment `#token=...` (which `claimcheck-api dev`
 * prints; a fragment never reaches a server or a log), else from this tab's
 * sessionStorage, so a reload keeps it.
 */
function takeToken() {
  const fragment = new URLSearchParams(location.hash.slice(1));
  const fromLink = fragment.get('token');
  if (fromLink) {
    sessionStorage.setItem(TOKEN_KEY, fromLink);
    // Out of the address bar, the history and any bookmark.
    history.replaceState(null, '', `${location.pathname}${location.search}`);
  }
  return sessionStorage.getItem(TOKEN_KEY);
}

const $ = (selector) => document.querySelector(selector);

function el(tag, text, className) {
  const node = document.createElement(tag);
  if (text != null) node.textContent = text;
  if (className) node.className = className;
  return node;
}

/** Adds a line to the message list under the Dashboard. */
function say(text, kind) {
  const item = el('li', text, kind);
  $('#messages').prepend(item);
  return item;
}

function askForToken(reason) {
  sessionStorage.removeItem(TOKEN_KEY);
  const form = $('#token-form');
  form.hidden = false;
  if (reason) {
    form.querySelector('.hint').textContent = reason;
  }
}

$('#token-form').addEventListener('submit', (event) => {
  event.preventDefault();
  sessionStorage.setItem(TOKEN_KEY, $('#token-input').value.trim());
  location.reload();
});

async function refreshUploads(token) {
  const errorLine = $('#uploads-error');
  let page;
  try {
    const res = await fetch(api('v1/uploads?limit=50'), {
      headers: { Authorization: `Bearer ${token}` },
      cache: 'no-store',
    });
    if (res.status === 401) {
      askForToken('The token was refused (401): paste another.');
      return;
    }
    if (!res.ok) {
      const problem = problemOf(await res.text());
      throw new Error(problem?.detail ?? `HTTP ${res.status}`);
    }
    page = await res.json();
  } catch (err) {
    errorLine.textContent = `Could not list your uploads: ${err.message}`;
    errorLine.hidden = false;
    return;
  }
  errorLine.hidden = true;
  const rows = page.items.map((claim) => {
    const row = el('tr');
    row.dataset.id = claim.id;
    row.dataset.status = claim.status;
    row.append(
      el('td', claim.filename ?? claim.id, 'filename'),
      el('td', claim.status, `status status-${claim.status}`),
      el('td', formatSize(claim.size), 'size'),
      el('td', claim.sha256 ?? '—', 'sha256'),
      el('td', new Date(claim.created_at).toLocaleString(), 'created'),
    );
    row.children[2].title = `${claim.size} bytes`;
    return row;
  });
  $('#uploads tbody').replaceChildren(...rows);
}

function start(token) {
  $('#uploader').hidden = false;
  $('#uploads-section').hidden = false;

  const uppy = new Uppy({ id: 'claimcheck', autoProceed: true })
    .use(Dashboard, {
      target: '#dashboard',
      inline: true,
      width: '100%',
      height: 420,
      showProgressDetails: true,
      proudlyDisplayPoweredByUppy: false,
      note: 'Resumable uploads over tus, straight to claimcheck',
    })
    // Restores the file list after a reload or a crash; files up to 10 MiB
    // come back whole (IndexedDB), larger ones as "ghosts" to pick again,
    // and the tus fingerprint then resumes them at the server's offset.
    .use(GoldenRetriever)
    .use(Tus, {
      endpoint: api('v1/tus'),
      headers: { Authorization: `Bearer ${token}` },
      chunkSize: CHUNK_SIZE,
      retryDelays: [0, 1000, 3000, 5000],
      // A finished upload is not resumed again if the same file is dropped
      // later: that starts a new upload.
      removeFingerprintOnSuccess: true,
      // Only the name and type go to the server (Upload-Metadata).
      allowedMetaFields: ['name', 'type'],
      onShouldRetry(err, attempt, options, next) {
        // A quota does not free itself in seconds: say so at once.
        const problem = problemOf(err?.originalResponse?.getBody?.());
        if (problem?.code === 'quota_exceeded') return false;
        return next(err);
      },
    });

  uppy.on('upload-error', (file, error) => {
    const status = error?.originalResponse?.getStatus?.();
    if (status === 401) {
      askForToken('The token was refused (401): paste another.');
    }
    const problem = problemOf(error?.originalResponse?.getBody?.());
    const message = describeRefusal(file.name, status, problem, error);
    say(message, 'error');
    // The Dashboard's tooltip on the file says the same, not tus's dump of
    // the request.
    if (uppy.getFile(file.id)) {
      uppy.setFileState(file.id, { error: message });
    }
    refreshUploads(token);
  });
  uppy.on('upload-success', (file) => {
    say(`“${file.name}” uploaded (${formatSize(file.size)}).`, 'ok');
    refreshUploads(token);
  });
  uppy.on('restriction-failed', (file, error) => {
    say(`“${file?.name ?? 'a file'}” was not added: ${error.message}`, 'error');
  });

  $('#refresh').addEventListener('click', () => refreshUploads(token));
  $('#forget-token').addEventListener('click', () => {
    sessionStorage.removeItem(TOKEN_KEY);
    location.reload();
  });
  refreshUploads(token);
  // For people (and tests) poking at the page from the console.
  window.claimcheckUppy = uppy;
}

const token = takeToken();
if (token) {
  start(token);
} else {
  askForToken();
}
