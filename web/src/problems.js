// Turning claimcheck's answers into sentences for people.

/** The problem+json body (RFC 9457) of an error answer, or null. */
export function problemOf(body) {
  if (typeof body !== 'string' || body === '') return null;
  try {
    const problem = JSON.parse(body);
    return typeof problem === 'object' && problem !== null && 'code' in problem
      ? problem
      : null;
  } catch {
    return null;
  }
}

// What each refusal means for the person who dropped the file.
const REASONS = {
  too_large: 'it is larger than the server accepts',
  unsupported_media_type: 'its type is not accepted',
  quota_exceeded: 'your quota would be exceeded',
  too_many_pending_uploads: 'you have too many uploads in progress; finish or cancel some',
  unauthorized: 'the token was refused',
  forbidden: 'the token may not upload (scope `upload` needed)',
  expired: 'the upload expired before it finished; drop the file again',
  checksum_mismatch: 'the bytes were damaged on the way; try again',
  unavailable: 'the service is unavailable right now; try again shortly',
};

/**
 * One line saying why `name` did not upload: the reason, the server's
 * detail and code, so a person knows what to change.
 */
export function describeRefusal(name, status, problem, error) {
  if (problem) {
    const reason = REASONS[problem.code] ?? problem.title ?? 'the server refused it';
    const detail = problem.detail ? `${problem.detail}; ` : '';
    return `“${name}” was refused: ${reason} (${detail}${status ?? problem.status} ${problem.code}).`;
  }
  if (status) {
    return `“${name}” failed: HTTP ${status}.`;
  }
  const message = String(error?.message ?? error ?? 'unknown error').split('\n')[0];
  return `“${name}” failed: ${message}`;
}

/** `31457280` → `30.0 MiB`. */
export function formatSize(bytes) {
  if (bytes == null) return '—';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = Number(bytes);
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return unit === 0 ? `${value} B` : `${value.toFixed(1)} ${units[unit]}`;
}
