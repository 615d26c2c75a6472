// The FDI API as the console calls it: every call carries the session's token as X-Auth-Token;
// an error answer becomes an ApiError holding its FDI code, message and detail.

export class ApiError extends Error {
  constructor(status, code, message, detail) {
    super(`${code}: ${message}`);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
    this.msg = message;
    this.detail = detail ?? null;
  }
}

function fdiPrefix(session) {
  const p = encodeURIComponent(session.project_id);
  const i = encodeURIComponent(session.instance_id);
  return `/v2/${p}/fdi/instances/${i}`;
}

function requestUrl(session, path, query) {
  const url = new URL(fdiPrefix(session) + path, location.origin);
  for (const [key, value] of Object.entries(query ?? {})) {
    if (value !== undefined && value !== null && value !== '') url.searchParams.set(key, value);
  }
  return url;
}

function requireSession() {
  const session = loadSession();
  if (!session) throw new ApiError(401, 'FDI.CONSOLE', 'not signed in: enter a token first');
  return session;
}

/** The ApiError of an answer that is not 2xx. */
function errorOf(status, text) {
  let body = null;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    body = null;
  }
  if (body && typeof body.error_code === 'string') {
    return new ApiError(status, body.error_code, body.error_msg ?? '', body.detail);
  }
  return new ApiError(status, `HTTP ${status}`, text ? text.slice(0, 300) : 'no body');
}

/**
 * The answer index.html already asked for (its prefetch of the first page), once; null otherwise.
 * A prefetch that failed to reach the server is asked again.
 */
function takePrefetched(href) {
  const pending = window.fdiPrefetched?.[href];
  if (!pending) return null;
  delete window.fdiPrefetched[href];
  return pending.catch(() => null);
}

async function send(url, init) {
  try {
    return await fetch(url, init);
  } catch (e) {
    if (e.name === 'AbortError') throw e;
    throw new ApiError(0, 'NETWORK', `the server did not answer (${e.message})`);
  }
}

/**
 * Call an FDI endpoint: `path` is relative to /v2/{project_id}/fdi/instances/{instance_id}.
 * Resolves with the parsed JSON body; rejects with an ApiError.
 */
export async function call(method, path, { query, body, signal } = {}) {
  const session = requireSession();
  const headers = { 'X-Auth-Token': session.token, Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const url = requestUrl(session, path, query);
  const resp = await (method === 'GET' && takePrefetched(url.href)) || await send(url, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    signal,
  });
  const text = await resp.text();
  if (!resp.ok) throw errorOf(resp.status, text);
  return text ? JSON.parse(text) : null;
}

export const get = (path, query, signal) => call('GET', path, { query, signal });
export const post = (path, body = {}) => call('POST', path, { body });

/**
 * A Server-Sent Events parser (the text/event-stream format): feed it text as it arrives; it
 * calls `onEvent({event, data, id})` for each complete event.
 */
export class SseParser {
  constructor(onEvent) {
    this.onEvent = onEvent;
    this.buffer = '';
    this.reset();
  }

  reset() {
    this.event = '';
    this.data = [];
    this.id = null;
  }

  push(text) {
    this.buffer += text;
    const lines = this.buffer.split(/\r\n|\n|\r(?!$)/);
    this.buffer = lines.pop();
    for (const line of lines) this.line(line);
  }

  line(line) {
    if (line === '') {
      if (this.data.length > 0) {
        this.onEvent({ event: this.event || 'message', data: this.data.join('\n'), id: this.id });
      }
      this.reset();
      return;
    }
    if (line.startsWith(':')) return;
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'event') this.event = value;
    else if (field === 'data') this.data.push(value);
    else if (field === 'id') this.id = value;
  }
}

/**
 * Read the event stream at `path` with fetch (so the token travels as a header, never in the URL),
 * calling `onEvent` for each event. Resolves when the server closes the stream; rejects with an
 * ApiError when the endpoint does not answer with a stream (e.g. 404 on an older server).
 */
export async function stream(path, onEvent, signal) {
  const session = requireSession();
  const resp = await send(requestUrl(session, path), {
    headers: { 'X-Auth-Token': session.token, Accept: 'text/event-stream' },
    cache: 'no-store',
    signal,
  });
  const type = resp.headers.get('content-type') ?? '';
  if (!resp.ok || !type.startsWith('text/event-stream') || !resp.body) {
    throw errorOf(resp.ok ? 406 : resp.status, await resp.text());
  }
  const parser = new SseParser(onEvent);
  const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    parser.push(value);
  }
  parser.push('\n\n');
}

// ---- the session ----------------------------------------------------------------------------
// The token and the scope (project id, instance id) the user signed in with, kept for the browser
// tab's session only (sessionStorage), never in a URL.

const SESSION_KEY = 'fdi.console.session';

/** @returns {{token: string, project_id: string, instance_id: string} | null} */
export function loadSession() {
  try {
    const s = JSON.parse(sessionStorage.getItem(SESSION_KEY) ?? 'null');
    return s && s.token && s.project_id && s.instance_id ? s : null;
  } catch {
    return null;
  }
}

export function saveSession(session) {
  sessionStorage.setItem(SESSION_KEY, JSON.stringify(session));
}

export function clearSession() {
  sessionStorage.removeItem(SESSION_KEY);
}
