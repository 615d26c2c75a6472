// Task monitors: every task with its last run, filtered by name and last execute status, one
// page at a time (the server pages; only the page is rendered), with run / start / stop /
// terminate buttons.

import { ApiError, get, post } from './api.js';
import { EXECUTE_STATUSES, h, replace, statusClass, time } from './ui.js';

export const PAGE_SIZE = 20;
/** The performance mark set each time the monitors table has rendered (read by the tests). */
export const RENDERED_MARK = 'fdi:monitors-table-rendered';

export async function monitorsView(el, ctx) {
  const filters = {
    name: ctx.query.get('name') ?? '',
    status: ctx.query.get('status') ?? '',
    page: Math.max(1, Number.parseInt(ctx.query.get('page') ?? '1', 10) || 1),
  };
  const tableBox = h('div', { class: 'table-box' }, h('p', { class: 'muted' }, 'Loading…'));
  replace(el, h('h1', {}, 'Task monitors'), filterForm(filters, ctx), tableBox);
  const result = await get('/task-monitors', {
    task_name: filters.name,
    execute_status: filters.status,
    offset: filters.page,
    limit: PAGE_SIZE,
  }, ctx.signal);
  if (ctx.signal.aborted) return;
  replace(tableBox, monitorsTable(result.entities ?? [], ctx),
    pager(filters, result.total ?? 0, ctx));
  performance.mark(RENDERED_MARK);
}

function monitorsHash({ name, status, page }) {
  const q = new URLSearchParams();
  if (name) q.set('name', name);
  if (status) q.set('status', status);
  if (page > 1) q.set('page', String(page));
  const s = q.toString();
  return s ? `#/monitors?${s}` : '#/monitors';
}

function filterForm(filters, ctx) {
  const name = h('input', { name: 'task_name', type: 'search', value: filters.name,
    placeholder: 'Task name contains…' });
  const status = h('select', { name: 'execute_status' },
    h('option', { value: '' }, 'Any last status'),
    EXECUTE_STATUSES.map((s) => h('option', { value: s, selected: s === filters.status }, s)));
  const form = h('form', { class: 'filters', id: 'monitor-filters' },
    name, status, h('button', { type: 'submit' }, 'Filter'));
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    ctx.navigate(monitorsHash({ name: name.value.trim(), status: status.value, page: 1 }));
  });
  return form;
}

function monitorsTable(tasks, ctx) {
  if (tasks.length === 0) return h('p', { class: 'muted empty' }, 'No task matches.');
  return h('table', { class: 'grid', id: 'monitors-table' },
    h('thead', {}, h('tr', {},
      ['Task', 'Type', 'Schedule', 'Last run', 'Last run start', 'Position', 'Actions']
        .map((t) => h('th', {}, t)))),
    h('tbody', {}, tasks.map((t) => monitorRow(t, ctx))));
}

function monitorRow(t, ctx) {
  const started = t.status === 1;
  return h('tr', { dataset: { taskId: t.task_id, taskName: t.task_name } },
    h('td', {}, h('a', { href: `#/tasks/${encodeURIComponent(t.task_id)}/runs`, class: 'task-link' },
      t.task_name)),
    h('td', {}, t.ext_type ?? t.task_type),
    h('td', {}, h('span', { class: started ? 'pill on' : 'pill off' }, started ? 'started' : 'stopped')),
    h('td', {}, h('span', { class: statusClass(t.execute_status) }, t.execute_status ?? '—')),
    h('td', {}, time(t.last_execute_time)),
    h('td', {}, t.position ?? '—'),
    h('td', { class: 'actions' }, taskActions(t, ctx)));
}

/** Run / start / stop / terminate for one task; shared with the run history page. */
export function taskActions(t, ctx) {
  const started = t.status === 1;
  const running = t.execute_status === 'RUNNING' || t.execute_status === 'WAITING';
  return [
    actionButton('Run', 'run', () => runTask(t.task_id, ctx)),
    started
      ? actionButton('Stop', 'stop', () => batch('stop', t, ctx))
      : actionButton('Start', 'start', () => batch('start', t, ctx)),
    running ? actionButton('Terminate', 'terminate', () => terminateTask(t.task_id, ctx), 'danger') : null,
  ];
}

export function actionButton(label, action, onClick, extraClass = '') {
  const button = h('button', { type: 'button', class: `small ${extraClass}`.trim(), dataset: { action } },
    label);
  button.addEventListener('click', async () => {
    button.disabled = true;
    try {
      await onClick();
    } finally {
      button.disabled = false;
    }
  });
  return button;
}

/** Start a run and open it. */
export async function runTask(taskId, ctx) {
  try {
    const r = await post(`/tasks/${encodeURIComponent(taskId)}/run`);
    ctx.notice(`Run ${r.tracking_id} started`);
    ctx.navigate(`#/tasks/${encodeURIComponent(taskId)}/runs/${encodeURIComponent(r.tracking_id)}`);
  } catch (e) {
    ctx.showError(e);
  }
}

export async function terminateTask(taskId, ctx) {
  try {
    await post(`/tasks/${encodeURIComponent(taskId)}/terminate`);
    ctx.notice('Termination requested');
    ctx.refresh();
  } catch (e) {
    ctx.showError(e);
  }
}

/** Start or stop the task's schedule (batch-operation/tasks with one task). */
export async function batch(action, t, ctx) {
  try {
    const r = await post('/batch-operation/tasks', { action_id: action, list: [{ task_id: t.task_id }] });
    const failed = r.failure?.[0];
    if (failed) {
      ctx.showError(new ApiError(400, failed.error_code ?? 'FDI', failed.error_msg ?? action));
      return;
    }
    ctx.notice(`${t.task_name ?? t.task_id}: ${action === 'start' ? 'started' : 'stopped'}`);
    ctx.refresh();
  } catch (e) {
    ctx.showError(e);
  }
}

function pager(filters, total, ctx) {
  const pages = Math.max(1, Math.ceil(total / PAGE_SIZE));
  const go = (page) => () => ctx.navigate(monitorsHash({ ...filters, page }));
  return h('div', { class: 'pager' },
    h('button', { type: 'button', disabled: filters.page <= 1, onclick: go(filters.page - 1) }, '‹ Prev'),
    h('span', { class: 'page-info' }, `Page ${filters.page} of ${pages} · ${total} tasks`),
    h('button', { type: 'button', disabled: filters.page >= pages, onclick: go(filters.page + 1) }, 'Next ›'));
}
