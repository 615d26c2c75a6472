// Following a run while it runs: the run's event stream (progress events, then one end event),
// or, where the server has no stream, its monitor-log entry polled every second.

import { ApiError, get, stream } from './api.js';
import { isActive } from './ui.js';

const POLL_MS = 1000;

/**
 * Follow the run `trackingId` of task `taskId`. `onEntry(entry, mode)` gets every new state of
 * the monitor-log entry (`mode` is 'stream' or 'poll'); `onEnd(entry)` once the run has ended;
 * `onError(error)` when following failed. Returns a function that stops following.
 */
export function followRun(taskId, trackingId, { onEntry, onEnd, onError }) {
  const abort = new AbortController();
  const base = `/tasks/${encodeURIComponent(taskId)}/monitor-logs/${encodeURIComponent(trackingId)}`;
  let ended = false;
  const end = (entry) => {
    if (ended) return;
    ended = true;
    onEnd(entry);
  };

  async function poll() {
    while (!abort.signal.aborted && !ended) {
      try {
        const entry = await get(base, undefined, abort.signal);
        onEntry(entry, 'poll');
        if (!isActive(entry.execute_status)) {
          end(entry);
          return;
        }
      } catch (e) {
        if (abort.signal.aborted) return;
        onError(e);
        if (e instanceof ApiError && e.status === 404) return;
      }
      await sleep(POLL_MS, abort.signal);
    }
  }

  async function streamThenPoll() {
    try {
      await stream(`${base}/events`, (ev) => {
        const entry = parseEntry(ev.data);
        if (!entry) return;
        if (ev.event === 'end') end(entry);
        else if (ev.event === 'progress') onEntry(entry, 'stream');
      }, abort.signal);
    } catch (e) {
      if (abort.signal.aborted) return;
      // No stream here (an older server) or it broke: fall back to polling.
      if (!(e instanceof ApiError)) console.warn('event stream failed', e);
    }
    // A stream closed without its end event: find out by polling.
    if (!ended && !abort.signal.aborted) await poll();
  }

  streamThenPoll();
  return () => abort.abort();
}

function parseEntry(data) {
  try {
    return JSON.parse(data);
  } catch {
    return null;
  }
}

function sleep(ms, signal) {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    signal.addEventListener('abort', () => {
      clearTimeout(t);
      resolve();
    }, { once: true });
  });
}

/**
 * Rows per second between two samples of `read_count`, for servers that do not send
 * `rows_per_second` themselves.
 */
export class RateMeter {
  constructor() {
    this.last = null;
    this.value = null;
  }

  sample(readCount) {
    if (readCount === undefined || readCount === null) return this.value;
    const now = performance.now();
    if (this.last && now - this.last.at >= 250 && readCount >= this.last.rows) {
      this.value = ((readCount - this.last.rows) * 1000) / (now - this.last.at);
    }
    if (!this.last || now - this.last.at >= 250) this.last = { at: now, rows: readCount };
    return this.value;
  }
}
