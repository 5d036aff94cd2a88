/**
 * The CLI's one-file bundle (lib/bundle.ts, scripts/build-bundle.js): the
 * executable loads koci from it with V8's code caches accepted, the light
 * commands never load the second part, and koci behaves the same without it.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { isAbsolute, join, relative } from 'node:path';
import t from 'tap';
import { KOCI, kociCli, makeBundle, repo, rootSkipReason, uniqueId } from './helpers/fixtures';
import { NODE_FLAGS, UNUSED_NODE_ENV } from '../lib/process/node-env';

const dist = join(repo, 'dist');

/** the parts a command loaded, from its --debug line */
function partsLoaded(stderr: string): Array<{ file: string; codeCache: string }> | undefined {
  const m = /\(modules: (\{.*\})\)$/m.exec(stderr);
  return m ? JSON.parse(m[1]).parts : undefined;
}

t.test("the executable's #! line starts Node as every koci process starts (the flags the code caches are made under)", async (t) => {
  const line = readFileSync(KOCI, 'utf8').split('\n')[0];
  const m = /^#!\/usr\/bin\/env -S((?: -u [A-Z_]+)*) node((?: --[a-z-]+)*)$/.exec(line);
  t.ok(m, `a #!/usr/bin/env -S line: ${line}`);
  t.same(m?.[2].trim().split(' '), [...NODE_FLAGS], 'the same flags as NODE_FLAGS, in order');
  t.same(m?.[1].split(' -u ').map((v) => v.trim()).filter(Boolean), [...UNUSED_NODE_ENV], 'the same variables dropped');
});

t.test('every compiled module is in exactly one part, and the parts are ASCII', async (t) => {
  const parts = ['koci.js', 'koci-more.js'].map((f) => readFileSync(join(dist, f), 'latin1'));
  const keysOf = (src: string) => [...src.matchAll(/^"([^"]+\.js)": function \(exports, require, module, __filename, __dirname\) \{$/gm)].map((m) => m[1]);
  const [first, second] = parts.map(keysOf);
  const all: string[] = [];
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith('.js')) all.push(relative(dist, p));
    }
  };
  for (const d of ['lib', 'bindings', 'validators']) walk(join(dist, d));
  const expected = all.filter((k) => !['lib/cli/main.js', 'lib/process/zygote-main.js', 'lib/bundle.js'].includes(k)).sort();
  t.same([...first, ...second].sort(), expected, 'the parts hold every module but the programs that load them and the loader');
  t.equal(new Set([...first, ...second]).size, first.length + second.length, 'no module twice');
  t.ok(['state', 'start', 'kill', 'delete', 'list'].every((v) => first.includes(`lib/cli/${v}.js`)), 'state, start, kill, delete and list are in the first part');
  t.ok(['create', 'run', 'exec', 'ps', 'update'].every((v) => second.includes(`lib/cli/${v}.js`)), 'create, run, exec, ps and update are not');
  for (const [i, src] of parts.entries()) t.notOk(/[^\x00-\x7f]/.test(src), `part ${i + 1} is ASCII (read as latin1)`);
});

t.test("packages resolved at build time: koffi is its native module, the same API and version as koffi's loader gives", async (t) => {
  const m = /^resolved: (\{.*\}),$/m.exec(readFileSync(join(dist, 'koci.js'), 'latin1'));
  t.ok(m, 'the first part records what it resolved');
  const resolved = JSON.parse(m![1]) as Record<string, string>;
  t.match(resolved.koffi, /\.node$/, "koffi's JS loader (it reads node's ELF header at every start) is skipped");
  const native = require(join(dist, resolved.koffi)) as Record<string, unknown>;
  const pkg = require('koffi') as Record<string, unknown>;
  t.equal(native.version, pkg.version, 'same version');
  t.same(Object.keys(pkg).filter((k) => k !== 'default' && typeof native[k] !== typeof pkg[k]), [], 'every export of koffi is there');
  t.same(Object.values(resolved).filter((p) => isAbsolute(p)), [], 'paths are relative to dist/ (the tree may move)');
});

t.test('the executable runs koci from the bundle, with the code caches', { skip: rootSkipReason() }, async (t) => {
  const koci = kociCli(t);
  const b = makeBundle(t, ['sh', '-c', 'echo hello']);
  const id = uniqueId('bundle');
  t.equal(koci(['create', '--bundle', b.dir, id]).status, 0);

  const state = koci(['--debug', 'state', id]);
  t.equal(state.status, 0);
  t.same(partsLoaded(state.stderr), [{ file: 'koci.js', codeCache: 'accepted' }], 'state: the first part only, its code cache accepted');
  const unbundled = koci(['state', id], { env: { ...process.env, KOCI_NO_BUNDLE: '1' } });
  t.same(JSON.parse(unbundled.stdout), JSON.parse(state.stdout), 'the same state without the bundle');
  t.same(partsLoaded(koci(['--debug', 'state', id], { env: { ...process.env, KOCI_NO_BUNDLE: '1' } }).stderr), [], 'KOCI_NO_BUNDLE=1: no part loaded');
  // the rest of a container's life around its create: the first part alone too
  for (const v of [['start', id], ['delete', '--force', id], ['list']]) {
    const r = koci(['--debug', ...v]);
    t.equal(r.status, 0, `${v[0]}: ${r.stderr}`);
    t.same(partsLoaded(r.stderr), [{ file: 'koci.js', codeCache: 'accepted' }], `${v[0]}: the first part only`);
  }
  const ps = koci(['--debug', 'ps', '--format', 'json', uniqueId('none')]);
  t.same(partsLoaded(ps.stderr), [{ file: 'koci.js', codeCache: 'accepted' }, { file: 'koci-more.js', codeCache: 'accepted' }], 'ps: both parts');
  t.match(ps.stderr, /does not exist/, 'and works');

  const run = koci(['--debug', 'run', '--bundle', b.dir, uniqueId('bundle')]);
  t.equal(run.status, 0);
  t.equal(run.stdout, 'hello\n');
  t.same(partsLoaded(run.stderr), [{ file: 'koci.js', codeCache: 'accepted' }, { file: 'koci-more.js', codeCache: 'accepted' }], 'run: both parts, both caches accepted');

  // other V8 flags: the caches are refused, koci still runs (compiling as it goes)
  const r = spawnSync(process.execPath, ['--single-threaded', '--no-opt', KOCI, '--debug', '--root', koci.root, 'list'], { encoding: 'utf8' });
  t.equal(r.status, 0, r.stderr);
  t.same(partsLoaded(r.stderr), [{ file: 'koci.js', codeCache: 'rejected' }], 'a cache made under other V8 flags is refused, not fatal');
});

t.test('the CLI exits at once (_exit) and loses nothing: its last words through pipes, a profile when Node is asked for one', { skip: rootSkipReason() }, async (t) => {
  const koci = kociCli(t);
  // a container that fails at exec: koci has loaded koffi, reports on stderr and exits non-zero
  const bad = makeBundle(t, ['/no/such/program']);
  const r = spawnSync(KOCI, ['--root', koci.root, 'run', '--bundle', bad.dir, uniqueId('exit')], { encoding: 'utf8', timeout: 60_000 });
  t.not(r.status, 0, 'the failure is the exit status');
  t.match(r.stderr, /^koci: .*\/no\/such\/program.*\n$/s, `the whole line arrives through a pipe: ${r.stderr}`);
  const ok = makeBundle(t, ['sh', '-c', 'exit 7']);
  t.equal(spawnSync(KOCI, ['--root', koci.root, 'run', '--bundle', ok.dir, uniqueId('exit')], { stdio: 'pipe' }).status, 7, "the container's status");
  // --cpu-prof (the bench's profile) writes at Node's own exit, which koci then keeps
  const dir = mkdtempSync(join(tmpdir(), 'koci-prof-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const p = spawnSync(process.execPath, [...NODE_FLAGS, '--cpu-prof', `--cpu-prof-dir=${dir}`, KOCI, '--root', koci.root, 'run', '--bundle', ok.dir, uniqueId('exit')], { stdio: 'pipe', timeout: 60_000 });
  t.equal(p.status, 7);
  // CPU.<date>.<time>.<pid>.<thread>.<seq>.cpuprofile: the main thread's (a loader's NODE_OPTIONS may add a worker's)
  t.ok(readdirSync(dir).some((f) => /^CPU\.\d+\.\d+\.\d+\.0\.\d+\.cpuprofile$/.test(f)), `the main thread's profile is written: ${readdirSync(dir)}`);
});
