// The console's shell: hash routes, the sign-in form, the error banner, and the views.
//
//   #/login                          token + project id + instance id (kept in sessionStorage)
//   #/monitors?name=&status=&page=   task monitors
//   #/tasks/{task_id}/runs?page=     a task's run history
//   #/tasks/{task_id}/runs/{run_id}  one run: its steps as a timeline, live progress while it runs
//   #/datasources?page=              datasources, with test-connect

import { ApiError, clearSession, get, loadSession, saveSession } from './api.js';
import { h, replace } from './ui.js';
import { monitorsView } from './monitors.js';

// The pages other than the monitors load when first visited (the first page needs fewer files).
const runs = () => import('./runs.js');
const datasources = () => import('./datasources.js');

const SCOPE_KEY = 'fdi.console.scope';
const viewEl = document.getElementById('view');
const errorEl = document.getElementById('error');
let current = null;
let keepNextError = false;

/** Show an error: an API error with its FDI code, message and detail. */
export function showError(e) {
  if (e?.name === 'AbortError') return;
  const code = e instanceof ApiError ? e.code : 'ERROR';
  const message = e instanceof ApiError ? e.msg : String(e?.message ?? e);
  const detail = e instanceof ApiError ? e.detail : null;
  errorEl.dataset.code = code;
  replace(errorEl,
    h('strong', { class: 'error-code' }, code),
    h('span', { class: 'error-msg' }, ` ${message}`),
    detail ? h('div', { class: 'error-detail' }, detail) : null,
    h('button', { type: 'button', class: 'link dismiss', onclick: clearError }, 'dismiss'));
  errorEl.hidden = false;
  if (e instanceof ApiError && e.status === 401) {
    clearSession();
    keepNextError = true;
    navigate(`#/login?next=${encodeURIComponent(location.hash)}`);
  }
}

export function clearError() {
  errorEl.hidden = true;
  errorEl.replaceChildren();
  delete errorEl.dataset.code;
}

/** A short confirmation that fades out. */
export function notice(text) {
  let box = document.getElementById('notices');
  if (!box) {
    box = h('div', { id: 'notices', class: 'notices' });
    document.body.append(box);
  }
  const el = h('div', { class: 'notice', role: 'status' }, text);
  box.append(el);
  setTimeout(() => el.remove(), 4000);
}

export function navigate(hash) {
  if (location.hash === hash) route();
  else location.hash = hash;
}

/** Run the current route again (after an action changed what it shows). */
export function refresh() {
  route({ keepError: true });
}

function parseHash() {
  const raw = location.hash.replace(/^#/, '') || '/monitors';
  const [path, search] = raw.split('?');
  return {
    parts: path.split('/').filter(Boolean).map(decodeURIComponent),
    query: new URLSearchParams(search ?? ''),
  };
}

function updateChrome(session, section) {
  document.getElementById('nav').hidden = !session;
  document.getElementById('who').hidden = !session;
  document.getElementById('who-scope').textContent = session
    ? `${session.project_id} / ${session.instance_id}` : '';
  for (const a of document.querySelectorAll('[data-nav]')) {
    a.classList.toggle('active', a.dataset.nav === section);
  }
}

function route({ keepError = false } = {}) {
  current?.abort();
  current = new AbortController();
  if (!keepError && !keepNextError) clearError();
  keepNextError = false;
  const { parts, query } = parseHash();
  const session = loadSession();
  const section = parts[0] === 'tasks' ? 'monitors' : parts[0];
  updateChrome(session, section);
  const ctx = { query, signal: current.signal, showError, notice, navigate, refresh };
  if (!session || parts[0] === 'login') {
    loginView(viewEl, ctx);
    return;
  }
  const run = pickView(parts);
  Promise.resolve(run(viewEl, ctx)).catch(showError);
}

function pickView(parts) {
  const [section, taskId, sub, runId] = parts;
  if (section === 'monitors') return monitorsView;
  if (section === 'datasources') return async (el, ctx) => (await datasources()).datasourcesView(el, ctx);
  if (section === 'tasks' && taskId && sub === 'runs' && runId) {
    return async (el, ctx) => (await runs()).runView(el, ctx, taskId, runId);
  }
  if (section === 'tasks' && taskId) return async (el, ctx) => (await runs()).runsView(el, ctx, taskId);
  return (el, ctx) => replace(el, h('h1', {}, 'Not found'),
    h('p', {}, 'No page here. ', h('a', { href: '#/monitors' }, 'Task monitors')));
}

function rememberedScope() {
  try {
    return JSON.parse(localStorage.getItem(SCOPE_KEY) ?? '{}') ?? {};
  } catch {
    return {};
  }
}

/** Ask for the token (and the project / instance the console works in), check it, keep it. */
function loginView(el, ctx) {
  const scope = rememberedScope();
  const field = (name, label, type, value) => h('label', {},
    h('span', {}, label),
    h('input', { name, type, value: value ?? '', required: true, autocomplete: 'off' }));
  const form = h('form', { class: 'card login', id: 'login-form' },
    h('h1', {}, 'Sign in'),
    h('p', { class: 'muted' },
      'The token is kept for this browser tab only and sent as X-Auth-Token.'),
    field('token', 'Token', 'password'),
    field('project_id', 'Project id', 'text', scope.project_id),
    field('instance_id', 'Instance id', 'text', scope.instance_id),
    h('button', { type: 'submit', class: 'primary' }, 'Sign in'));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const data = Object.fromEntries(new FormData(form));
    const session = {
      token: data.token.trim(),
      project_id: data.project_id.trim(),
      instance_id: data.instance_id.trim(),
    };
    saveSession(session);
    try {
      await get('/task-monitors', { offset: 1, limit: 1 });
    } catch (e) {
      clearSession();
      showError(e);
      return;
    }
    localStorage.setItem(SCOPE_KEY, JSON.stringify({
      project_id: session.project_id, instance_id: session.instance_id,
    }));
    clearError();
    const next = ctx.query.get('next');
    navigate(next && next.startsWith('#/') && !next.startsWith('#/login') ? next : '#/monitors');
  });
  replace(el, form);
  form.querySelector('input[name=token]').focus();
}

document.getElementById('sign-out').addEventListener('click', () => {
  clearSession();
  navigate('#/login');
});
window.addEventListener('hashchange', () => route());
route();
