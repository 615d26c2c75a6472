// End-to-end tests of the web console in headless Chromium against a real fdi server, then the
// benchmark of its first page over 10,000 tasks. Run through tests/console/run.sh.
//
// 1. sign-in: a wrong token shows the FDI error code; the right one opens the task monitors;
// 2. task monitors list the task (filtered by name); Run opens the run's page;
// 3. the run's page shows a live progress bar whose rows read / percent move; Terminate ends
//    the run CANCELLED (and the target table holds no row: a cancelled run commits nothing);
// 4. the run history lists the run CANCELLED;
// 5. datasources: test-connect succeeds on a reachable datasource, and fails with its FDI code
//    on an unreachable one;
// 6. benchmark: 10,000 tasks, time from navigation start to the monitors table's first render.
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

function createTargetTable() {
  const name = `fdi_console_dst_${SFX}`;
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

    // 3. run it: the run's page, live progress, terminate -> CANCELLED
    await row.locator('button[data-action=run]').click();
    await page.waitForSelector('#run-status[data-status=RUNNING]', { timeout: 30_000 });
    const runId = decodeURIComponent(new URL(page.url()).hash.split('/').pop());
    const samples = [];
    const movedBy = Date.now() + 20_000;
    while (Date.now() < movedBy) {
      const s = await runState(page);
      samples.push(s);
      const first = samples.find((x) => x.read !== null || x.progress !== null);
      if (s.status !== 'RUNNING') break;
      if (first && (s.read > first.read || s.progress > first.progress) && samples.length >= 3) break;
      await sleep(400);
    }
    const last = samples.at(-1);
    const first = samples.find((x) => x.read !== null || x.progress !== null);
    log(`run ${runId}: ${samples.length} samples, first ${JSON.stringify(first)}, last ${JSON.stringify(last)}`);
    assert.equal(last.status, 'RUNNING', `the run is still running while watched (${ROWS} rows)`);
    assert.ok(first && (last.read > first.read || last.progress > first.progress),
      `the progress moves: ${JSON.stringify(samples)}`);
    assert.match(await page.textContent('#read-count'), /rows read/);
    assert.equal(await page.getAttribute('#progress-bar', 'role'), 'progressbar');
    await screenshot(page, 'run-running');
    await page.click('#view button[data-action=terminate]');
    await page.waitForSelector('#run-status[data-status=CANCELLED]', { timeout: 20_000 });
    assert.ok(await page.locator('#run-timeline li.step').count() >= 1, 'the run shows its steps');
    assert.equal(await page.locator('#view button[data-action=terminate]').count(), 0,
      'no terminate button on an ended run');
    await screenshot(page, 'run-cancelled');
    assert.equal(psql(`SELECT count(*) FROM ${target}`), '0', 'a cancelled run commits nothing');

    // 4. the run history
    await page.click(`.crumbs a[href^="#/tasks/"]`);
    await page.waitForSelector(`#runs-table tr[data-run-id="${runId}"]`);
    assert.equal(
      (await page.textContent(`#runs-table tr[data-run-id="${runId}"] .status`)).trim(), 'CANCELLED');
    assert.match(await page.textContent('#run-overview'), /1\s+cancelled/);
    await screenshot(page, 'run-history');

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

async function benchmark(browser, server) {
  const api = new Api(server.base, BENCH_INSTANCE);
  const app = await api.createApp();
  const source = ensureSourceTable(ROWS);
  const src = await api.createDatasource(app, `bench_src_${SFX}`, pgContent());
  const dst = await api.createDatasource(app, `bench_dst_${SFX}`, pgContent());
  const t0 = Date.now();
  await inParallel(BENCH_TASKS, 16, (i) =>
    api.createTask(`bench_task_${String(i).padStart(5, '0')}`, src, dst, source, `bench_target_${i}`));
  log(`created ${BENCH_TASKS} tasks through the API in ${((Date.now() - t0) / 1000).toFixed(1)} s`);

  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  await context.addInitScript(([key, value]) => sessionStorage.setItem(key, value),
    [SESSION_KEY, JSON.stringify({ token: TOKEN, project_id: PROJECT, instance_id: BENCH_INSTANCE })]);
  const page = await context.newPage();
  const firstRender = async () => {
    await page.waitForSelector('#monitors-table');
    return page.evaluate(() => performance.getEntriesByName('fdi:monitors-table-rendered')[0].startTime);
  };
  await page.goto(`${server.base}/#/monitors`);
  const cold = await firstRender();
  assert.equal(await page.locator('#monitors-table tbody tr').count(), 20, 'one page of 20 tasks');
  assert.match(await page.textContent('.page-info'), new RegExp(`Page 1 of ${Math.ceil(BENCH_TASKS / 20)} · ${BENCH_TASKS} tasks`));
  await screenshot(page, `monitors-${BENCH_TASKS}-tasks`);
  const warm = [];
  for (let i = 0; i < 5; i++) {
    await page.reload();
    warm.push(await firstRender());
  }
  await context.close();
  warm.sort((a, b) => a - b);
  const median = warm[Math.floor(warm.length / 2)];
  const verdict = Math.max(cold, median) < BENCH_BAR_MS ? 'under' : 'OVER';
  log(`BENCHMARK monitors first render over ${BENCH_TASKS} tasks (navigation start -> table rendered): ` +
    `cold ${cold.toFixed(0)} ms, warm median ${median.toFixed(0)} ms ` +
    `(min ${warm[0].toFixed(0)}, max ${warm.at(-1).toFixed(0)}); bar ${BENCH_BAR_MS} ms: ${verdict}`);
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
