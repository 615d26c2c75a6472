// A task's run history (paged) and one run's detail: its steps as a timeline and, while it
// runs, a live progress bar fed by the run's event stream (or by polling where there is none).

import { get } from './api.js';
import { count, duration, h, isActive, rate, replace, size, statusClass, time } from './ui.js';
import { RateMeter, followRun } from './live.js';
import { actionButton, batch, runTask, terminateTask } from './monitors.js';

const RUNS_PAGE_SIZE = 20;

const taskPath = (taskId) => `/tasks/${encodeURIComponent(taskId)}`;

/** The task's definition, or null for a combination (CDC) task, which `tasks/{id}` does not show. */
async function taskOrNull(taskId, signal) {
  try {
    const t = await get(taskPath(taskId), undefined, signal);
    return t.task ?? t;
  } catch (e) {
    if (e.name === 'AbortError') throw e;
    return null;
  }
}
const runsHash = (taskId, page) =>
  `#/tasks/${encodeURIComponent(taskId)}/runs${page > 1 ? `?page=${page}` : ''}`;
const runHash = (taskId, runId) =>
  `#/tasks/${encodeURIComponent(taskId)}/runs/${encodeURIComponent(runId)}`;

// ---- run history ---------------------------------------------------------------------------

export async function runsView(el, ctx, taskId) {
  const page = Math.max(1, Number.parseInt(ctx.query.get('page') ?? '1', 10) || 1);
  replace(el, h('p', { class: 'muted' }, 'Loading…'));
  const [info, overview, runs] = await Promise.all([
    taskOrNull(taskId, ctx.signal),
    get(`${taskPath(taskId)}/monitor-overview`, undefined, ctx.signal),
    get(`${taskPath(taskId)}/monitor-logs`, { offset: page, limit: RUNS_PAGE_SIZE }, ctx.signal),
  ]);
  if (ctx.signal.aborted) return;
  const entities = runs.entities ?? [];
  const summary = {
    task_id: taskId,
    task_name: overview.task_name ?? info?.task_name ?? taskId,
    // tasks/{id} says "running" / "stop" (started or not); task-monitors say 1 / 0.
    status: info ? Number(info.status === 'running' || info.status === 1) : undefined,
    execute_status: entities[0]?.execute_status,
  };
  replace(el,
    h('p', { class: 'crumbs' }, h('a', { href: '#/monitors' }, 'Task monitors'), ' › ', summary.task_name),
    h('h1', {}, summary.task_name, ' ', h('span', { class: 'muted small' }, 'run history')),
    h('div', { class: 'toolbar' }, overviewLine(overview), h('span', { class: 'spacer' }),
      historyActions(summary, ctx)),
    runsTable(taskId, entities),
    runsPager(taskId, page, runs.total ?? 0, ctx));
}

function overviewLine(o) {
  const item = (label, n, cls) => h('span', { class: `stat ${cls}` }, h('b', {}, count(n)), ` ${label}`);
  return h('div', { class: 'stats', id: 'run-overview' },
    item('runs', o.total_num, ''), item('success', o.success_num, 'ok'),
    item('error', o.error_num, 'bad'), item('running', o.running_num, 'run'),
    item('cancelled', o.cancel_num, 'muted'));
}

function historyActions(t, ctx) {
  const known = t.status === 0 || t.status === 1;
  return h('div', { class: 'actions' },
    actionButton('Run', 'run', () => runTask(t.task_id, ctx)),
    !known || t.status === 0 ? actionButton('Start', 'start', () => batch('start', t, ctx)) : null,
    !known || t.status === 1 ? actionButton('Stop', 'stop', () => batch('stop', t, ctx)) : null,
    isActive(t.execute_status)
      ? actionButton('Terminate', 'terminate', () => terminateTask(t.task_id, ctx), 'danger')
      : null);
}

function runsTable(taskId, runs) {
  if (runs.length === 0) return h('p', { class: 'muted empty' }, 'This task has not run yet.');
  return h('table', { class: 'grid', id: 'runs-table' },
    h('thead', {}, h('tr', {},
      ['Run', 'Status', 'Start', 'End', 'Duration', 'Rows', 'Dirty', 'Size', 'Remarks']
        .map((t) => h('th', {}, t)))),
    h('tbody', {}, runs.map((r) => h('tr', { dataset: { runId: r.id } },
      h('td', {}, h('a', { href: runHash(taskId, r.id), class: 'run-link mono' }, shortId(r.id))),
      h('td', {}, h('span', { class: statusClass(r.execute_status) }, r.execute_status)),
      h('td', {}, time(r.start_time)),
      h('td', {}, time(r.end_time)),
      h('td', {}, duration(r.spend_time)),
      h('td', { class: 'num' }, count(r.data_count)),
      h('td', { class: 'num' }, count(r.dirty_data_count)),
      h('td', { class: 'num' }, size(r.data_size, r.data_size_unit)),
      h('td', { class: 'remarks' }, r.remarks ?? '')))));
}

function runsPager(taskId, page, total, ctx) {
  const pages = Math.max(1, Math.ceil(total / RUNS_PAGE_SIZE));
  return h('div', { class: 'pager' },
    h('button', { type: 'button', disabled: page <= 1, onclick: () => ctx.navigate(runsHash(taskId, page - 1)) }, '‹ Prev'),
    h('span', { class: 'page-info' }, `Page ${page} of ${pages} · ${total} runs`),
    h('button', { type: 'button', disabled: page >= pages, onclick: () => ctx.navigate(runsHash(taskId, page + 1)) }, 'Next ›'));
}

function shortId(id) {
  return String(id ?? '').length > 12 ? `${String(id).slice(0, 8)}…` : id;
}

// ---- one run ---------------------------------------------------------------------------------

export async function runView(el, ctx, taskId, runId) {
  replace(el, h('p', { class: 'muted' }, 'Loading…'));
  const [task, first] = await Promise.all([
    get(`${taskPath(taskId)}/monitor-overview`, undefined, ctx.signal),
    get(`${taskPath(taskId)}/monitor-logs/${encodeURIComponent(runId)}`, undefined, ctx.signal),
  ]);
  if (ctx.signal.aborted) return;
  const name = task.task_name ?? taskId;
  const parts = {
    status: h('span', { id: 'run-status' }),
    progress: h('section', { class: 'card progress-card', id: 'run-progress' }),
    numbers: h('dl', { class: 'facts', id: 'run-facts' }),
    timeline: h('ol', { class: 'timeline', id: 'run-timeline' }),
    actions: h('div', { class: 'actions' }),
    live: h('span', { class: 'muted small', id: 'run-live' }),
  };
  replace(el,
    h('p', { class: 'crumbs' }, h('a', { href: '#/monitors' }, 'Task monitors'), ' › ',
      h('a', { href: runsHash(taskId, 1) }, name), ' › run'),
    h('h1', {}, 'Run ', h('span', { class: 'mono' }, runId), ' ', parts.status),
    h('div', { class: 'toolbar' }, parts.live, h('span', { class: 'spacer' }), parts.actions),
    parts.progress, parts.numbers,
    h('h2', {}, 'Steps'), parts.timeline);

  const meter = new RateMeter();
  let entry = first;
  const render = () => renderRun(parts, entry, meter.value, { taskId, runId, ctx });
  meter.sample(entry.read_count);
  render();
  if (!isActive(entry.execute_status)) return;
  const stop = followRun(taskId, runId, {
    onEntry(update, mode) {
      entry = { ...entry, ...update };
      meter.sample(entry.read_count);
      parts.live.textContent = mode === 'stream' ? '● live (event stream)' : '● live (polling every 1 s)';
      render();
    },
    onEnd(update) {
      entry = { ...entry, ...update };
      parts.live.textContent = 'ended';
      render();
    },
    onError: ctx.showError,
  });
  ctx.signal.addEventListener('abort', stop, { once: true });
}

function renderRun(parts, entry, measuredRate, { taskId, runId, ctx }) {
  const active = isActive(entry.execute_status);
  parts.status.className = statusClass(entry.execute_status);
  parts.status.textContent = entry.execute_status ?? '—';
  parts.status.dataset.status = entry.execute_status ?? '';
  replace(parts.actions,
    active
      ? actionButton('Terminate', 'terminate', () => terminateTask(taskId, ctx), 'danger')
      : actionButton('Run again', 'run', () => runTask(taskId, ctx)),
    h('a', { class: 'button small', href: runHash(taskId, runId) }, 'Reload'));
  renderProgress(parts.progress, entry, measuredRate);
  renderFacts(parts.numbers, entry);
  replace(parts.timeline, (entry.detail_logs ?? []).map(stepItem));
  if ((entry.detail_logs ?? []).length === 0) {
    parts.timeline.append(h('li', { class: 'muted' }, 'No step recorded yet.'));
  }
}

/**
 * The progress bar: determinate with `progress` (0..100); indeterminate when the source gave no
 * estimate (`progress` null), always with the rows read and the rate.
 */
export function renderProgress(box, entry, measuredRate) {
  const active = isActive(entry.execute_status);
  const known = typeof entry.progress === 'number';
  const percent = known ? Math.max(0, Math.min(100, entry.progress))
    : entry.execute_status === 'SUCCESS' ? 100 : null;
  const rowsPerSecond = typeof entry.rows_per_second === 'number' ? entry.rows_per_second : measuredRate;
  const fill = h('div', { class: 'fill', style: percent === null ? {} : { width: `${percent}%` } });
  const bar = h('div', {
    class: `bar ${percent === null ? 'indeterminate' : ''} ${active ? 'active' : 'done'}`,
    role: 'progressbar', 'aria-valuemin': '0', 'aria-valuemax': '100',
    'aria-valuenow': percent === null ? null : String(percent), id: 'progress-bar',
    dataset: { status: entry.execute_status ?? '' },
  }, fill);
  box.dataset.progress = percent === null ? '' : String(percent);
  box.dataset.readCount = String(entry.read_count ?? '');
  const step = entry.current_step;
  replace(box,
    h('div', { class: 'progress-head' },
      h('span', { class: 'percent' }, percent === null ? (active ? 'working…' : '—') : `${percent}%`),
      h('span', { class: 'rows', id: 'read-count' },
        `${count(entry.read_count)} rows read`,
        typeof entry.total_count === 'number' ? ` of ~${count(entry.total_count)}` : ''),
      h('span', { class: 'rate', id: 'rows-per-second' }, active ? rate(rowsPerSecond) : ''),
      h('span', { class: 'eta' },
        active && typeof entry.remaining_time === 'number' ? `ETA ${duration(entry.remaining_time)}` : '')),
    bar,
    step ? h('div', { class: 'current-step' }, 'Now: ', h('b', {}, step.stage ?? `step ${step.status}`),
      step.remarks ? ` — ${step.remarks}` : '') : null);
}

function renderFacts(dl, e) {
  const fact = (term, value) => [h('dt', {}, term), h('dd', {}, value)];
  replace(dl,
    fact('Started', time(e.start_time)),
    fact('Ended', time(e.end_time)),
    fact('Duration', duration(e.spend_time)),
    fact('Rows written', count(e.data_count)),
    fact('Dirty rows', count(e.dirty_data_count)),
    fact('Size', size(e.data_size, e.data_size_unit)),
    e.remarks ? fact('Remarks', e.remarks) : null);
}

/** One step of the timeline (a TaskMonitorDetailLog), with its sub-steps where it has parts. */
function stepItem(step) {
  const subSteps = step.sub_steps ?? [];
  return h('li', { class: `step ${String(step.position_status ?? '').toLowerCase()}`, dataset: { code: step.status } },
    h('div', { class: 'step-head' },
      h('span', { class: 'code' }, step.status),
      h('b', {}, step.stage ?? ''),
      h('span', { class: 'muted' }, [step.position, step.position_status].filter(Boolean).join(' · ')),
      h('span', { class: 'spacer' }),
      h('span', { class: 'muted small' }, time(step.step_begin_time)),
      h('span', { class: 'muted small' }, step.spend_time ? duration(step.spend_time) : '')),
    step.remarks ? h('div', { class: 'remarks' }, step.remarks) : null,
    step.data_count ? h('div', { class: 'small' }, `${count(step.data_count)} rows`,
      step.dirty_data_count ? `, ${count(step.dirty_data_count)} dirty` : '') : null,
    subSteps.length ? h('ol', { class: 'timeline sub' }, subSteps.map(stepItem)) : null);
}
