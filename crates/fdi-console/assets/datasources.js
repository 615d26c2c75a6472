// Datasources, one page at a time, each with a test-connect button
// (POST datasources/{id}/test-connect with an empty body: the stored definition is tested).

import { get, post } from './api.js';
import { h, replace, time } from './ui.js';

const PAGE_SIZE = 20;

export async function datasourcesView(el, ctx) {
  const page = Math.max(1, Number.parseInt(ctx.query.get('page') ?? '1', 10) || 1);
  replace(el, h('h1', {}, 'Datasources'), h('p', { class: 'muted' }, 'Loading…'));
  const result = await get('/datasources', { offset: (page - 1) * PAGE_SIZE, limit: PAGE_SIZE },
    ctx.signal);
  if (ctx.signal.aborted) return;
  const list = result.entities ?? [];
  replace(el, h('h1', {}, 'Datasources'),
    list.length === 0 ? h('p', { class: 'muted empty' }, 'No datasource yet.') : datasourcesTable(list, ctx),
    pager(page, result.total ?? 0, ctx));
}

function datasourcesTable(list, ctx) {
  return h('table', { class: 'grid', id: 'datasources-table' },
    h('thead', {}, h('tr', {},
      ['Name', 'Type', 'App', 'Where', 'Created', 'Connection'].map((t) => h('th', {}, t)))),
    h('tbody', {}, list.map((d) => datasourceRow(d, ctx))));
}

function datasourceRow(d, ctx) {
  const result = h('span', { class: 'test-result' });
  const button = h('button', { type: 'button', class: 'small', dataset: { action: 'test-connect' } },
    'Test connection');
  button.addEventListener('click', () => testConnect(d, button, result, ctx));
  return h('tr', { dataset: { datasourceId: d.datasource_id, datasourceName: d.datasource_name } },
    h('td', {}, d.datasource_name),
    h('td', {}, d.datasource_type),
    h('td', {}, d.app_name ?? d.app_id ?? '—'),
    h('td', { class: 'mono small' }, where(d.content ?? {})),
    h('td', {}, time(d.create_time)),
    h('td', { class: 'actions' }, button, result));
}

/** Host, port and database (or the file / broker address) of a datasource, without secrets. */
function where(c) {
  if (c.host) {
    const db = c.database_name ? `/${c.database_name}` : '';
    return `${c.host}${c.port ? `:${c.port}` : ''}${db}`;
  }
  return c.url ?? c.bootstrap_servers ?? c.addresses ?? '—';
}

async function testConnect(d, button, result, ctx) {
  button.disabled = true;
  result.className = 'test-result pending';
  result.textContent = 'testing…';
  delete result.dataset.outcome;
  try {
    const r = await post(`/datasources/${encodeURIComponent(d.datasource_id)}/test-connect`, {});
    const ok = r?.result === true;
    result.className = `test-result ${ok ? 'ok' : 'bad'}`;
    result.dataset.outcome = ok ? 'success' : 'failure';
    result.textContent = ok ? '✔ connected' : '✘ not connected';
  } catch (e) {
    result.className = 'test-result bad';
    result.dataset.outcome = 'failure';
    result.textContent = `✘ ${e.code ?? 'ERROR'}`;
    ctx.showError(e);
  } finally {
    button.disabled = false;
  }
}

function pager(page, total, ctx) {
  const pages = Math.max(1, Math.ceil(total / PAGE_SIZE));
  const go = (p) => () => ctx.navigate(p > 1 ? `#/datasources?page=${p}` : '#/datasources');
  return h('div', { class: 'pager' },
    h('button', { type: 'button', disabled: page <= 1, onclick: go(page - 1) }, '‹ Prev'),
    h('span', { class: 'page-info' }, `Page ${page} of ${pages} · ${total} datasources`),
    h('button', { type: 'button', disabled: page >= pages, onclick: go(page + 1) }, 'Next ›'));
}
