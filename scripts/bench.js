'use strict';
/**
 * npm run bench (issue 7): koci against runc and crun, and against Node's own
 * start, in one interleaved run on this machine. Bench tooling, not koci:
 * it installs runc/crun with apt-get when missing, and re-executes itself in
 * a private mount namespace where /sys/fs/cgroup/unified is unmounted, so
 * that every runtime (crun 1.8 refuses the v1/v2 hybrid layout) sees the
 * same cgroup v1 host.
 *
 * Writes bench/results.md, bench/latency.svg and README.md's table between
 * <!-- bench:begin --> and <!-- bench:end -->.
 *
 * Knobs (environment): BENCH_ROUNDS (30), BENCH_WARMUP (3),
 * BENCH_BATCH_ROUNDS (3), BENCH_RSS_ROUNDS (10), BENCH_PROFILE_RUNS (5),
 * BENCH_NO_WRITE=1 (print only).
 */
const { spawnSync, spawn, execFileSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const REPO = path.resolve(__dirname, '..');
const KOCI = path.join(REPO, 'dist', 'lib', 'cli', 'main.js');
// the flags koci's own Node processes start with (the profile starts the CLI as its #! line does)
const { NODE_FLAGS } = require(path.join(REPO, 'dist', 'lib', 'process', 'node-env.js'));
const BENCH = path.join(REPO, 'bench');
const num = (v, d) => (v !== undefined && v !== '' && Number.isFinite(Number(v)) ? Number(v) : d);
const ROUNDS = num(process.env.BENCH_ROUNDS, 30);
const WARMUP = num(process.env.BENCH_WARMUP, 3);
const BATCH_ROUNDS = num(process.env.BENCH_BATCH_ROUNDS, 3);
const RSS_ROUNDS = num(process.env.BENCH_RSS_ROUNDS, 10);
const PROFILE_RUNS = num(process.env.BENCH_PROFILE_RUNS, 5);
const SERIAL = 50;
const PARALLEL = 20;
const UNIFIED = '/sys/fs/cgroup/unified';
const RUNTIMES = ['koci', 'runc', 'crun'];

const log = (m) => process.stderr.write(`bench: ${m}\n`);
const has = (cmd) => spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;
const unifiedMounted = () => fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n').some((l) => l.split(' ')[4] === UNIFIED);

// ---------------------------------------------------------------- outside: prepare, then re-exec in a mount namespace
if (!process.env.KOCI_BENCH_NS) {
  if (process.getuid() !== 0) {
    log('needs root (containers need namespaces, mounts and cgroups)');
    process.exit(1);
  }
  const missing = ['runc', 'crun'].filter((c) => !has(c));
  if (missing.length) {
    log(`installing ${missing.join(' ')} from Debian (bench tooling)`);
    const install = () => spawnSync('apt-get', ['install', '-y', '-q', ...missing], { stdio: ['ignore', 'ignore', 'inherit'] }).status === 0;
    if (!install()) {
      execFileSync('apt-get', ['update', '-q'], { stdio: ['ignore', 'ignore', 'inherit'] });
      if (!install()) throw new Error(`apt-get install ${missing.join(' ')} failed`);
    }
  }
  for (const c of ['unshare', 'umount']) if (!has(c)) throw new Error(`${c} (util-linux) is needed`);
  if (!fs.existsSync(KOCI)) throw new Error('dist/ is missing: npm run build first');
  require('./busybox-rootfs').buildRootfs();
  const r = spawnSync('unshare', ['--mount', '--propagation', 'private', process.execPath, __filename, ...process.argv.slice(2)], {
    stdio: 'inherit',
    env: { ...process.env, KOCI_BENCH_NS: '1' },
  });
  process.exit(r.status ?? 1);
}

// ---------------------------------------------------------------- inside the bench's own mount namespace
if (unifiedMounted()) execFileSync('umount', [UNIFIED]);

const work = fs.mkdtempSync(path.join(REPO, '.cache', 'bench-'));
const bundle = path.join(work, 'bundle');
const sleeper = path.join(work, 'bundle-sleep');
const rootOf = Object.fromEntries(RUNTIMES.map((r) => [r, path.join(work, `root-${r}`)]));
const libRoot = path.join(work, 'root-lib');
const started = new Set(); // runtime:id of every container we made, for cleanup

function cli(rt) {
  return rt === 'koci' ? [KOCI, '--root', rootOf.koci] : [rt, '--root', rootOf[rt]];
}

function prepareBundles() {
  fs.mkdirSync(bundle, { recursive: true });
  fs.cpSync(path.join(REPO, '.cache', 'busybox-rootfs'), path.join(bundle, 'rootfs'), { recursive: true, verbatimSymlinks: true });
  // one config for all three: koci's default spec (seccomp profile, cgroup ns),
  // no terminal, /bin/true, ociVersion 1.1.0 (crun 1.8.1 rejects >= 1.2)
  execFileSync(KOCI, ['spec', '--bundle', bundle]);
  const cfgPath = path.join(bundle, 'config.json');
  const cfg = JSON.parse(fs.readFileSync(cfgPath, 'utf8'));
  cfg.ociVersion = '1.1.0';
  cfg.process.terminal = false;
  cfg.process.args = ['/bin/true'];
  fs.writeFileSync(cfgPath, JSON.stringify(cfg, null, 2));
  // the same rootfs (absolute path) with a process that stays, for the residency check
  fs.mkdirSync(sleeper);
  fs.writeFileSync(
    path.join(sleeper, 'config.json'),
    JSON.stringify({ ...cfg, root: { ...cfg.root, path: path.join(bundle, 'rootfs') }, process: { ...cfg.process, args: ['sleep', '3600'] } }, null, 2),
  );
  for (const r of [...Object.values(rootOf), libRoot]) fs.mkdirSync(r);
}

// ---------------------------------------------------------------- measuring
/**
 * The environment without what Node reads at every start and koci's own processes drop
 * (lib/process/node-env.ts): NODE_EXTRA_CA_CERTS makes each Node parse a CA bundle (~40 ms here).
 * `node -e 0` runs both ways, so the table shows the floor as this machine has it and the bare one.
 */
const CLEAN_ENV = Object.fromEntries(Object.entries(process.env).filter(([k]) => k !== 'NODE_EXTRA_CA_CERTS'));
const EXTRA_CA = process.env.NODE_EXTRA_CA_CERTS !== undefined;
const failures = {};
const firstError = {};
function fail(key, msg) {
  failures[key] = (failures[key] ?? 0) + 1;
  if (!firstError[key]) {
    firstError[key] = msg;
    log(`${key}: ${msg.trim().split('\n').slice(-3).join(' | ')}`);
  }
}

/**
 * stderr goes to a file, not a pipe: a created container's init inherits it,
 * and a pipe would keep spawnSync waiting for EOF until the container exits
 */
let errFd;
let errPath;
function quiet(argv, opts = {}) {
  if (errFd === undefined) {
    errPath = path.join(work, 'stderr');
    errFd = fs.openSync(errPath, 'a+');
  }
  fs.ftruncateSync(errFd, 0);
  const r = spawnSync(argv[0], argv.slice(1), { stdio: ['ignore', 'ignore', errFd], ...opts });
  Object.defineProperty(r, 'stderr', { get: () => fs.readFileSync(errPath, 'utf8') || String(r.error ?? '') });
  return r;
}

/** run argv to completion; returns wall ms, counts a non-zero exit as a failure of key */
function timed(key, argv, opts) {
  const t0 = process.hrtime.bigint();
  const r = quiet(argv, opts);
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  if (r.status !== 0) fail(key, `${argv.join(' ')}: exit ${r.status ?? r.signal}: ${r.stderr}`);
  return ms;
}

/** block until pid has exited (gone or a zombie of its reaper) */
function waitGone(pid, timeoutMs = 10000) {
  const sab = new Int32Array(new SharedArrayBuffer(4));
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    let stat;
    try {
      stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    } catch {
      return true;
    }
    if (stat.slice(stat.lastIndexOf(')') + 2)[0] === 'Z') return true;
    Atomics.wait(sab, 0, 0, 0.2);
  }
  return false;
}

let seq = 0;
const newId = (rt, what) => `b${process.pid}-${rt}-${what}-${seq++}`;

function runOnce(rt) {
  const id = newId(rt, 'run');
  started.add(`${rt}:${id}`);
  return timed(`run:${rt}`, [...cli(rt), 'run', '--bundle', bundle, id]);
}

function lifecycle(rt) {
  const id = newId(rt, 'lc');
  const pidFile = path.join(work, `${id}.pid`);
  started.add(`${rt}:${id}`);
  const key = `lifecycle:${rt}`;
  const t0 = process.hrtime.bigint();
  let r = quiet([...cli(rt), 'create', '--bundle', bundle, '--pid-file', pidFile, id]);
  if (r.status !== 0) {
    fail(key, `create: ${r.stderr}`);
    return NaN;
  }
  r = quiet([...cli(rt), 'start', id]);
  if (r.status !== 0) fail(key, `start: ${r.stderr}`);
  else if (!waitGone(Number(fs.readFileSync(pidFile, 'utf8')))) fail(key, 'container did not exit');
  r = quiet([...cli(rt), 'delete', id]);
  if (r.status !== 0) fail(key, `delete: ${r.stderr}`);
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  fs.rmSync(pidFile, { force: true });
  return ms;
}

const stateIds = {};
function stateOnce(rt) {
  return timed(`state:${rt}`, [...cli(rt), 'state', stateIds[rt]]);
}

function serial(rt) {
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < SERIAL; i++) {
    const id = newId(rt, 's');
    started.add(`${rt}:${id}`);
    const r = quiet([...cli(rt), 'run', '--bundle', bundle, id]);
    if (r.status !== 0) fail(`serial:${rt}`, `${r.stderr}`);
  }
  return Number(process.hrtime.bigint() - t0) / 1e6 / SERIAL;
}

function parallel(rt) {
  const t0 = process.hrtime.bigint();
  const one = () =>
    new Promise((resolve) => {
      const id = newId(rt, 'p');
      started.add(`${rt}:${id}`);
      const argv = [...cli(rt), 'run', '--bundle', bundle, id];
      const c = spawn(argv[0], argv.slice(1), { stdio: ['ignore', 'ignore', 'pipe'] });
      let err = '';
      c.stderr.on('data', (d) => (err += d));
      c.on('close', (code) => {
        if (code !== 0) fail(`parallel:${rt}`, `exit ${code}: ${err}`);
        resolve();
      });
    });
  return Promise.all(Array.from({ length: PARALLEL }, one)).then(() => Number(process.hrtime.bigint() - t0) / 1e6);
}

const libFirst = [];
const libSteady = []; // median of the runs after the first, per round
function library() {
  const prefix = newId('lib', 'l');
  for (let i = 0; i < SERIAL; i++) started.add(`lib:${prefix}-${i}`);
  const r = spawnSync(process.execPath, [path.join(BENCH, 'lib-runner.js'), libRoot, bundle, prefix, String(SERIAL)], { stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8' });
  let out;
  try {
    out = JSON.parse(r.stdout.trim().split('\n').pop());
  } catch {
    fail('library', `lib-runner exit ${r.status}: ${r.stderr}`);
    return NaN;
  }
  if (out.failed) fail('library', `${out.failed} of ${SERIAL} failed: ${r.stderr}`);
  libFirst.push(out.ms[0]);
  libSteady.push(median(out.ms.slice(1)));
  return out.ms.reduce((a, b) => a + b, 0) / out.ms.length;
}

/** peak RSS (KiB) by GNU time: ru_maxrss over the command and the descendants it waited for */
function peakRss(key, argv) {
  const out = path.join(work, 'rss');
  const r = quiet(['/usr/bin/time', '-o', out, '-f', 'KOCI_BENCH_RSS %M', ...argv]);
  const m = /KOCI_BENCH_RSS (\d+)/.exec(fs.readFileSync(out, 'utf8'));
  if (r.status !== 0 || !m) {
    fail(key, `exit ${r.status}: ${r.stderr}`);
    return NaN;
  }
  return Number(m[1]);
}

/** processes outside a detached running container that stay while it runs: new processes in our mount namespace */
function resident(rt) {
  const myMnt = fs.readlinkSync('/proc/self/ns/mnt');
  const pids = () => new Set(fs.readdirSync('/proc').filter((p) => /^\d+$/.test(p)));
  const before = pids();
  const id = newId(rt, 'd');
  started.add(`${rt}:${id}`);
  const pidFile = path.join(work, `${id}.pid`);
  const r = quiet([...cli(rt), 'run', '--detach', '--bundle', sleeper, '--pid-file', pidFile, id]);
  if (r.status !== 0) {
    fail(`resident:${rt}`, `${r.stderr}`);
    return { count: NaN, kib: NaN, names: [] };
  }
  const init = Number(fs.readFileSync(pidFile, 'utf8'));
  // what stays, not what is still on its way out: look 300 ms after the CLI returned
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 300);
  const stay = [];
  for (const p of pids()) {
    if (before.has(p) || Number(p) === process.pid || Number(p) === init) continue;
    try {
      if (fs.readlinkSync(`/proc/${p}/ns/mnt`) !== myMnt) continue; // the container's, or someone else's
      const status = fs.readFileSync(`/proc/${p}/status`, 'utf8');
      const kib = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
      const st = /State:\s+(\S)/.exec(status)[1];
      if (st === 'Z') continue; // exited, waiting for its reaper: nothing resident
      stay.push({ pid: p, name: /Name:\s+(\S+)/.exec(status)[1], kib });
    } catch {
      /* gone meanwhile */
    }
  }
  quiet([...cli(rt), 'kill', id, 'KILL']);
  waitGone(init);
  quiet([...cli(rt), 'delete', '--force', id]);
  return { count: stay.length, kib: stay.reduce((a, s) => a + s.kib, 0), names: stay.map((s) => s.name) };
}

// ---------------------------------------------------------------- statistics
const median = (xs) => {
  const s = xs.filter(Number.isFinite).sort((a, b) => a - b);
  if (!s.length) return NaN;
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const quantile = (xs, q) => {
  const s = xs.filter(Number.isFinite).sort((a, b) => a - b);
  if (!s.length) return NaN;
  const i = (s.length - 1) * q;
  return s[Math.floor(i)] + (s[Math.ceil(i)] - s[Math.floor(i)]) * (i - Math.floor(i));
};
/** median of round-by-round ratios a[i]/b[i] */
const pairRatio = (a, b) => median(a.map((x, i) => x / b[i]));
const pairDiff = (a, b) => median(a.map((x, i) => x - b[i]));

// ---------------------------------------------------------------- profile of one `koci run`
function profile() {
  const dir = path.join(work, 'prof');
  fs.mkdirSync(dir);
  const walls = [];
  for (let i = 0; i < PROFILE_RUNS; i++) {
    const id = newId('koci', 'prof');
    started.add(`koci:${id}`);
    // as the #! line starts it: without NODE_EXTRA_CA_CERTS
    walls.push(timed('profile', [process.execPath, ...NODE_FLAGS, '--cpu-prof', `--cpu-prof-dir=${dir}`, KOCI, '--root', rootOf.koci, 'run', '--bundle', bundle, id], { env: CLEAN_ENV }));
  }
  const files = fs.readdirSync(dir).filter((f) => f.endsWith('.cpuprofile'));
  const self = new Map(); // category -> ms
  const incl = new Map(); // koci function -> ms
  let requireMs = 0;
  let total = 0;
  const short = (url) => url.replace(/^file:\/\//, '').replace(REPO + '/', '');
  const category = (cf) => {
    const u = short(cf.url);
    if (!u) return cf.functionName.startsWith('(') ? cf.functionName : `native: ${cf.functionName}`;
    if (u.startsWith('dist/')) return u;
    const nm = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(u);
    if (nm) return `node_modules/${nm[1]}`;
    if (u.startsWith('node:internal/modules')) return 'node:internal/modules (require)';
    return u;
  };
  for (const f of files) {
    const p = JSON.parse(fs.readFileSync(path.join(dir, f), 'utf8'));
    const byId = new Map(p.nodes.map((n) => [n.id, n]));
    const parent = new Map();
    for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
    for (let i = 0; i < p.samples.length; i++) {
      const dt = (p.timeDeltas[i + 1] ?? 0) / 1000 / files.length; // ms, averaged over runs
      total += dt;
      const leaf = byId.get(p.samples[i]);
      let cat = category(leaf.callFrame);
      const up = byId.get(parent.get(leaf.id));
      if (cat.startsWith('native: ') && up && short(up.callFrame.url)) cat += ` ← ${up.callFrame.functionName || '(top level)'} (${short(up.callFrame.url)}:${up.callFrame.lineNumber + 1})`;
      self.set(cat, (self.get(cat) ?? 0) + dt);
      const seen = new Set();
      const stack = [];
      for (let id = p.samples[i]; id !== undefined; id = parent.get(id)) stack.push(byId.get(id).callFrame);
      // a require() made by koci code (below the first dist/ frame), not the CLI's own main-module load
      const firstKoci = stack.findLastIndex((cf) => short(cf.url).startsWith('dist/'));
      // or a module of the bundle being loaded (lib/bundle.ts: its parts read and compiled, module top levels run)
      const nodeRequire = stack.slice(0, Math.max(firstKoci, 0)).some((cf) => cf.url.includes('internal/modules/cjs/loader') && /^(Module\._load|require)$/.test(cf.functionName));
      const bundleLoad = stack.some((cf) => short(cf.url) === 'dist/lib/bundle.js' && /^(load|loadPart)$/.test(cf.functionName));
      if (nodeRequire || bundleLoad) requireMs += dt;
      for (const cf of stack) {
        const u = short(cf.url);
        if (!u.startsWith('dist/')) continue;
        const key = `${cf.functionName || '(module top level)'} (${u}:${cf.lineNumber + 1})`;
        if (seen.has(key)) continue;
        seen.add(key);
        incl.set(key, (incl.get(key) ?? 0) + dt);
      }
    }
  }
  const top = (m, n) => [...m.entries()].sort((a, b) => b[1] - a[1]).slice(0, n);
  const sumSelf = (re) => [...self.entries()].filter(([k]) => re.test(k)).reduce((a, [, v]) => a + v, 0);
  const inclOf = (re) => Math.max(0, ...[...incl.entries()].filter(([k]) => re.test(k)).map(([, v]) => v));
  const summary = {
    // by function name: in the bundle every module's code is in dist/koci*.js
    recv: inclOf(/^recv \(dist\//),
    start: inclOf(/^startContainer /),
    validate: inclOf(/^validateConfig /),
    seccomp: inclOf(/^prepareSeccomp /),
    gc: sumSelf(/garbage collector/),
  };
  return { runs: files.length, wall: median(walls), profiled: total, requireMs, summary, self: top(self, 16), incl: top(incl, 16) };
}

// ---------------------------------------------------------------- cleanup
function cleanup() {
  for (const key of started) {
    const [rt, id] = [key.slice(0, key.indexOf(':')), key.slice(key.indexOf(':') + 1)];
    const dir = rt === 'lib' ? path.join(libRoot, id) : path.join(rootOf[rt], id);
    if (!fs.existsSync(dir)) continue;
    quiet(rt === 'lib' ? [KOCI, '--root', libRoot, 'delete', '--force', id] : [...cli(rt), 'delete', '--force', id]);
  }
  const left = [];
  for (const r of [...Object.values(rootOf), libRoot]) {
    try {
      // @cache: koci's compiled seccomp programs, not a container (lib/security/seccomp-cache.ts)
      for (const e of fs.readdirSync(r)) if (e !== '@cache') left.push(`${path.basename(r)}/${e}`);
    } catch {
      /* none */
    }
  }
  if (left.length) log(`left in state roots: ${left.join(', ')}`);
  fs.rmSync(work, { recursive: true, force: true });
  return left;
}

// ---------------------------------------------------------------- main
async function main() {
  const tStart = Date.now();
  prepareBundles();
  for (const rt of RUNTIMES) {
    stateIds[rt] = newId(rt, 'state');
    started.add(`${rt}:${stateIds[rt]}`);
    const r = quiet([...cli(rt), 'create', '--bundle', bundle, stateIds[rt]]);
    if (r.status !== 0) fail(`state:${rt}`, `create: ${r.stderr}`);
  }

  // single operations, interleaved; the order rotates each round
  const single = [
    ['node -e 0', () => timed('node', [process.execPath, '-e', '0'])],
    ['node -e 0 clean', () => timed('node', [process.execPath, '-e', '0'], { env: CLEAN_ENV })],
    ['koci --version', () => timed('version:koci', [KOCI, '--version'])],
    ...RUNTIMES.map((rt) => [`run:${rt}`, () => runOnce(rt)]),
    ...RUNTIMES.map((rt) => [`lifecycle:${rt}`, () => lifecycle(rt)]),
    ...RUNTIMES.map((rt) => [`state:${rt}`, () => stateOnce(rt)]),
  ];
  const S = Object.fromEntries(single.map(([k]) => [k, []]));
  log(`single operations: ${WARMUP} warm-up + ${ROUNDS} rounds of ${single.length}`);
  for (let round = -WARMUP; round < ROUNDS; round++) {
    for (let j = 0; j < single.length; j++) {
      const [k, fn] = single[(j + Math.max(round, 0)) % single.length];
      const ms = fn();
      if (round >= 0) S[k].push(ms);
    }
  }

  // batches, interleaved the same way
  const batch = [
    ...RUNTIMES.map((rt) => [`serial:${rt}`, () => serial(rt)]),
    ['serial:lib', () => library()],
    ...RUNTIMES.map((rt) => [`parallel:${rt}`, () => parallel(rt)]),
  ];
  const B = Object.fromEntries(batch.map(([k]) => [k, []]));
  log(`batches: ${BATCH_ROUNDS} rounds of ${batch.length} (${SERIAL} back to back, ${PARALLEL} in parallel)`);
  for (let round = 0; round < BATCH_ROUNDS; round++) {
    for (let j = 0; j < batch.length; j++) {
      const [k, fn] = batch[(j + round) % batch.length];
      B[k].push(await fn());
    }
  }

  log(`peak RSS: ${RSS_ROUNDS} rounds`);
  const R = { node: [], koci: [], runc: [], crun: [] };
  for (let round = 0; round < RSS_ROUNDS; round++) {
    R.node.push(peakRss('rss:node', [process.execPath, '-e', '0']));
    for (const rt of RUNTIMES) {
      const id = newId(rt, 'rss');
      started.add(`${rt}:${id}`);
      R[rt].push(peakRss(`rss:${rt}`, [...cli(rt), 'run', '--bundle', bundle, id]));
    }
  }

  log('residency while a container runs detached');
  const D = Object.fromEntries(RUNTIMES.map((rt) => [rt, [resident(rt), resident(rt), resident(rt)]]));

  for (const rt of RUNTIMES) quiet([...cli(rt), 'delete', '--force', stateIds[rt]]);

  log(`profiling ${PROFILE_RUNS} koci run(s)`);
  const prof = profile();
  const left = cleanup();
  const elapsed = (Date.now() - tStart) / 1000;
  report({ S, B, R, D, prof, left, elapsed });
}

// ---------------------------------------------------------------- output
function sh(cmd, args) {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return '?';
  }
}

function machine() {
  const osr = fs.readFileSync('/etc/os-release', 'utf8');
  const cpu = os.cpus();
  return {
    os: /PRETTY_NAME="?([^"\n]*)/.exec(osr)?.[1] ?? '?',
    kernel: os.release(),
    cpu: `${cpu[0]?.model ?? '?'} × ${cpu.length}`,
    mem: `${Math.round(os.totalmem() / 2 ** 30)} GiB`,
    node: process.version,
    koci: `${require(path.join(REPO, 'package.json')).version} (${sh('git', ['-C', REPO, 'rev-parse', '--short', 'HEAD'])}${sh('git', ['-C', REPO, 'status', '--porcelain', '--untracked-files=no']) ? ', with uncommitted changes' : ''})`,
    runc: sh('runc', ['--version']).split('\n')[0],
    crun: sh('crun', ['--version']).split('\n')[0],
    date: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
  };
}

const f1 = (x) => (Number.isFinite(x) ? (x >= 100 ? x.toFixed(0) : x.toFixed(1)) : '—');
const ms = (x) => (Number.isFinite(x) ? `${f1(x)} ms` : '—');
const ratio = (x) => (Number.isFinite(x) ? `${x.toFixed(2)}×` : '—');
/** "+ 8.8" or "− 29.1": a distance to a floor */
const plus = (x) => (x < 0 ? `− ${f1(-x)}` : `+ ${f1(x)}`);
/** where NODE_EXTRA_CA_CERTS is set: the distance to the bare floor too */
const bareNote = (S, k) => (EXTRA_CA ? `; bare floor ${plus(pairDiff(S[k], S['node -e 0 clean']))} ms` : '');
const mib = (kib) => (Number.isFinite(kib) ? `${(kib / 1024).toFixed(1)} MiB` : '—');

function rows({ S, B, R, D }) {
  const line = (name, k, r, c, note) => ({ name, k, r, c, note });
  const tri = (prefix, name, fmt = ms) => {
    const [k, r, c] = RUNTIMES.map((rt) => (prefix === 'S' ? S : B)[`${name}:${rt}`]);
    return { vals: [k, r, c].map((xs) => fmt(median(xs))), kr: ratio(pairRatio(k, r)), kc: ratio(pairRatio(k, c)), raw: [k, r, c].map(median) };
  };
  const out = [];
  const push = (label, t, extra = '') => out.push({ label, k: t.vals[0], r: t.vals[1], c: t.vals[2], kr: t.kr, kc: t.kc, extra, raw: t.raw });
  out.push({
    label: '`node -e 0` (floor of any Node CLI)',
    k: ms(median(S['node -e 0'])),
    r: '',
    c: '',
    kr: '',
    kc: '',
    extra: EXTRA_CA ? 'this environment sets NODE_EXTRA_CA_CERTS: every Node start parses that CA file' : '',
    raw: [median(S['node -e 0'])],
  });
  if (EXTRA_CA) {
    out.push({
      label: '`node -e 0` without NODE_EXTRA_CA_CERTS (bare floor)',
      k: ms(median(S['node -e 0 clean'])),
      r: '',
      c: '',
      kr: '',
      kc: '',
      extra: "koci's own Node processes start this way (they make no TLS connection)",
      raw: [median(S['node -e 0 clean'])],
    });
  }
  const bare = (k) => bareNote(S, k);
  out.push({ label: '`koci --version` (CLI start, no work)', k: ms(median(S['koci --version'])), r: '', c: '', kr: '', kc: '', extra: `floor ${plus(pairDiff(S['koci --version'], S['node -e 0']))} ms${bare('koci --version')}`, raw: [median(S['koci --version'])] });
  push('CLI `run` of /bin/true', tri('S', 'run'), `koci = floor ${plus(pairDiff(S['run:koci'], S['node -e 0']))} ms${bare('run:koci')}`);
  push('CLI `create` + `start` + wait + `delete`', tri('S', 'lifecycle'));
  push('CLI `state` of a created container', tri('S', 'state'), `koci = floor ${plus(pairDiff(S['state:koci'], S['node -e 0']))} ms${bare('state:koci')}`);
  push(`${SERIAL} \`run\`s back to back, per container`, tri('B', 'serial'));
  push(`${PARALLEL} \`run\`s in parallel, wall time for all`, tri('B', 'parallel'));
  const lib = B['serial:lib'];
  out.push({
    label: `library \`Runtime.run\`, ${SERIAL} back to back in one Node process, per container`,
    k: ms(median(lib)),
    r: '',
    c: '',
    kr: ratio(pairRatio(lib, B['serial:runc'])),
    kc: ratio(pairRatio(lib, B['serial:crun'])),
    extra: `vs crun CLI \`run\` (single): ${ratio(median(lib) / median(S['run:crun']))}; the first (zygote start) ${f1(median(libFirst))} ms, the others ${f1(median(libSteady))} ms each (median)`,
    raw: [median(lib)],
  });
  out.push({
    label: 'peak RSS of one CLI `run` (largest process)',
    k: mib(median(R.koci)),
    r: mib(median(R.runc)),
    c: mib(median(R.crun)),
    kr: ratio(pairRatio(R.koci, R.runc)),
    kc: ratio(pairRatio(R.koci, R.crun)),
    extra: `\`node -e 0\`: ${mib(median(R.node))}`,
  });
  const res = (rt) => {
    const xs = D[rt];
    const n = Math.max(...xs.map((x) => x.count));
    const kib = Math.max(...xs.map((x) => x.kib));
    return Number.isFinite(n) ? (n === 0 ? 'none' : `${n} (${mib(kib)}: ${[...new Set(xs.flatMap((x) => x.names))].join(', ')})`) : '—';
  };
  out.push({ label: 'processes of the runtime left while a container runs detached', k: res('koci'), r: res('runc'), c: res('crun'), kr: '', kc: '', extra: '' });
  return out;
}

function table(rs, withExtra) {
  const head = `| measurement | koci | runc | crun | koci/runc | koci/crun |${withExtra ? ' note |' : ''}\n| --- | ---: | ---: | ---: | ---: | ---: |${withExtra ? ' --- |' : ''}\n`;
  return head + rs.map((r) => `| ${r.label} | ${r.k} | ${r.r} | ${r.c} | ${r.kr} | ${r.kc} |${withExtra ? ` ${r.extra} |` : ''}`).join('\n') + '\n';
}

function svg({ S, B }) {
  const groups = [
    ['CLI run', RUNTIMES.map((rt) => [rt, median(S[`run:${rt}`])])],
    ['create+start+wait+delete', RUNTIMES.map((rt) => [rt, median(S[`lifecycle:${rt}`])])],
    ['state', RUNTIMES.map((rt) => [rt, median(S[`state:${rt}`])])],
    [`${SERIAL} back to back (per container)`, [...RUNTIMES.map((rt) => [rt, median(B[`serial:${rt}`])]), ['koci library', median(B['serial:lib'])]]],
    [`${PARALLEL} in parallel (wall ÷ ${PARALLEL})`, RUNTIMES.map((rt) => [rt, median(B[`parallel:${rt}`]) / PARALLEL])],
  ];
  const color = { koci: '#2b6cb0', runc: '#c05621', crun: '#2f855a', 'koci library': '#805ad5' };
  const floor = median(S['node -e 0']);
  const max = Math.max(floor, ...groups.flatMap(([, bars]) => bars.map(([, v]) => (Number.isFinite(v) ? v : 0))));
  const left = 230;
  const width = 820;
  const plot = width - left - 90;
  const barH = 16;
  const x = (v) => left + (v / max) * plot;
  const esc = (s) => String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;');
  let y = 50;
  const parts = [];
  for (const [name, bars] of groups) {
    parts.push(`<text x="10" y="${y + 12}" font-weight="bold">${esc(name)}</text>`);
    for (const [rt, v] of bars) {
      const w = Number.isFinite(v) ? Math.max(1, x(v) - left) : 0;
      parts.push(`<text x="${left - 8}" y="${y + 12}" text-anchor="end">${esc(rt)}</text>`);
      parts.push(`<rect x="${left}" y="${y}" width="${w.toFixed(1)}" height="${barH}" fill="${color[rt]}"/>`);
      parts.push(`<text x="${(left + w + 5).toFixed(1)}" y="${y + 12}">${esc(ms(v))}</text>`);
      y += barH + 4;
    }
    y += 12;
  }
  const fx = x(floor).toFixed(1);
  parts.push(`<line x1="${fx}" y1="38" x2="${fx}" y2="${y - 8}" stroke="#888" stroke-dasharray="4 3"/>`);
  parts.push(`<text x="${fx}" y="34" text-anchor="middle" fill="#555">node -e 0: ${esc(ms(floor))}</text>`);
  return (
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${y + 10}" viewBox="0 0 ${width} ${y + 10}" font-family="sans-serif" font-size="12">\n` +
    `<rect width="100%" height="100%" fill="#fff"/>\n` +
    `<text x="10" y="18" font-size="14" font-weight="bold">koci vs runc vs crun: median latency (lower is better)</text>\n` +
    parts.join('\n') +
    '\n</svg>\n'
  );
}

function report(data) {
  const m = machine();
  const rs = rows(data);
  const { prof } = data;
  const failLines = Object.entries(failures).map(([k, n]) => `- ${k}: ${n} failure(s); first: ${firstError[k].trim().split('\n').slice(-2).join(' ')}`);
  const { S } = data;
  const floor = median(S['node -e 0']);
  const sm = prof.summary;
  const where = [
    'Top costs of `koci run` of /bin/true (medians of this run; profile numbers are per run, averaged):',
    '',
    `1. Node's own start: \`node -e 0\` = ${ms(floor)}${EXTRA_CA ? ` (${ms(median(S['node -e 0 clean']))} without NODE_EXTRA_CA_CERTS, as koci starts)` : ''}; koci's CLI \`run\` = floor ${plus(pairDiff(S['run:koci'], S['node -e 0']))} ms${bareNote(S, 'run:koci')} (\`--version\`: floor ${plus(pairDiff(S['koci --version'], S['node -e 0']))} ms).`,
    `2. Loading koci's modules for \`run\` (require: read, compile, run module top levels): ${ms(prof.requireMs)}.`,
    `3. Waiting on the forked child's container setup (clone, mounts, pivot_root, …; \`recv\` on the sync channel): ${ms(sm.recv)}.`,
    `4. \`start\`: releasing the init through exec.fifo and waiting, in poll(2), for its EOF at the exec: ${ms(sm.start)}.`,
    `5. Config validation (ajv validators + semantic checks): ${ms(sm.validate)}; seccomp program (built, or read from the state root's cache): ${ms(sm.seccomp)}; GC: ${ms(sm.gc)}.`,
    `6. Outside the profile (Node bootstrap before the profiler, exit, the container's own run): about ${ms(prof.wall - prof.profiled)} of the ${ms(prof.wall)} profiled wall time.`,
    '',
    `Profiled: ${prof.runs} × \`node ${NODE_FLAGS.join(' ')} --cpu-prof dist/lib/cli/main.js run\` of /bin/true`,
    `(median wall ${ms(prof.wall)} with the profiler on; the profile covers ${ms(prof.profiled)} of it per run — the rest is`,
    `Node's own bootstrap before the profiler starts, process exit, and the time spent outside V8's view).`,
    `Time under \`require()\` (loading, compiling and running module top levels): **${ms(prof.requireMs)}** per run.`,
    '',
    'Self time by where it is spent (per run; `(idle)` is the event loop waiting — e.g. for the container to exit;',
    '`(program)` is V8/native work outside JS frames, such as compiling):',
    '',
    '| where | ms per run |',
    '| --- | ---: |',
    ...prof.self.map(([k, v]) => `| ${k} | ${v.toFixed(1)} |`),
    '',
    'Inclusive time of koci functions (per run; nested calls count for each frame on the stack):',
    '',
    '| koci function | ms per run |',
    '| --- | ---: |',
    ...prof.incl.map(([k, v]) => `| \`${k.replace(/\|/g, '\\|')}\` | ${v.toFixed(1)} |`),
  ];
  const resultsPath = path.join(BENCH, 'results.md');
  let history = '';
  try {
    const old = fs.readFileSync(resultsPath, 'utf8');
    const h = /<!-- history:begin -->[\s\S]*?<!-- history:end -->/.exec(old);
    if (h) history = h[0];
  } catch {
    /* first run */
  }
  if (!history) history = '<!-- history:begin -->\n_(issue 7, item 2: what each optimization bought, bench run by bench run)_\n<!-- history:end -->';
  const md = [
    '# koci benchmark results',
    '',
    'Generated by `npm run bench` (scripts/bench.js); do not edit by hand except between the history markers.',
    '',
    `- date: ${m.date}`,
    `- machine: ${m.os}, kernel ${m.kernel}, ${m.cpu}, ${m.mem}`,
    `- node ${m.node}; koci ${m.koci}; ${m.runc}; ${m.crun}`,
    `- method: one interleaved run (A B C A B C …, the order rotating each round). Single operations: ${WARMUP} warm-up + ${ROUNDS} rounds;`,
    `  batches (${SERIAL} back to back, ${PARALLEL} in parallel, library): ${BATCH_ROUNDS} rounds; peak RSS: ${RSS_ROUNDS} rounds. Medians; ratios are`,
    '  medians of round-by-round ratios. Every runtime runs in the same private mount namespace with /sys/fs/cgroup/unified',
    '  unmounted (cgroup v1 only), from the same busybox bundle (koci\'s default spec with ociVersion 1.1.0, terminal false, /bin/true),',
    '  each with its own state root. CLIs are spawned from the bench\'s Node process (spawnSync; wall time until exit).',
    '  `koci` is the CLI as an orchestrator runs it: `dist/lib/cli/main.js` through its `' + fs.readFileSync(KOCI, 'utf8').split('\n')[0] + '`',
    '  line, in the bench\'s environment (`node -e 0` runs in it too; the bare floor without NODE_EXTRA_CA_CERTS).',
    '  "wait" in the lifecycle polls /proc/PID until the container\'s init has exited. Peak RSS is GNU time\'s %M: ru_maxrss, the largest',
    '  single process among the CLI and the descendants it waited for (not a sum). Residency: processes that appear in the bench\'s mount',
    '  namespace (i.e. outside the container) and stay while a `run --detach`ed `sleep` container runs, 3 tries per runtime.',
    `- full bench wall time: ${data.elapsed.toFixed(0)} s`,
    '',
    '## Results',
    '',
    table(rs, true),
    '![latency chart](latency.svg)',
    '',
    ...(failLines.length ? ['## Failures during the run', '', ...failLines, ''] : []),
    ...(data.left.length ? [`Left in state roots after cleanup: ${data.left.join(', ')}`, ''] : []),
    '## Where the time goes (one `koci run`)',
    '',
    ...where,
    '',
    '## History',
    '',
    history,
    '',
    '',
  ].join('\n');
  process.stdout.write(`\n${table(rs, true)}\n`);
  if (failLines.length) process.stdout.write(failLines.join('\n') + '\n');
  if (process.env.BENCH_NO_WRITE) {
    process.stdout.write(where.join('\n') + '\n');
    return;
  }
  fs.mkdirSync(BENCH, { recursive: true });
  fs.writeFileSync(resultsPath, md);
  fs.writeFileSync(path.join(BENCH, 'latency.svg'), svg(data));
  // README: only the quoted table between the markers, re-read right before writing
  const readme = path.join(REPO, 'README.md');
  const quoted =
    `<!-- bench:begin -->\n` +
    `Latest \`npm run bench\` (${m.date.slice(0, 10)}; ${m.os}, ${m.cpu}; node ${m.node}, ${m.runc}, ${m.crun}; medians, see [bench/results.md](bench/results.md)):\n\n` +
    table(rs, false) +
    `<!-- bench:end -->`;
  const text = fs.readFileSync(readme, 'utf8');
  const re = /<!-- bench:begin -->[\s\S]*?<!-- bench:end -->/;
  const next = re.test(text) ? text.replace(re, () => quoted) : `${text.replace(/\n*$/, '\n')}\n## Performance\n\n${quoted}\n`;
  if (next !== text) fs.writeFileSync(readme, next);
  log('wrote bench/results.md, bench/latency.svg and README.md\'s bench table');
}

let cleaned = false;
process.on('exit', () => {
  if (!cleaned && fs.existsSync(work)) {
    try {
      cleanup();
    } catch {
      /* best effort */
    }
  }
});
main().then(
  () => {
    cleaned = true;
  },
  (e) => {
    log(e.stack);
    process.exitCode = 1;
  },
);
