/**
 * pause/resume (v1 freezer; cgroup.freeze on the unified hierarchy), ps,
 * kill --all, events (stats and OOM) — real containers, real cgroups.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { freezeV2, thawV2 } from '../dist/lib/cgroups/freezer';
import { IncorrectStatusError, Runtime } from '../dist/lib/index';
import { KOCI, type Koci, kociCli, makeBundle, rootSkipReason, stateOf, uniqueId } from './helpers/fixtures';

const skip = rootSkipReason();
if (skip) t.comment(`skipping pause/ps/events tests: ${skip}`);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function leaves(koci: Koci, id: string): string[] {
  return (JSON.parse(readFileSync(join(koci.root, id, 'state.json'), 'utf8')) as { cgroupLeaves: string[] }).cgroupLeaves;
}
const leafWith = (ls: string[], file: string) => ls.find((d) => existsSync(join(d, file)));

function alive(pid: number): boolean {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'latin1');
    return !/^[ZX]$/.test(s.slice(s.lastIndexOf(')') + 2).split(' ')[0]);
  } catch {
    return false;
  }
}

async function until(what: string, cond: () => boolean, ms = 5000): Promise<void> {
  for (const end = Date.now() + ms; !cond(); await sleep(20)) if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
}

const COUNTER = 'i=0; while true; do i=$((i+1)); echo $i > /tmp/count; sleep 0.01; done';
const count = (rootfs: string) => Number(readFileSync(join(rootfs, 'tmp', 'count'), 'utf8').trim() || '0');

t.test('pause freezes, state says paused, resume continues', { skip }, async (t) => {
  const koci = kociCli(t);
  const b = makeBundle(t, ['sh', '-c', `trap "exit 42" USR1; ${COUNTER}`], (s) => (s.root!.readonly = false));
  const id = uniqueId('pause');
  t.equal(koci(['run', '--detach', '--bundle', b.dir, id]).status, 0);
  await until('the counter', () => existsSync(join(b.rootfs, 'tmp', 'count')) && count(b.rootfs) > 3);
  const freezer = leafWith(leaves(koci, id), 'freezer.state')!;
  t.ok(freezer, 'the container has a v1 freezer leaf');

  const p = koci(['pause', id]);
  t.equal(p.status, 0, `pause succeeds: ${p.stderr}`);
  t.equal(readFileSync(join(freezer, 'freezer.state'), 'utf8').trim(), 'FROZEN');
  t.equal(stateOf(koci, id).status, 'paused');
  t.match(JSON.parse(koci(['list', '--format', 'json']).stdout), [{ id, status: 'paused' }], 'list shows paused too');
  const frozenAt = count(b.rootfs);
  await sleep(300);
  t.equal(count(b.rootfs), frozenAt, 'no progress while paused');
  t.match(koci(['pause', id]), { status: 1, stderr: /cannot pause .* paused/ }, 'pause twice fails');
  t.match(koci(['delete', id]), { status: 1, stderr: /cannot delete .* paused/ }, 'delete of a paused container needs --force');
  t.equal(koci(['start', id]).status, 1, 'start of a paused container fails');

  const r = koci(['resume', id]);
  t.equal(r.status, 0, `resume succeeds: ${r.stderr}`);
  t.equal(stateOf(koci, id).status, 'running');
  t.equal(readFileSync(join(freezer, 'freezer.state'), 'utf8').trim(), 'THAWED');
  await until('progress after resume', () => count(b.rootfs) > frozenAt + 3);
  t.pass('progress after resume');
  t.match(koci(['resume', id]), { status: 1, stderr: /cannot resume .* running/ }, 'resume of a running container fails');

  // a signal sent while paused is delivered on resume (as runc: only SIGKILL thaws)
  t.equal(koci(['pause', id]).status, 0);
  t.equal(koci(['kill', id, 'USR1']).status, 0, 'kill of a paused container works');
  await sleep(200);
  t.equal(stateOf(koci, id).status, 'paused', 'the signal waits while frozen');
  t.equal(koci(['resume', id]).status, 0);
  await until('exit on the delivered USR1', () => stateOf(koci, id).status === 'stopped');
  t.pass('USR1 delivered on resume');
  t.match(koci(['pause', id]), { status: 1, stderr: /stopped/ }, 'pause of a stopped container fails');
  t.equal(koci(['delete', id]).status, 0);
});

t.test('kill KILL and delete --force of a paused container', { skip }, async (t) => {
  const koci = kociCli(t);
  const b = makeBundle(t, ['sh', '-c', 'sleep 1000 & while true; do sleep 0.05; done']);
  const a = uniqueId('pk');
  const d = uniqueId('pd');
  t.equal(koci(['run', '--detach', '--bundle', b.dir, a]).status, 0);
  t.equal(koci(['run', '--detach', '--bundle', b.dir, d]).status, 0);
  t.equal(koci(['pause', a]).status, 0);
  t.equal(koci(['pause', d]).status, 0);
  t.equal(koci(['kill', a, 'KILL']).status, 0);
  await until('SIGKILL to end a paused container', () => stateOf(koci, a).status === 'stopped');
  t.pass('SIGKILL thaws and kills');
  t.equal(koci(['delete', a]).status, 0);

  const dl = leaves(koci, d);
  const pids = JSON.parse(koci(['ps', '--format', 'json', d]).stdout) as number[];
  t.ok(pids.length >= 2, 'ps works on a paused container');
  const del = koci(['delete', '--force', d]);
  t.equal(del.status, 0, `delete --force of a paused container: ${del.stderr}`);
  t.same(pids.filter(alive), [], 'every process is gone');
  t.same(dl.filter(existsSync), [], 'its cgroups are removed');
});

t.test('cgroup.freeze on the unified hierarchy (v2 freezer) freezes and thaws', { skip }, async (t) => {
  const koci = kociCli(t);
  const b = makeBundle(t, ['sh', '-c', COUNTER], (s) => (s.root!.readonly = false));
  const id = uniqueId('v2f');
  t.equal(koci(['run', '--detach', '--bundle', b.dir, id]).status, 0);
  await until('the counter', () => existsSync(join(b.rootfs, 'tmp', 'count')) && count(b.rootfs) > 3);
  const unified = leafWith(leaves(koci, id), 'cgroup.freeze');
  if (!unified) return t.skip('no cgroup2 leaf with cgroup.freeze');
  freezeV2(unified);
  t.match(readFileSync(join(unified, 'cgroup.events'), 'utf8'), /^frozen 1$/m);
  t.equal(stateOf(koci, id).status, 'paused', 'state reads the v2 freezer too');
  const at = count(b.rootfs);
  await sleep(300);
  t.equal(count(b.rootfs), at, 'no progress while frozen through cgroup.freeze');
  t.equal(koci(['resume', id]).status, 0, 'resume thaws cgroup.freeze');
  t.match(readFileSync(join(unified, 'cgroup.events'), 'utf8'), /^frozen 0$/m);
  await until('progress after thaw', () => count(b.rootfs) > at + 3);
  freezeV2(unified);
  thawV2(unified);
  t.equal(stateOf(koci, id).status, 'running');
  // teardowns run last-registered first: the bundle's rm would race the counter still writing into it
  t.equal(koci(['delete', '--force', id]).status, 0);
});

t.test('ps lists the container processes; kill --all reaches every one', { skip }, async (t) => {
  const koci = kociCli(t);
  const child = 'trap "echo got > /tmp/child" USR1; while true; do sleep 0.02; done';
  const b = makeBundle(t, ['sh', '-c', `sh -c '${child}' & trap "echo got > /tmp/init" USR1; while true; do sleep 0.02; done`], (s) => (s.root!.readonly = false));
  const id = uniqueId('ps');
  t.equal(koci(['run', '--detach', '--bundle', b.dir, id]).status, 0);
  const init = stateOf(koci, id).pid as number;
  let pids: number[] = [];
  await until('the child', () => (pids = JSON.parse(koci(['ps', '--format', 'json', id]).stdout) as number[]).length >= 3);
  t.ok(pids.includes(init), 'json lists the init');
  const table = koci(['ps', id]);
  t.equal(table.status, 0);
  const lines = table.stdout.trim().split('\n');
  t.match(lines[0], /^UID\s+PID\s+PPID\s+C\s+STIME\s+TTY\s+TIME\s+CMD$/, 'ps -ef columns');
  const rows = lines.slice(1).map((l) => l.trim().split(/\s+/));
  const initRow = rows.find((r) => Number(r[1]) === init);
  t.ok(initRow, 'the table has the init');
  t.equal(initRow?.[0], 'root');
  t.match(initRow?.slice(7).join(' '), /^sh -c sh -c /, 'CMD from /proc/<pid>/cmdline');
  const childRow = rows.find((r) => Number(r[2]) === init && r.slice(7).join(' ').startsWith('sh -c trap'));
  t.ok(childRow, 'the table has the child shell, PPID = init');
  t.match(childRow?.[6], /^\d\d:\d\d:\d\d$/, 'TIME column');
  t.match(koci(['ps', '--format', 'yaml', id]), { status: 1, stderr: /--format/ });

  t.equal(koci(['kill', '--all', id, 'USR1']).status, 0);
  await until('both traps', () => existsSync(join(b.rootfs, 'tmp', 'init')) && existsSync(join(b.rootfs, 'tmp', 'child')));
  t.pass('kill --all USR1 reached the init and the child');
  const all = JSON.parse(koci(['ps', '--format', 'json', id]).stdout) as number[];
  t.equal(koci(['kill', '--all', id, 'KILL']).status, 0);
  await until('every process to die', () => all.every((p) => !alive(p)));
  t.pass('kill --all KILL killed every process');
  await until('stopped', () => stateOf(koci, id).status === 'stopped');
  t.match(koci(['ps', id]), { status: 1, stderr: /stopped/ }, 'ps of a stopped container fails');
});

t.test('events --stats matches the cgroup files', { skip }, async (t) => {
  const koci = kociCli(t);
  const b = makeBundle(t, ['sh', '-c', 'sleep 1000 & exec sleep 999']);
  const id = uniqueId('stats');
  t.equal(koci(['run', '--detach', '--bundle', b.dir, id]).status, 0);
  const ls = leaves(koci, id);
  const file = (f: string) => Number(readFileSync(join(leafWith(ls, f)!, f), 'utf8').trim());
  await until('two processes', () => file('pids.current') === 2);
  const r = koci(['events', '--stats', id]);
  t.equal(r.status, 0, r.stderr);
  const lines = r.stdout.trim().split('\n');
  t.equal(lines.length, 1, 'one JSON line');
  const e = JSON.parse(lines[0]);
  t.match(e, { type: 'stats', id, data: { cpu: { usage: {} }, memory: { usage: {} }, pids: {}, blkio: {} } });
  t.equal(e.data.pids.current, 2, 'pids.current');
  t.equal(e.data.pids.limit, leafWith(ls, 'pids.max') && readFileSync(join(leafWith(ls, 'pids.max')!, 'pids.max'), 'utf8').trim() === 'max' ? 0 : file('pids.max'));
  const mem = file('memory.usage_in_bytes');
  t.ok(e.data.memory.usage.usage > 0, 'memory usage');
  t.ok(Math.abs(e.data.memory.usage.usage - mem) < 4 << 20, `memory usage ${e.data.memory.usage.usage} ~ memory.usage_in_bytes ${mem}`);
  t.equal(e.data.memory.usage.failcnt, file('memory.failcnt'));
  t.ok(e.data.memory.usage.max >= e.data.memory.usage.usage, 'max usage >= usage');
  t.type(e.data.memory.raw.rss, 'number', 'memory.stat as raw');
  const cpu = file('cpuacct.usage');
  t.ok(e.data.cpu.usage.total > 0 && e.data.cpu.usage.total <= cpu, `cpu total ${e.data.cpu.usage.total} <= cpuacct.usage ${cpu}`);
  t.equal(e.data.cpu.usage.percpu.length, readFileSync(join(leafWith(ls, 'cpuacct.usage_percpu')!, 'cpuacct.usage_percpu'), 'utf8').trim().split(/\s+/).length, 'percpu');
  t.ok(Array.isArray(e.data.blkio.ioServiceBytesRecursive), 'blkio entries');
  t.match(koci(['events', '--interval', 'soon', id]), { status: 1, stderr: /invalid duration/ });
});

t.test('events reports an OOM kill', { skip }, async (t) => {
  const koci = kociCli(t);
  const limit = 32 << 20;
  const b = makeBundle(
    t,
    ['sh', '-c', 'while [ ! -e /tmp/go ]; do sleep 0.05; done; dd if=/dev/zero of=/dev/null bs=128M count=1; echo rc=$? > /tmp/dd; exec sleep 1000'],
    (s) => {
      s.root!.readonly = false;
      s.linux!.resources = { ...s.linux!.resources, memory: { limit } };
    },
  );
  const id = uniqueId('oom');
  const c = koci(['create', '--bundle', b.dir, id]);
  t.equal(c.status, 0, c.stderr);
  // if the resources code does not set the limit (yet), set it here, before start
  const memLeaf = leafWith(leaves(koci, id), 'memory.limit_in_bytes') ?? leafWith(leaves(koci, id), 'memory.max')!;
  const limitFile = existsSync(join(memLeaf, 'memory.limit_in_bytes')) ? 'memory.limit_in_bytes' : 'memory.max';
  if (Number(readFileSync(join(memLeaf, limitFile), 'utf8').trim()) !== limit) writeFileSync(join(memLeaf, limitFile), String(limit));
  t.equal(koci(['start', id]).status, 0);

  const ev = spawn(KOCI, ['--root', koci.root, 'events', '--interval', '1s', id], { stdio: ['ignore', 'pipe', 'pipe'] });
  const exited = new Promise<number | null>((r) => ev.on('exit', (code) => r(code)));
  t.teardown(() => {
    if (ev.exitCode === null) ev.kill('SIGKILL');
  });
  const seen: Array<{ type: string; id: string }> = [];
  let buf = '';
  ev.stdout.setEncoding('utf8').on('data', (s: string) => {
    buf += s;
    for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
      seen.push(JSON.parse(buf.slice(0, nl)));
      buf = buf.slice(nl + 1);
    }
  });
  await until('a first stats event', () => seen.some((e) => e.type === 'stats'));
  t.match(seen[0], { type: 'stats', id, data: { memory: { usage: { limit } } } }, 'the stats show the limit');
  writeFileSync(join(b.rootfs, 'tmp', 'go'), '');
  await until('an oom event', () => seen.some((e) => e.type === 'oom'), 15000);
  t.same(seen.find((e) => e.type === 'oom'), { type: 'oom', id }, 'oom event, as runc prints it');
  // The kernel may OOM-kill sh too before dd's pages are reaped; then the container stops.
  const ddFile = join(b.rootfs, 'tmp', 'dd');
  await until('dd to end', () => existsSync(ddFile) || stateOf(koci, id).status === 'stopped');
  if (existsSync(ddFile)) t.equal(readFileSync(ddFile, 'utf8'), 'rc=137\n', 'dd was OOM-killed');
  // events ends by itself once the container stops
  if (stateOf(koci, id).status !== 'stopped') t.equal(koci(['kill', id, 'KILL']).status, 0);
  t.equal(await exited, 0, 'events exits when the container stops');
});

t.test('library: pause/resume, ps, stats and the events iterator', { skip }, async (t) => {
  const root = mkdtempSync(join(tmpdir(), 'koci-lib-root-'));
  const rt = new Runtime({ root });
  t.teardown(async () => {
    for (const c of await rt.list()) await rt.delete(c.id, { force: true }).catch(() => {});
    rmSync(root, { recursive: true, force: true });
  });
  const b = makeBundle(t, ['sh', '-c', 'sleep 1000 & exec sleep 999']);
  const id = uniqueId('libev');
  await rt.create(id, { bundle: b.dir, stdio: 'ignore' });
  const { pid } = await rt.start(id);
  await rt.pause(id);
  t.equal((await rt.state(id)).status, 'paused');
  await t.rejects(rt.pause(id), IncorrectStatusError);
  await rt.resume(id);
  t.equal((await rt.state(id)).status, 'running');
  const pids = await rt.ps(id);
  t.ok(pids.includes(pid!), 'ps has the init');
  const details = await rt.ps(id, { details: true });
  t.match(details.find((p) => p.pid === pid), { ppid: Number, cmd: 'sleep 999', user: 'root' });
  const s = await rt.stats(id);
  t.ok(s.memory.usage.usage! > 0 && s.cpu.usage.total > 0, 'stats has memory and cpu numbers');

  const got: string[] = [];
  const t0 = Date.now();
  for await (const e of rt.events(id, { interval: 100 })) {
    got.push(e.type);
    if (e.type === 'stats') t.ok(e.data.pids.current! >= 1);
    if (got.length === 3) break;
  }
  t.same(got, ['stats', 'stats', 'stats'], 'the iterator yields stats');
  t.ok(Date.now() - t0 >= 180, 'every interval');
  await rt.kill(id, 'KILL');
  for (let i = 0; i < 250 && (await rt.state(id)).status !== 'stopped'; i++) await sleep(20);
  const it = rt.events(id, { interval: 50 });
  await t.rejects(it.next(), IncorrectStatusError, 'events of a stopped container fails');
});
