/**
 * Runner: `npm run conformance -- --runtime koci|runc|crun|/path [--filter PATTERN]`
 * (or RUNTIME=/path). Prints TAP, then a markdown summary (as TAP comments),
 * and stores the results in conformance/results/<runtime>.json when the whole
 * suite ran (no --filter).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join, resolve } from 'node:path';
import { cases, type Case } from './cases';
import { Ctx, REPO, ROOTFS, Skip, type Assertion, type Runtime } from './harness';

export type Status = 'pass' | 'fail' | 'skip' | 'todo';

export interface CaseResult {
  name: string;
  status: Status;
  /** for todo: whether the case passed anyway */
  passed?: boolean;
  reason?: string;
  assertions: number;
  failures: string[];
  ms: number;
  note?: string;
}

export interface RunResult {
  runtime: string;
  binary: string;
  version: string;
  date: string;
  counts: Record<Status, number> & { assertions: number };
  seconds: number;
  cases: CaseResult[];
}

function usage(msg?: string): never {
  if (msg) process.stderr.write(`conformance: ${msg}\n`);
  process.stderr.write('usage: npm run conformance -- --runtime koci|runc|crun|/path/to/binary [--filter PATTERN] [--list]\n');
  process.exit(2);
}

function which(cmd: string): string | undefined {
  const r = spawnSync('sh', ['-c', `command -v ${cmd}`], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : undefined;
}

/** test tooling only: install a reference runtime from Debian's packages when missing */
function ensurePackage(cmd: string): string {
  let p = which(cmd);
  if (p) return p;
  process.stderr.write(`conformance: ${cmd} missing, installing it with apt-get\n`);
  let r = spawnSync('apt-get', ['install', '-y', cmd], { stdio: ['ignore', 'ignore', 'inherit'], env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
  if (r.status !== 0) {
    spawnSync('apt-get', ['update'], { stdio: ['ignore', 'ignore', 'inherit'] });
    r = spawnSync('apt-get', ['install', '-y', cmd], { stdio: ['ignore', 'ignore', 'inherit'], env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
  }
  p = which(cmd);
  if (!p) usage(`could not install ${cmd}`);
  return p;
}

function resolveRuntime(spec: string): { name: string; bin: string } {
  switch (spec) {
    case 'koci': {
      const bin = join(REPO, 'dist', 'lib', 'cli', 'main.js');
      if (!existsSync(bin)) usage(`koci is not built (${bin}): run npm run build`);
      return { name: 'koci', bin };
    }
    case 'runc':
      return { name: 'runc', bin: ensurePackage('runc') };
    case 'crun':
      ensurePackage('crun');
      // crun 1.8.1 needs the hybrid-cgroup / ociVersion wrapper on this kind of host
      return { name: 'crun', bin: join(REPO, 'conformance', 'crun-wrapper.sh') };
    default: {
      const bin = spec.includes('/') ? resolve(spec) : which(spec);
      if (!bin || !existsSync(bin)) usage(`runtime binary not found: ${spec}`);
      const b = basename(bin);
      const name = b === 'main.js' && bin.startsWith(REPO) ? 'koci' : b.replace(/-wrapper\.sh$/, '').replace(/\.(sh|js)$/, '');
      return { name, bin };
    }
  }
}

function tapEscape(s: string): string {
  return s.replace(/#/g, '\\#').replace(/\n/g, ' ');
}

function main(): number {
  const argv = process.argv.slice(2);
  let runtimeArg = process.env.RUNTIME;
  let filter: RegExp | undefined;
  let list = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--runtime' || a === '-r') runtimeArg = argv[++i];
    else if (a.startsWith('--runtime=')) runtimeArg = a.slice(10);
    else if (a === '--filter' || a === '-f') filter = new RegExp(argv[++i] ?? usage('--filter needs a pattern'), 'i');
    else if (a.startsWith('--filter=')) filter = new RegExp(a.slice(9), 'i');
    else if (a === '--list') list = true;
    else if (a === '--help' || a === '-h') usage();
    else usage(`unknown argument ${a}`);
  }
  const selected: Case[] = cases.filter((c) => !filter || filter.test(c.name));
  if (list) {
    for (const c of selected) process.stdout.write(`${c.name}${c.todo ? `  (koci: TODO issue ${c.todo})` : ''}\n`);
    return 0;
  }
  if (!runtimeArg) usage('no runtime given (--runtime or RUNTIME=)');
  if (!existsSync(join(ROOTFS, 'bin', 'sh'))) usage(`no busybox rootfs at ${ROOTFS}: run node scripts/test-setup.js`);
  if (process.getuid?.() !== 0) usage('the suite needs root (namespaces, mounts, cgroups)');
  const { name, bin } = resolveRuntime(runtimeArg);
  const version = (spawnSync(bin, ['--version'], { encoding: 'utf8' }).stdout ?? '').split('\n')[0].trim();
  const root = mkdtempSync(join(tmpdir(), `conf-root-${name}-`));
  const rt: Runtime = { name, bin, root };
  const started = Date.now();

  const out = (s: string): void => void process.stdout.write(s + '\n');
  out('TAP version 14');
  out(`# runtime ${name}: ${bin} (${version})`);
  const results: CaseResult[] = [];
  let n = 0;
  for (const c of selected) {
    n++;
    const t = new Ctx(rt);
    const t0 = Date.now();
    let skipReason: string | undefined;
    try {
      c.run(t);
    } catch (e) {
      if (e instanceof Skip) skipReason = e.message;
      else t.assertions.push({ ok: false, name: 'case ran without throwing', diag: e instanceof Error ? e.stack?.split('\n').slice(0, 3).join(' | ') : String(e) });
    } finally {
      try {
        t.cleanup();
      } catch (e) {
        t.assertions.push({ ok: false, name: 'cleanup', diag: String(e) });
      }
    }
    const failures = t.assertions.filter((a) => !a.ok);
    const todo = name === 'koci' && c.todo ? `issue ${c.todo}` : undefined;
    let status: Status;
    if (skipReason !== undefined && failures.length === 0) status = 'skip';
    else if (todo) status = 'todo';
    else if (failures.length > 0 || t.assertions.length === 0) status = 'fail';
    else status = 'pass';
    const r: CaseResult = {
      name: c.name,
      status,
      assertions: t.assertions.length,
      failures: failures.map((a) => `${a.name}${a.diag ? `: ${a.diag}` : ''}`),
      ms: Date.now() - t0,
    };
    if (c.note) r.note = c.note;
    if (status === 'skip') r.reason = skipReason;
    if (status === 'todo') {
      r.reason = todo;
      r.passed = failures.length === 0 && skipReason === undefined;
    }
    results.push(r);

    out(`# Subtest: ${c.name}`);
    if (c.note) out(`    # note: ${c.note}`);
    t.assertions.forEach((a: Assertion, i) => {
      out(`    ${a.ok ? 'ok' : 'not ok'} ${i + 1} - ${tapEscape(a.name)}`);
      if (!a.ok && a.diag) {
        out('      ---');
        out(`      diag: ${JSON.stringify(a.diag)}`);
        out('      ...');
      }
    });
    out(`    1..${t.assertions.length}`);
    const ok = status === 'pass' || status === 'skip' || (status === 'todo' && r.passed);
    let directive = '';
    if (status === 'skip') directive = ` # SKIP ${tapEscape(skipReason ?? '')}`;
    if (status === 'todo') directive = ` # TODO ${todo}`;
    out(`${ok ? 'ok' : 'not ok'} ${n} - ${tapEscape(c.name)}${directive}`);
  }
  out(`1..${n}`);
  rmSync(root, { recursive: true, force: true });

  const counts = { pass: 0, fail: 0, skip: 0, todo: 0, assertions: 0 };
  for (const r of results) {
    counts[r.status]++;
    counts.assertions += r.assertions;
  }
  const seconds = Math.round((Date.now() - started) / 100) / 10;
  const run: RunResult = { runtime: name, binary: bin, version, date: new Date().toISOString(), counts, seconds, cases: results };
  for (const line of summary([run])) out(`# ${line}`);
  for (const r of results.filter((x) => x.status !== 'pass')) {
    out(`# ${r.status.toUpperCase()} ${r.name}${r.reason ? ` (${r.reason})` : ''}${r.failures.length && r.status !== 'skip' ? `: ${r.failures[0]}` : ''}`);
  }
  if (!filter) {
    const dir = join(REPO, 'conformance', 'results');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, `${name}.json`), JSON.stringify(run, null, 2) + '\n');
    out(`# results written to conformance/results/${name}.json`);
  }
  return counts.fail > 0 ? 1 : 0;
}

export function summary(runs: RunResult[]): string[] {
  const lines = ['| runtime | version | cases | passed | failed | skipped | todo | assertions | time |', '|---|---|---:|---:|---:|---:|---:|---:|---:|'];
  for (const r of runs) {
    const c = r.counts;
    const todoPassing = r.cases.filter((x) => x.status === 'todo' && x.passed).length;
    const todo = todoPassing ? `${c.todo} (${todoPassing} already pass)` : String(c.todo);
    lines.push(`| ${r.runtime} | ${r.version} | ${r.cases.length} | ${c.pass} | ${c.fail} | ${c.skip} | ${todo} | ${c.assertions} | ${r.seconds} s |`);
  }
  return lines;
}

if (require.main === module) {
  // a reader that goes away (| head) ends the run quietly; per-case cleanup has already run
  process.stdout.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw e;
  });
  process.exitCode = main();
}
