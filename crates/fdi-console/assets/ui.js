// What the views share: building DOM elements without innerHTML (every value is text, never
// markup), and formatting the API's values for display.

/**
 * h('a', {href: '#/x', class: 'btn', onclick: fn, dataset: {k: 'v'}}, 'text', child, [children])
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs ?? {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith('on') && typeof value === 'function') {
      el.addEventListener(key.slice(2), value);
    } else if (key === 'dataset') {
      Object.assign(el.dataset, value);
    } else if (key === 'style' && typeof value === 'object') {
      Object.assign(el.style, value);
    } else if (key in el && typeof value !== 'string') {
      el[key] = value;
    } else {
      el.setAttribute(key, value === true ? '' : String(value));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === undefined || child === null || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else el.append(child instanceof Node ? child : String(child));
  }
}

/** Replace the children of `el`. */
export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

// ---- formatting ------------------------------------------------------------------------------

const numberFormat = new Intl.NumberFormat('en-US');

export function count(n) {
  return n === undefined || n === null ? '—' : numberFormat.format(n);
}

export function rate(n) {
  if (n === undefined || n === null || !Number.isFinite(n)) return '—';
  return `${numberFormat.format(Math.round(n))} rows/s`;
}

/** A timestamp in ms as local date and time. */
export function time(ms) {
  if (ms === undefined || ms === null || ms <= 0) return '—';
  const d = new Date(ms);
  const pad = (x) => String(x).padStart(2, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
    `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

/** A duration in ms as "1h 02m", "3m 05s", "4.2 s" or "120 ms". */
export function duration(ms) {
  if (ms === undefined || ms === null || ms < 0) return '—';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(1)} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${String(Math.floor(s % 60)).padStart(2, '0')}s`;
  return `${Math.floor(m / 60)}h ${String(m % 60).padStart(2, '0')}m`;
}

export function size(value, unit) {
  return value === undefined || value === null ? '—' : `${value} ${unit ?? ''}`.trim();
}

/** The CSS class of an execute status (UNSTARTED, WAITING, RUNNING, SUCCESS, CANCELLED, ERROR). */
export function statusClass(status) {
  return `status status-${String(status ?? 'none').toLowerCase()}`;
}

export const EXECUTE_STATUSES = ['UNSTARTED', 'WAITING', 'RUNNING', 'SUCCESS', 'CANCELLED', 'ERROR'];

/** A run that has not ended yet. */
export function isActive(status) {
  return status === 'RUNNING' || status === 'WAITING';
}
