/**
 * Event-driven `events`: the fd watching under it (eventfd, inotify, pidfd
 * in the event loop), the v1 eventfd and v2 inotify OOM paths, iterators
 * that get their OOM and their end with polling pushed out of reach, and
 * processes that exit on their own once an iterator is done or abandoned.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, unlinkSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { IN_MODIFY } from '../dist/bindings/constants';
import { eventfd, inotifyAddWatch, inotifyInit } from '../dist/bindings/notify';
import { pidfdOpen } from '../dist/bindings/libc';
import { freezeV2, thawV2 } from '../dist/lib/cgroups/freezer';
import { watchOom } from '../dist/lib/cgroups/oom';
import { watchFd } from '../dist/lib/fd-watch';
import { Runtime } from '../dist/lib/index';
import { KOCI, kociCli, makeBundle, repo, rootSkipReason, stateOf, uniqueId } from './helpers/fixtures';

const skip = rootSkipReason();
if (skip) t.comment(`skipping container tests: ${skip}`);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
async function until(what: string, cond: () => boolean, ms = 10_000): Promise<void> {
  for (const end = Date.now() + ms; !cond(); await sleep(20)) if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
}
const HOUR = 3_600_000;

t.test('watchFd wakes the event loop for an eventfd, an inotify fd and a pidfd', async (t) => {
  const efd = eventfd();
  const chunks: Buffer[] = [];
  const ew = watchFd(efd, (b) => chunks.push(b), () => {});
  t.ok(ew, 'this Node can watch fds (else events polls)');
  const one = Buffer.alloc(8);
  one.writeBigUInt64LE(3n);
  writeSync(efd, one);
  await until('the eventfd read', () => chunks.length > 0);
  t.equal(chunks[0].readBigUInt64LE(0), 3n, 'the counter, read when readable');
  ew!.close();

  const dir = mkdtempSync(join(tmpdir(), 'koci-inotify-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'f');
  writeFileSync(file, '');
  const ifd = inotifyInit();
  inotifyAddWatch(ifd, file, IN_MODIFY);
  let modified = 0;
  const iw = watchFd(ifd, () => modified++, () => {});
  writeFileSync(file, 'x');
  await until('the inotify event', () => modified > 0);
  t.pass('IN_MODIFY arrives');
  iw!.close();

  const child = spawn(process.execPath, ['-e', 'process.stdin.on("data", () => process.exit(0))'], { stdio: ['pipe', 'ignore', 'ignore'] });
  t.teardown(() => void (child.exitCode === null && child.kill('SIGKILL')));
  let ended = false;
  const pw = watchFd(pidfdOpen(child.pid!), () => {}, () => (ended = true));
  await sleep(100);
  t.notOk(ended, 'the pidfd stays quiet while the process lives');
  child.stdin!.write('x');
  await until('the pidfd to end', () => ended);
  t.pass('the pidfd ends when the process exits');
  pw!.close();
});

t.test('v2 OOM path: inotify on memory.events, oom_kill compared with the last count', async (t) => {
  // a regular file raises IN_MODIFY on write as kernfs does on cgroup_file_notify
  const dir = mkdtempSync(join(tmpdir(), 'koci-memevents-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const events = join(dir, 'memory.events');
  const write = (high: number, kills: number) => writeFileSync(events, `low 0\nhigh ${high}\nmax 0\noom ${kills}\noom_kill ${kills}\n`);
  write(0, 1);
  const got: number[] = [];
  let gone = false;
  const w = watchOom([dir], (n) => got.push(n), () => (gone = true));
  t.equal(w?.version, 2, 'memory.events without memory.oom_control: the v2 watch');
  write(0, 3);
  await until('two kills', () => got.length === 1);
  t.same(got, [2], 'two new kills since the watch started (the one before it is not reported)');
  write(5, 3);
  write(5, 4);
  await until('the next kill', () => got.reduce((a, b) => a + b, 0) === 3);
  t.same(got.reduce((a, b) => a + b, 0), 3, 'a change of `high` alone reports nothing');
  unlinkSync(events); // as the cgroup's rmdir does: IN_IGNORED
  await until('the watch to end', () => gone);
  t.pass('onGone when memory.events disappears');
  w!.close();
});

t.test('inotify on a real cgroup2 file: cgroup.events of a container', { skip }, async (t) => {
  const koci = kociCli(t);
  const b = makeBundle(t, ['sleep', '1000']);
  const id = uniqueId('ino');
  t.equal(koci(['run', '--detach', '--bundle', b.dir, id]).status, 0);
  const leaves = (JSON.parse(readFileSync(join(koci.root, id, 'state.json'), 'utf8')) as { cgroupLeaves: string[] }).cgroupLeaves;
  const unified = leaves.find((d) => existsSync(join(d, 'cgroup.freeze')));
  if (!unified) {
    t.comment('no cgroup2 leaf with cgroup.freeze: nothing to watch');
    return;
  }
  const ifd = inotifyInit();
  inotifyAddWatch(ifd, join(unified, 'cgroup.events'), IN_MODIFY);
  let modified = 0;
  const w = watchFd(ifd, () => modified++, () => {});
  t.teardown(() => w?.close());
  freezeV2(unified);
  await until('the kernfs notification', () => modified > 0);
  t.pass('freezing modifies cgroup.events and inotify says so');
  thawV2(unified);
});

t.test('the iterator gets the OOM kill and the end of the container with polling out of reach', { skip }, async (t) => {
  const root = mkdtempSync(join(tmpdir(), 'koci-lib-root-'));
  const rt = new Runtime({ root });
  t.teardown(async () => {
    for (const c of await rt.list()) await rt.delete(c.id, { force: true }).catch(() => {});
    rmSync(root, { recursive: true, force: true });
  });
  const b = makeBundle(
    t,
    ['sh', '-c', 'while [ ! -e /tmp/go ]; do sleep 0.05; done; dd if=/dev/zero of=/dev/null bs=128M count=1; exec sleep 1000'],
    (s) => {
      s.root!.readonly = false;
      s.linux!.resources = { ...s.linux!.resources, memory: { limit: 32 << 20 } };
    },
  );
  const id = uniqueId('oomev');
  await rt.create(id, { bundle: b.dir, stdio: 'ignore' });
  await rt.start(id);
  const leaves = (JSON.parse(readFileSync(join(root, id, 'state.json'), 'utf8')) as { cgroupLeaves: string[] }).cgroupLeaves;
  const probe = watchOom(leaves, () => {}, () => {});
  t.ok(probe, 'the memory cgroup can notify (v1 eventfd or v2 inotify)');
  t.comment(`OOM notification through cgroup v${probe?.version}`);
  probe?.close();

  // with the poll and the stats an hour apart, only notifications can deliver the OOM and the end
  const seen: string[] = [];
  const done = (async () => {
    for await (const e of rt.events(id, { noStats: true, interval: HOUR, pollInterval: HOUR })) seen.push(e.type);
  })();
  writeFileSync(join(b.rootfs, 'tmp', 'go'), '');
  await until('an oom event', () => seen.includes('oom'), 20_000);
  t.equal(seen[0], 'oom', 'oom event from the notification');
  if ((await rt.state(id)).status !== 'stopped') await rt.kill(id, 'KILL');
  await done;
  t.pass('the iterator ended when the init exited (pidfd)');
  t.ok(seen.every((e) => e === 'oom'), 'noStats: no stats events');
});

/** run a script in a fresh Node that uses the library; its exit code (null if it had to be killed) */
function runScript(t: Test, body: string): Promise<number | null> {
  const dir = mkdtempSync(join(tmpdir(), 'koci-evscript-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'script.js');
  writeFileSync(file, `const { Runtime } = require(${JSON.stringify(join(repo, 'dist', 'lib', 'index.js'))});\n${body}`);
  const child = spawn(process.execPath, [file], { stdio: ['ignore', 'inherit', 'inherit'] });
  // a guard against a hang, not a timing assert: a process kept alive by a handle never exits
  const guard = setTimeout(() => child.kill('SIGKILL'), 60_000);
  return new Promise((resolve) =>
    child.on('exit', (code) => {
      clearTimeout(guard);
      resolve(code);
    }),
  );
}

t.test('a process using the iterator exits by itself: break, abandon, container stop', { skip }, async (t) => {
  const koci = kociCli(t);
  const b = makeBundle(t, ['sleep', '1000']);
  const id = uniqueId('evexit');
  t.equal(koci(['run', '--detach', '--bundle', b.dir, id]).status, 0);
  const rt = `const rt = new Runtime({ root: ${JSON.stringify(koci.root)} });\n`;
  const broke = await runScript(t, `${rt}(async () => { for await (const e of rt.events(${JSON.stringify(id)}, { interval: 50 })) if (e.type === 'stats') break; })();`);
  t.equal(broke, 0, 'break (return()) closes the watches');
  const abandoned = await runScript(t, `${rt}(async () => { const it = rt.events(${JSON.stringify(id)}, { interval: ${HOUR} }); await it.next(); })();`);
  t.equal(abandoned, 0, 'an iterator suspended at a yield and never returned holds nothing');
  t.equal(stateOf(koci, id).status, 'running', 'the container is untouched');

  const sync = mkdtempSync(join(tmpdir(), 'koci-evsync-'));
  t.teardown(() => rmSync(sync, { recursive: true, force: true }));
  const ready = join(sync, 'ready');
  const stopped = runScript(
    t,
    `${rt}(async () => { let n = 0; for await (const e of rt.events(${JSON.stringify(id)}, { interval: ${HOUR} })) if (n++ === 0) require('fs').writeFileSync(${JSON.stringify(ready)}, ''); })();`,
  );
  await until('the script to iterate', () => existsSync(ready), 30_000);
  t.equal(koci(['kill', id, 'KILL']).status, 0);
  t.equal(await stopped, 0, 'the iterator ends when the container stops and the process exits');
});

t.test('without fd watching (no pipe handle in this Node) events polls and still ends', { skip }, async (t) => {
  const koci = kociCli(t);
  const b = makeBundle(t, ['sleep', '1000']);
  const id = uniqueId('evpoll');
  t.equal(koci(['run', '--detach', '--bundle', b.dir, id]).status, 0);
  const sync = mkdtempSync(join(tmpdir(), 'koci-evsync-'));
  t.teardown(() => rmSync(sync, { recursive: true, force: true }));
  const ready = join(sync, 'ready');
  const result = join(sync, 'result');
  const polled = runScript(
    t,
    `process.binding = () => { throw new Error('no process.binding here'); };
const { watchFd } = require(${JSON.stringify(join(repo, 'dist', 'lib', 'fd-watch.js'))});
const rt = new Runtime({ root: ${JSON.stringify(koci.root)} });
(async () => {
  const types = [];
  for await (const e of rt.events(${JSON.stringify(id)}, { interval: 50, pollInterval: 20 })) {
    types.push(e.type);
    if (types.length === 2) require('fs').writeFileSync(${JSON.stringify(ready)}, '');
  }
  require('fs').writeFileSync(${JSON.stringify(result)}, JSON.stringify({ watchFd: watchFd(0, () => {}, () => {}) === undefined ? 'unavailable' : 'available', types }));
})();`,
  );
  await until('the script to iterate', () => existsSync(ready), 30_000);
  t.equal(koci(['kill', id, 'KILL']).status, 0);
  t.equal(await polled, 0, 'the polled iterator ends when the container stops and the process exits');
  const r = JSON.parse(readFileSync(result, 'utf8')) as { watchFd: string; types: string[] };
  t.equal(r.watchFd, 'unavailable', 'the fallback was what ran');
  t.ok(r.types.length >= 2 && r.types.every((x) => x === 'stats'), 'stats on the interval');
});

t.test('koci events exits on SIGTERM', { skip }, async (t) => {
  const koci = kociCli(t);
  const b = makeBundle(t, ['sleep', '1000']);
  const id = uniqueId('evterm');
  t.equal(koci(['run', '--detach', '--bundle', b.dir, id]).status, 0);
  const ev = spawn(KOCI, ['--root', koci.root, 'events', '--interval', '1h', id], { stdio: ['ignore', 'pipe', 'inherit'] });
  t.teardown(() => void (ev.exitCode === null && ev.kill('SIGKILL')));
  const exited = new Promise<number | null>((r) => ev.on('exit', (code) => r(code)));
  let out = '';
  ev.stdout.setEncoding('utf8').on('data', (s: string) => (out += s));
  await until('the first stats line', () => out.includes('\n'));
  t.match(JSON.parse(out.split('\n')[0]), { type: 'stats', id });
  ev.kill('SIGTERM');
  t.equal(await exited, 0, 'events returns 0 and leaves nothing holding the loop');
  t.equal(spawnSync(KOCI, ['--root', koci.root, 'state', id]).status, 0, 'the container is untouched');
});
