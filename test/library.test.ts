import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import t from 'tap';
// the built package, as users get it: the Runtime spawns dist/lib/process/helper.js
import { ContainerNotFoundError, IncorrectStatusError, InvalidSpecError, Runtime } from '../dist/lib/index';
import { makeBundle, rootSkipReason, uniqueId } from './helpers/fixtures';
import { tmpdir } from 'node:os';

const skip = rootSkipReason();
if (skip) t.comment(`skipping library tests: ${skip}`);

/** a Runtime on a private root; teardown force-deletes what is left in it */
function runtime(t: { teardown(fn: () => Promise<void>): void }): Runtime {
  const root = mkdtempSync(join(tmpdir(), 'koci-lib-root-'));
  const rt = new Runtime({ root });
  t.teardown(async () => {
    for (const c of await rt.list()) await rt.delete(c.id, { force: true }).catch(() => {});
    rmSync(root, { recursive: true, force: true });
  });
  return rt;
}

t.test('library run: exit status and captured output', { skip }, async (t) => {
  const rt = runtime(t);
  const b = makeBundle(t, ['sh', '-c', 'echo pid=$$; hostname; echo oops >&2; exit 3']);
  let started: unknown;
  const r = await rt.run(uniqueId('lib'), { bundle: b.dir, capture: true }, (s) => (started = s));
  t.equal(r.exitCode, 3);
  t.equal(r.signal, null);
  t.equal(r.stdout, `pid=1\n${b.spec.hostname}\n`, 'runs as PID 1 with its own hostname');
  t.equal(r.stderr, 'oops\n');
  t.match(started, { status: 'running' }, 'onStarted sees a running container');
  t.same(await rt.list(), [], 'run deleted the container');
});

t.test('library lifecycle: create, state, start, kill, delete', { skip }, async (t) => {
  const rt = runtime(t);
  const b = makeBundle(t, ['sh', '-c', 'echo ran > /tmp/marker; exec sleep 60'], (s) => (s.root!.readonly = false));
  const id = uniqueId('lib');
  const pidFile = join(b.dir, 'pid');
  const s = await rt.create(id, { bundle: b.dir, pidFile, stdio: 'ignore' });
  t.equal(s.status, 'created');
  t.equal(s.id, id);
  t.equal(readFileSync(pidFile, 'utf8'), String(s.pid));
  t.notOk(existsSync(join(b.rootfs, 'tmp', 'marker')), 'nothing ran before start');
  await t.rejects(rt.create(id, { bundle: b.dir, stdio: 'ignore' }), { name: 'ContainerExistsError' }, 'duplicate id refused');
  t.equal((await rt.start(id)).status, 'running');
  await t.rejects(rt.start(id), IncorrectStatusError);
  await t.rejects(rt.delete(id), IncorrectStatusError, 'delete of a running container needs force');
  const marker = join(b.rootfs, 'tmp', 'marker');
  for (let i = 0; i < 200 && !existsSync(marker); i++) await new Promise((r) => setTimeout(r, 10));
  t.equal(readFileSync(marker, 'utf8'), 'ran\n', 'the process ran after start');
  await rt.kill(id, 'KILL');
  for (let i = 0; i < 200 && (await rt.state(id)).status !== 'stopped'; i++) await new Promise((r) => setTimeout(r, 10));
  t.equal((await rt.state(id)).status, 'stopped');
  await rt.delete(id);
  await t.rejects(rt.state(id), ContainerNotFoundError);
});

t.test('library errors are typed', { skip }, async (t) => {
  const rt = runtime(t);
  const b = makeBundle(t, ['true'], (s) => {
    (s.process as unknown as Record<string, unknown>).args = 'not-an-array';
  });
  const e = await rt.create(uniqueId('lib'), { bundle: b.dir, stdio: 'ignore' }).catch((x: unknown) => x);
  t.type(e, InvalidSpecError);
  t.match((e as InvalidSpecError).issues, [{ pointer: '/process/args' }]);
  t.same(await rt.list(), [], 'nothing created');
  await t.rejects(rt.kill('no-such-container'), ContainerNotFoundError);
});

t.test('examples/run-busybox.js runs as documented', { skip }, async (t) => {
  const b = makeBundle(t, ['sh', '-c', 'echo hello']);
  const r = spawnSync(process.execPath, [join(__dirname, '..', 'examples', 'run-busybox.js'), b.dir], { encoding: 'utf8', timeout: 60_000 });
  t.equal(r.status, 0, r.stderr);
  t.match(r.stdout, /run: exit code 0, 1 lines of output/);
  t.match(r.stdout, /create: created, init pid \d+/);
  t.match(r.stdout, /delete: container "example-\d+-2" does not exist/);
});
