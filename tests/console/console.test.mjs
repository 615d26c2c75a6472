// End-to-end tests of the web console in headless Chromium against a real fdi server, then the
// benchmark of its first page over 10,000 tasks. Run through tests/console/run.sh.
//
// 0. the page and its assets are served without a token (types, ETag / 304), unknown ones 404;
// 1. sign-in: a wrong token shows the FDI error code; the right one opens the task monitors;
// 2. task monitors list the task (filtered by name); Run opens the run's page;
// 3. the run's page shows a live progress bar whose rows read / percent move; Terminate ends
//    the run CANCELLED (and the target table holds no row: a cancelled run commits nothing);
//    again where the server has no event stream (its URL answered 404 in the browser): the page
//    polls the run every second, the progress moves, Terminate -> CANCELLED;
// 4. the run history lists the run CANCELLED; Start / Stop change the task's schedule state;
// 5. datasources: test-connect succeeds on a reachable datasource, and fails with its FDI code
//    on an unreachable one;
// 6. a run without a row estimate (progress null) shows an indeterminate bar, rows read, rows/s;
// 7. benchmark: 10,000 tasks (the first 200 through the API, the others cloned in the SQLite
//    store), time from navigation start to the monitors table's first render.
// A screenshot of every page goes to $CONSOLE_ARTIFACTS. Any failed assertion exits 1.

import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';

const TOKEN = `console-token-${process.pid}`;
const PROJECT = 'proj-console';
const INSTANCE = 'inst-console';
const BENCH_INSTANCE = 'inst-console-bench';
const ROWS = Number(process.env.CONSOLE_ROWS ?? 3_000_000);
const BENCH_TASKS = Number(process.env.CONSOLE_BENCH_TASKS ?? 10_000);
const BENCH_BAR_MS = 300;
const BENCH_TASKS_VIA_API = Number(process.env.CONSOLE_BENCH_TASKS_VIA_API ?? 200);
const ARTIFACTS = process.env.CONSOLE_ARTIFACTS ?? path.resolve('target/console-artifacts');
const FDI_BIN = process.env.FDI_BIN ?? path.resolve('target/debug/fdi');
const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
const SFX = `${Date.now().toString(36)}_${process.pid}`;
const SESSION_KEY = 'fdi.console.session';

const log = (...args) => console.log('[console]', ...args);
mkdirSync(ARTIFACTS, { recursive: true });

// ---- the server -------------------------------------------------------------------------------

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function startServer() {
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'fdi-console-'));
  const logPath = path.join(dataDir, 'fdi.log');
  const port = await freePort();
  const out = openSync(logPath, 'a');
  const env = { ...process.env, FDI_AUTH_TOKENS: TOKEN, RUST_LOG: process.env.RUST_LOG ?? 'info' };
  for (const k of ['FDI_LISTEN', 'FDI_DATA_DIR', 'FDI_STORE', 'FDI_FILES_ROOT']) delete env[k];
  const proc = spawn(FDI_BIN, ['serve', '--listen', `127.0.0.1:${port}`, '--data-dir', dataDir],
    { env, stdio: ['ignore', out, out] });
  const base = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline && proc.exitCode === null) {
    try {
      if ((await fetch(`${base}/health`)).ok) return { base, proc, dataDir, logPath };
    } catch {
      // not listening yet
    }
    await sleep(200);
  }
  throw new Error(`fdi did not become healthy:\n${tail(logPath)}`);
}

function tail(file, lines = 40) {
  try {
    return readFileSync(file, 'utf8').split('\n').slice(-lines).join('\n');
  } catch {
    return '';
  }
}

async function stopServer(server) {
  if (!server || server.proc.exitCode !== null) return;
  const exited = new Promise((r) => server.proc.once('exit', r));
  server.proc.kill('SIGTERM');
  await Promise.race([exited, sleep(20_000)]);
  if (server.proc.exitCode === null) server.proc.kill('SIGKILL');
}

/** The FDI API of one project / instance, as the test's setup calls it. */
class Api {
  constructor(base, instance) {
    this.fdi = `${base}/v2/${PROJECT}/fdi/instances/${instance}`;
    this.apps = `${base}/v2/${PROJECT}/instances/${instance}/apps`;
  }

  async call(method, url, body) {
    const resp = await fetch(url, {
      method,
      headers: { 'X-Auth-Token': TOKEN, 'Content-Type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await resp.text();
    const json = text ? JSON.parse(text) : null;
    if (!resp.ok) throw new Error(`${method} ${url}: ${resp.status} ${text}`);
    return json;
  }

  async createApp() {
    return (await this.call('POST', this.apps, { name: `console_app_${SFX}`, remark: 'console test' })).id;
  }

  async createDatasource(appId, name, content) {
    const r = await this.call('POST', `${this.fdi}/datasources`, {
      datasource_name: name, datasource_type: 'POSTGRESQL', app_id: appId, content,
    });
    return r.datasource_id;
  }

  async createTask(name, source, target, sourceTable, targetTable) {
    const r = await this.call('POST', `${this.fdi}/tasks`, {
      task: {
        task_name: name, task_type: 'TIMING', description: 'console test',
        source_datasource_id: source, target_datasource_id: target,
      },
      task_detail: JSON.stringify({
        sourceSelectedDatasource: { sourceTable },
        // Rows stream through the engine (and its progress) even though both tables live on one
        // server: no same-server INSERT ... SELECT shortcut.
        targetSelectedDatasource: { targetTable, isSupportInServerCopy: false },
      }),
    });
    return r.task.task_id;
  }
}

const pgContent = (port = '5432') => ({
  host: '127.0.0.1', port, database_name: 'test', user_name: 'postgres', password: 'pg-console-pw',
});

// ---- PostgreSQL ----------------------------------------------------------------------------------

function psql(sql) {
  return execFileSync('psql', ['-h', '127.0.0.1', '-U', 'postgres', '-d', 'test', '-v', 'ON_ERROR_STOP=1',
    '-tAqc', sql], { encoding: 'utf8' }).trim();
}

/** A source table of `rows` rows, kept between runs of the test (it takes seconds to fill). */
function ensureSourceTable(rows) {
  const name = `fdi_console_src_${rows}`;
  const exists = psql(`SELECT count(*) FROM pg_class WHERE relname = '${name}' AND relkind = 'r'`);
  if (exists === '1' && psql(`SELECT count(*) FROM ${name}`) === String(rows)) return name;
  log(`filling ${name} (${rows} rows)`);
  psql(`DROP TABLE IF EXISTS ${name}`);
  psql(`CREATE TABLE ${name} (id bigint PRIMARY KEY, name text, amount numeric(12,2), created timestamptz)`);
  psql(`INSERT INTO ${name} SELECT g, md5(g::text), g % 100000 / 100.0, timestamptz '2024-01-01' + g * interval '1 second' FROM generate_series(1, ${rows}) g`);
  psql(`ANALYZE ${name}`);
  return name;
}

function createTargetTable(what = 'dst') {
  const name = `fdi_console_${what}_${SFX}`;
  psql(`CREATE TABLE ${name} (id bigint PRIMARY KEY, name text, amount numeric(12,2), created timestamptz)`);
  return name;
}

// ---- browser helpers ---------------------------------------------------------------------------------

let shot = 0;
async function screenshot(page, name) {
  shot += 1;
  const file = path.join(ARTIFACTS, `${String(shot).padStart(2, '0')}-${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  log(`screenshot ${file}`);
}

async function signIn(page, base, token) {
  await page.goto(`${base}/`);
  await page.waitForSelector('#login-form');
  await page.fill('input[name=token]', token);
  await page.fill('input[name=project_id]', PROJECT);
  await page.fill('input[name=instance_id]', INSTANCE);
  await page.click('#login-form button[type=submit]');
}

const runState = (page) => page.$eval('#run-progress', (el) => ({
  progress: el.dataset.progress === '' ? null : Number(el.dataset.progress),
  read: el.dataset.readCount === '' ? null : Number(el.dataset.readCount),
  status: document.querySelector('#run-status')?.dataset.status,
  live: document.querySelector('#run-live')?.textContent,
}));

/**
 * On a run's page: the run is RUNNING, followed live by `mode` ('event stream' or 'polling'), its
 * rows read / percent move; Terminate ends it CANCELLED. Returns the run's id.
 */
async function watchRunAndTerminate(page, mode, name) {
  await page.waitForSelector('#run-status[data-status=RUNNING]', { timeout: 30_000 });
  const runId = decodeURIComponent(new URL(page.url()).hash.split('/').pop());
  const samples = [];
  const moved = (a, b) => a && b && (b.read > a.read || b.progress > a.progress);
  const deadline = Date.now() + 20_000;
  while (Date.now() < deadline) {
    const s = await runState(page);
    samples.push(s);
    const first = samples.find((x) => x.read !== null || x.progress !== null);
    if (s.status !== 'RUNNING' || (moved(first, s) && samples.length >= 3)) break;
    await sleep(400);
  }
  const last = samples.at(-1);
  const first = samples.find((x) => x.read !== null || x.progress !== null);
  log(`run ${runId} (${mode}): ${samples.length} samples, first ${JSON.stringify(first)}, last ${JSON.stringify(last)}`);
  assert.equal(last.status, 'RUNNING', `the run is still running while watched (${ROWS} rows)`);
  assert.ok(moved(first, last), `the progress moves: ${JSON.stringify(samples)}`);
  assert.ok(last.live.includes(mode), `followed by ${mode}: ${last.live}`);
  assert.match(await page.textContent('#read-count'), /rows read/);
  assert.equal(await page.getAttribute('#progress-bar', 'role'), 'progressbar');
  await screenshot(page, `${name}-running`);
  await page.click('#view button[data-action=terminate]');
  await page.waitForSelector('#run-status[data-status=CANCELLED]', { timeout: 20_000 });
  assert.ok(await page.locator('#run-timeline li.step').count() >= 1, 'the run shows its steps');
  assert.equal(await page.locator('#view button[data-action=terminate]').count(), 0,
    'no terminate button on an ended run');
  await screenshot(page, `${name}-cancelled`);
  return runId;
}

// ---- the scenario ------------------------------------------------------------------------------------

async function consoleScenario(browser, server) {
  const api = new Api(server.base, INSTANCE);
  const app = await api.createApp();
  const source = ensureSourceTable(ROWS);
  const target = createTargetTable();
  const srcDs = await api.createDatasource(app, `console_src_${SFX}`, pgContent());
  const dstDs = await api.createDatasource(app, `console_dst_${SFX}`, pgContent());
  const deadDs = await api.createDatasource(app, `console_dead_${SFX}`, pgContent('1'));
  const taskName = `console_copy_${SFX}`;
  const taskId = await api.createTask(taskName, srcDs, dstDs, source, target);
  log(`task ${taskId}: ${source} -> ${target}`);

  // 0. the page and its assets are served without a token; an unknown asset is an FDI 404
  const index = await fetch(`${server.base}/`);
  assert.equal(index.status, 200);
  assert.equal(index.headers.get('content-type'), 'text/html; charset=utf-8');
  assert.equal(index.headers.get('cache-control'), 'no-cache');
  assert.match(await index.text(), /src="\/console\/app\.js"/);
  const script = await fetch(`${server.base}/console/app.js`);
  assert.equal(script.headers.get('content-type'), 'text/javascript; charset=utf-8');
  const again = await fetch(`${server.base}/console/app.js`,
    { headers: { 'If-None-Match': script.headers.get('etag') } });
  assert.equal(again.status, 304, 'an unchanged asset is not sent again');
  const missing = await fetch(`${server.base}/console/no-such-file.js`);
  assert.equal(missing.status, 404);
  assert.match((await missing.json()).error_code, /^FDI\.\d+$/);

  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  try {
    // 1. sign-in
    await signIn(page, server.base, 'not-the-token');
    await page.waitForSelector('#error:not([hidden])');
    const code = await page.getAttribute('#error', 'data-code');
    assert.match(code ?? '', /^FDI\.\d+$/, 'a wrong token shows the FDI error code');
    assert.equal(await page.evaluate((k) => sessionStorage.getItem(k), SESSION_KEY), null,
      'a refused token is not kept');
    await screenshot(page, 'login-refused');
    await signIn(page, server.base, TOKEN);
    await page.waitForSelector('#monitors-table');
    const kept = JSON.parse(await page.evaluate((k) => sessionStorage.getItem(k), SESSION_KEY));
    assert.deepEqual(kept, { token: TOKEN, project_id: PROJECT, instance_id: INSTANCE });
    assert.ok(!page.url().includes(TOKEN), 'the token never appears in the URL');

    // 2. task monitors, filtered by the task's name
    await page.fill('#monitor-filters input[name=task_name]', taskName);
    await page.click('#monitor-filters button[type=submit]');
    await page.waitForFunction((n) => location.hash.includes(encodeURIComponent(n))
      && document.querySelectorAll('#monitors-table tbody tr').length === 1, taskName);
    const row = page.locator(`#monitors-table tr[data-task-id="${taskId}"]`);
    assert.equal(await row.locator('.task-link').textContent(), taskName);
    await screenshot(page, 'monitors');
    await page.fill('#monitor-filters input[name=task_name]', `no_such_task_${SFX}`);
    await page.click('#monitor-filters button[type=submit]');
    await page.waitForSelector('#view .empty');
    assert.match(await page.textContent('#view .empty'), /No task matches/);
    await page.fill('#monitor-filters input[name=task_name]', taskName);
    await page.click('#monitor-filters button[type=submit]');
    await page.waitForSelector(`#monitors-table tr[data-task-id="${taskId}"]`);

    // 3. run it: the run's page, live progress from the event stream, terminate -> CANCELLED
    await row.locator('button[data-action=run]').click();
    const runId = await watchRunAndTerminate(page, 'event stream', 'run');
    assert.equal(psql(`SELECT count(*) FROM ${target}`), '0', 'a cancelled run commits nothing');

    // 3b. the same where the server has no event stream (an older server, simulated by answering
    // the stream's URL 404 in the browser): the page polls the run every second instead.
    await page.route('**/events', (route) => route.fulfill({
      status: 404, contentType: 'application/json',
      body: JSON.stringify({ error_code: 'FDI.3001', error_msg: 'no route' }),
    }));
    await page.click('#view button[data-action=run]');
    await page.waitForFunction((prev) => !location.hash.endsWith(prev), encodeURIComponent(runId));
    await watchRunAndTerminate(page, 'polling', 'run-polled');
    await page.unroute('**/events');
    assert.equal(psql(`SELECT count(*) FROM ${target}`), '0', 'a cancelled run commits nothing');

    // 4. the run history
    await page.click(`.crumbs a[href^="#/tasks/"]`);
    await page.waitForSelector(`#runs-table tr[data-run-id="${runId}"]`);
    assert.equal(
      (await page.textContent(`#runs-table tr[data-run-id="${runId}"] .status`)).trim(), 'CANCELLED');
    assert.match(await page.textContent('#run-overview'), /2\s+cancelled/);
    await screenshot(page, 'run-history');
    // start / stop the task's schedule (a plan that fires once a year) from the history page
    await api.call('POST', `${api.fdi}/tasks/${taskId}/dispatches`,
      { use_quartz_cron: true, cron: '0 0 3 1 1 ?', remark: 'console test' });
    const started = async () => (await api.call('GET',
      `${api.fdi}/task-monitors?task_name=${encodeURIComponent(taskName)}`)).entities[0].status;
    const toolbar = (action) => page.locator(`#view .toolbar button[data-action=${action}]`);
    assert.equal(await toolbar('stop').count(), 0, 'a stopped task offers Start only');
    await toolbar('start').click();
    await toolbar('stop').waitFor();
    assert.equal(await toolbar('start').count(), 0, 'a started task offers Stop only');
    assert.equal(await started(), 1, 'Start started the task');
    await toolbar('stop').click();
    await toolbar('start').waitFor();
    assert.equal(await started(), 0, 'Stop stopped the task');

    // 5. datasources: test-connect
    await page.click('a[data-nav=datasources]');
    await page.waitForSelector('#datasources-table');
    await page.click(`tr[data-datasource-id="${srcDs}"] button[data-action=test-connect]`);
    await page.waitForSelector(`tr[data-datasource-id="${srcDs}"] .test-result[data-outcome]`);
    assert.equal(await page.getAttribute(`tr[data-datasource-id="${srcDs}"] .test-result`, 'data-outcome'),
      'success');
    await page.click(`tr[data-datasource-id="${deadDs}"] button[data-action=test-connect]`);
    await page.waitForSelector(`tr[data-datasource-id="${deadDs}"] .test-result[data-outcome]`, { timeout: 30_000 });
    assert.equal(await page.getAttribute(`tr[data-datasource-id="${deadDs}"] .test-result`, 'data-outcome'),
      'failure');
    assert.match(await page.getAttribute('#error', 'data-code') ?? '', /^FDI\.\d+$/,
      'a failed test-connect shows its FDI code');
    await screenshot(page, 'datasources');

    // 6. a run whose source gave no row estimate (progress null): an indeterminate bar with the
    // rows read and the rate (the page's own renderer, fed such an entry)
    const unknown = await page.evaluate(async () => {
      const { renderProgress } = await import('/console/runs.js');
      const box = document.createElement('section');
      renderProgress(box, { execute_status: 'RUNNING', progress: null, read_count: 5000,
        total_count: null, rows_per_second: 1234.5, remaining_time: null }, null);
      const bar = box.querySelector('[role=progressbar]');
      return { indeterminate: bar.classList.contains('indeterminate'),
        valuenow: bar.getAttribute('aria-valuenow'), text: box.textContent };
    });
    assert.equal(unknown.indeterminate, true, JSON.stringify(unknown));
    assert.equal(unknown.valuenow, null, 'no percent is invented');
    assert.match(unknown.text, /5,000 rows read/);
    assert.match(unknown.text, /1,235 rows\/s/);
    assert.doesNotMatch(unknown.text, /ETA|%/);
  } catch (e) {
    await screenshot(page, 'failure').catch(() => {});
    throw e;
  } finally {
    await page.close();
    psql(`DROP TABLE IF EXISTS ${target}`);
  }
}

// ---- the benchmark: first render of the monitors table over many tasks ------------------------------------

async function inParallel(n, width, make) {
  let next = 0;
  const worker = async () => {
    while (next < n) {
      const i = next++;
      await make(i);
    }
  };
  await Promise.all(Array.from({ length: width }, worker));
}

const benchTaskName = (i) => `bench_task_${String(i).padStart(5, '0')}`;

/** Copies of the task `name` in the server's SQLite store, named benchTaskName(from..to-1). */
function cloneTasks(server, name, from, to) {
  if (from >= to) return;
  const sql = `
    WITH RECURSIVE n(i) AS (SELECT ${from} UNION ALL SELECT i + 1 FROM n WHERE i < ${to - 1})
    INSERT INTO fdi_tasks (id, project_id, instance_id, name, task_type, source_ds, target_ds,
                           description, task_tag, task_detail, created, updated, kind)
    SELECT lower(hex(randomblob(16))), t.project_id, t.instance_id, printf('bench_task_%05d', n.i),
           t.task_type, t.source_ds, t.target_ds, t.description, t.task_tag, t.task_detail,
           t.created + n.i, t.updated + n.i, t.kind
    FROM n, (SELECT * FROM fdi_tasks WHERE project_id = '${PROJECT}'
             AND instance_id = '${BENCH_INSTANCE}' AND name = '${name}') t;`;
  execFileSync('sqlite3', ['-cmd', '.timeout 10000', path.join(server.dataDir, 'fdi.db'), sql]);
}

/** When the monitors table rendered, and when the page's parts arrived (ms after navigation start). */
async function firstRender(page) {
  await page.waitForSelector('#monitors-table');
  return page.evaluate(() => {
    const at = (re, key) => performance.getEntriesByType('resource').find((e) => re.test(e.name))?.[key];
    return {
      rendered: performance.getEntriesByName('fdi:monitors-table-rendered')[0].startTime,
      html: performance.getEntriesByType('navigation')[0]?.responseEnd,
      prefetch: performance.getEntriesByName('fdi:prefetch-sent')[0]?.startTime,
      scripts: Math.max(...performance.getEntriesByType('resource')
        .filter((e) => e.name.endsWith('.js')).map((e) => e.responseEnd)),
      apiStart: at(/task-monitors/, 'startTime'),
      apiEnd: at(/task-monitors/, 'responseEnd'),
    };
  });
}

const breakdown = (t) => ['html', 'prefetch', 'scripts', 'apiStart', 'apiEnd', 'rendered']
  .map((k) => `${k} ${t[k] === undefined ? '?' : t[k].toFixed(0)}`).join(', ') + ' ms';

async function benchmark(browser, server) {
  const api = new Api(server.base, BENCH_INSTANCE);
  const app = await api.createApp();
  const source = ensureSourceTable(ROWS);
  const src = await api.createDatasource(app, `bench_src_${SFX}`, pgContent());
  const dst = await api.createDatasource(app, `bench_dst_${SFX}`, pgContent());
  // The first tasks through the API, the rest cloned from them in the SQLite store (10,000 through
  // the API take ~9 min on a loaded 2-core machine; creating a task writes only its fdi_tasks row).
  const viaApi = Math.min(BENCH_TASKS, BENCH_TASKS_VIA_API);
  const target = createTargetTable('bench');
  const t0 = Date.now();
  try {
    await inParallel(viaApi, 16, (i) => api.createTask(benchTaskName(i), src, dst, source, target));
  } finally {
    psql(`DROP TABLE IF EXISTS ${target}`);
  }
  const t1 = Date.now();
  cloneTasks(server, benchTaskName(0), viaApi, BENCH_TASKS);
  log(`created ${viaApi} tasks through the API in ${((t1 - t0) / 1000).toFixed(1)} s, ` +
    `${BENCH_TASKS - viaApi} more in the store in ${((Date.now() - t1) / 1000).toFixed(1)} s`);
  const apiMs = [];
  for (let i = 0; i < 5; i++) {
    const t = performance.now();
    const page = await api.call('GET', `${api.fdi}/task-monitors?offset=1&limit=20`);
    apiMs.push(performance.now() - t);
    assert.equal(page.total, BENCH_TASKS, 'the server counts every task');
  }
  apiMs.sort((a, b) => a - b);
  log(`GET task-monitors (first page of ${BENCH_TASKS}) from node: median ${apiMs[2].toFixed(0)} ms`);

  const session = JSON.stringify({ token: TOKEN, project_id: PROJECT, instance_id: BENCH_INSTANCE });
  // Cold: a new browser context each time (nothing cached); warm: reloads of one page.
  const cold = [];
  const warm = [];
  for (let c = 0; c < 3; c++) {
    const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    await context.addInitScript(([key, value]) => sessionStorage.setItem(key, value), [SESSION_KEY, session]);
    const page = await context.newPage();
    await page.goto(`${server.base}/#/monitors`);
    cold.push(await firstRender(page));
    if (c === 0) {
      assert.equal(await page.locator('#monitors-table tbody tr').count(), 20, 'one page of 20 tasks');
      assert.match(await page.textContent('.page-info'),
        new RegExp(`Page 1 of ${Math.ceil(BENCH_TASKS / 20)} · ${BENCH_TASKS} tasks`));
      await screenshot(page, `monitors-${BENCH_TASKS}-tasks`);
      for (let i = 0; i < 5; i++) {
        await page.reload();
        warm.push(await firstRender(page));
      }
    }
    await context.close();
  }
  const byRender = (a, b) => a.rendered - b.rendered;
  cold.sort(byRender);
  warm.sort(byRender);
  const coldMedian = cold[1];
  const warmMedian = warm[2];
  log(`median cold load: ${breakdown(coldMedian)}`);
  log(`median warm load: ${breakdown(warmMedian)}`);
  const verdict = coldMedian.rendered < BENCH_BAR_MS ? 'under' : 'OVER';
  log(`BENCHMARK monitors first render over ${BENCH_TASKS} tasks (navigation start -> table rendered): ` +
    `cold median ${coldMedian.rendered.toFixed(0)} ms (of ${cold.map((t) => t.rendered.toFixed(0)).join(', ')}), ` +
    `warm median ${warmMedian.rendered.toFixed(0)} ms (of ${warm.map((t) => t.rendered.toFixed(0)).join(', ')}); ` +
    `bar ${BENCH_BAR_MS} ms: ${verdict}`);
}

// ---- main ------------------------------------------------------------------------------------------------

let server;
let browser;
let failed = false;
try {
  server = await startServer();
  log(`fdi at ${server.base} (data dir ${server.dataDir})`);
  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox'] });
  await consoleScenario(browser, server);
  log('console scenario: PASS');
  if (BENCH_TASKS > 0) await benchmark(browser, server);
} catch (e) {
  failed = true;
  console.error('[console] FAIL:', e);
  if (server) {
    console.error(`[console] fdi log tail:\n${tail(server.logPath)}`);
    try {
      copyFileSync(server.logPath, path.join(ARTIFACTS, 'fdi.log'));
    } catch {
      // no log
    }
  }
} finally {
  await browser?.close();
  await stopServer(server);
  if (server && !failed) rmSync(server.dataDir, { recursive: true, force: true });
}
process.exit(failed ? 1 : 0);
