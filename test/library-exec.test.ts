/**
 * Runtime.exec: a process in a running container through the zygote (and
 * the per-call helper for many preserved fds), with args and changes or a
 * whole process document, captured output and exit status, --detach's
 * pid, typed refusals, and nothing left behind once the container is deleted.
 */
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, readlinkSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
// the built package, as users get it
import { ContainerNotFoundError, IncorrectStatusError, InvalidSpecError, Runtime, UnsupportedError } from '../dist/lib/index';
import { type Bundle, makeBundle, rootSkipReason, uniqueId } from './helpers/fixtures';
import { testRuntime } from './helpers/runtime';
import { alive, until } from './helpers/wait';
import { leftovers } from './helpers/leftovers';

const skip = rootSkipReason();
if (skip) t.comment(`skipping library exec tests: ${skip}`);

type T = Parameters<typeof makeBundle>[0];

const runtime = (t: Parameters<typeof testRuntime>[0]) => testRuntime(t, 'koci-libexec-root-');

/** a created-and-started container running `sleep 60` */
async function running(t: T, rt: Runtime, args = ['sleep', '60']): Promise<{ id: string; pid: number; b: Bundle }> {
  const b = makeBundle(t, args);
  const id = uniqueId('lex');
  const s = await rt.create(id, { bundle: b.dir, stdio: 'ignore' });
  await rt.start(id);
  return { id, pid: s.pid!, b };
}

t.test('library exec: args with env and user, captured output, exit status, the container pid namespace', { skip }, async (t) => {
  const rt = runtime(t);
  const { id, pid: init } = await running(t, rt);
  let started = 0;
  const r = await rt.exec(id, { args: ['sh', '-c', 'echo $FOO; id -u; echo oops >&2; exit 7'], env: ['FOO=bar'], user: { uid: 1000 }, capture: true }, (p) => (started = p));
  t.equal(r.exitCode, 7);
  t.equal(r.signal, null);
  t.equal(r.stdout, 'bar\n1000\n', 'the env added, the user changed');
  t.equal(r.stderr, 'oops\n');
  t.ok(r.pid > 0);
  t.equal(started, r.pid, 'onStarted sees the pid before the wait');
  t.notOk(existsSync(`/proc/${r.pid}`), 'the process was waited for (no zombie)');

  const ns = await rt.exec(id, { args: ['sh', '-c', 'readlink /proc/self/ns/pid; echo $$; hostname'], capture: true });
  t.equal(ns.exitCode, 0, ns.stderr);
  const [nsLink, innerPid, host] = ns.stdout!.trim().split('\n');
  t.equal(nsLink, readlinkSync(`/proc/${init}/ns/pid`), "the init's pid namespace");
  t.not(innerPid, '1', 'a new process there, not its init');
  t.equal(host, 'koci', 'the container hostname');

  const signalled = await rt.exec(id, { args: ['sh', '-c', 'kill -KILL $$'], stdio: 'ignore' });
  t.match(signalled, { exitCode: null, signal: 9 }, 'a signal that ended it');
  t.equal((await rt.state(id)).status, 'running', 'the container is untouched');
});

t.test('library exec: a runtime-spec process, checked as exec --process', { skip }, async (t) => {
  const rt = runtime(t);
  const { id } = await running(t, rt);
  const proc = {
    args: ['sh', '-c', 'ulimit -n; grep CapEff /proc/self/status; pwd; echo $X'],
    env: ['PATH=/bin', 'X=from-process'],
    cwd: '/tmp',
    user: { uid: 0, gid: 0 },
    rlimits: [{ type: 'RLIMIT_NOFILE', soft: 77, hard: 77 }],
    capabilities: { bounding: ['CAP_KILL'], effective: ['CAP_KILL'], permitted: ['CAP_KILL'] },
  };
  const r = await rt.exec(id, { process: proc, capture: true });
  t.equal(r.exitCode, 0, r.stderr);
  t.equal(r.stdout, '77\nCapEff:\t0000000000000020\n/tmp\nfrom-process\n');
  const e = await rt.exec(id, { process: { ...proc, cwd: 'relative' }, stdio: 'ignore' }).catch((x: unknown) => x);
  t.type(e, InvalidSpecError, 'an invalid process is refused, typed');
  t.match((e as InvalidSpecError).issues, [{ message: /must be absolute/ }]);
  t.same(await rt.ps(id), [(await rt.state(id)).pid], 'nothing else runs in the container');
});

t.test('library exec: refusals are typed', { skip }, async (t) => {
  const rt = runtime(t);
  await t.rejects(rt.exec(uniqueId('lex-none'), { args: ['true'] }), ContainerNotFoundError, 'an unknown container');
  const { id, b } = await running(t, rt, ['true']);
  t.ok(await until(async () => (await rt.state(id)).status === 'stopped'));
  await t.rejects(rt.exec(id, { args: ['true'], stdio: 'ignore' }), IncorrectStatusError, 'a stopped container (as the CLI)');
  await rt.delete(id);
  await t.rejects(rt.exec(id, { args: ['true'], stdio: 'ignore' }), ContainerNotFoundError, 'a deleted container');

  const s = await running(t, rt);
  await t.rejects(rt.exec(s.id, { args: ['sh'], terminal: true }), UnsupportedError, 'terminal: not in the library yet');
  await t.rejects(rt.exec(s.id, { process: { ...b.spec.process!, terminal: true } }), UnsupportedError, 'nor through a process');
  await t.rejects(rt.exec(s.id, {}), TypeError, 'neither process nor args');
  await t.rejects(rt.exec(s.id, { args: ['true'], process: b.spec.process! }), TypeError, 'both');
  await t.rejects(rt.exec(s.id, { args: ['sleep', '1'], capture: true, detach: true }), TypeError, 'capture with detach');
  await rt.pause(s.id);
  await t.rejects(rt.exec(s.id, { args: ['true'], stdio: 'ignore' }), IncorrectStatusError, 'a paused container');
  await rt.resume(s.id);
  const missing = await rt.exec(s.id, { args: ['/no/such/binary'], stdio: 'ignore' }).catch((x: unknown) => x);
  t.match(missing, { name: 'SetupError' }, 'a missing binary, typed');
  t.same(await rt.ps(s.id), [s.pid], 'and nothing of it is left in the container');
});

t.test('library exec --detach: the pid of a live process in the container; nothing left after delete', { skip }, async (t) => {
  const rt = runtime(t);
  const b = makeBundle(t, ['sleep', '60']);
  const before = leftovers(rt.root!, [b.dir]);
  const id = uniqueId('lex');
  const { pid: init } = await rt.create(id, { bundle: b.dir, stdio: 'ignore' });
  await rt.start(id);
  const r = await rt.exec(id, { args: ['sleep', '60'], detach: true, stdio: 'ignore' });
  t.match(r, { exitCode: null, signal: null });
  t.ok(alive(r.pid), 'the process runs after exec resolved');
  // (exec'd is the sealed trampoline's execve: the program's own follows at once)
  t.ok(await until(() => readFileSync(`/proc/${r.pid}/cmdline`, 'utf8') === 'sleep\x0060\x00'), 'running the command');
  t.equal(readFileSync(`/proc/${r.pid}/cgroup`, 'utf8'), readFileSync(`/proc/${init}/cgroup`, 'utf8'), "in the container's cgroups");
  t.same((await rt.ps(id)).sort(), [init!, r.pid].sort());
  t.equal(readlinkSync(`/proc/${r.pid}/ns/pid`), readlinkSync(`/proc/${init}/ns/pid`));
  await rt.delete(id, { force: true });
  t.ok(await until(() => !alive(r.pid)), 'delete ends it with the container');
  t.ok(await until(() => JSON.stringify(leftovers(rt.root!, [b.dir])) === JSON.stringify(before)), 'nothing left behind');
  t.same(leftovers(rt.root!, [b.dir]), before);
});

t.test('library exec: preserved fds through the zygote and the per-call helper', { skip }, async (t) => {
  const rt = runtime(t);
  const { id } = await running(t, rt);
  const io = mkdtempSync(join(tmpdir(), 'koci-libexec-io-'));
  t.teardown(() => rmSync(io, { recursive: true, force: true }));
  const near = openSync(join(io, 'near'), 'w');
  const r = await rt.exec(id, { args: ['sh', '-c', 'echo via-3 >&3; ls /proc/self/fd | sort -n | tr "\\n" " "'], preserveFds: 1, capture: true, stdio: ['ignore', 'pipe', 'pipe', near] });
  closeSync(near);
  t.equal(r.exitCode, 0, r.stderr);
  t.equal(readFileSync(join(io, 'near'), 'utf8'), 'via-3\n');
  t.match(r.stdout, /^0 1 2 3 4? ?$/, 'nothing else reaches the process (4: the directory ls reads)');

  // more than the zygote holds room for
  const many = 40;
  const far = openSync(join(io, 'far'), 'w');
  const stdio = ['ignore', 'ignore', 'ignore', ...Array.from({ length: many - 1 }, () => 'ignore' as const), far];
  const h = await rt.exec(id, { args: ['sh', '-c', `echo far >&${2 + many}; readlink /proc/self/fd/3 >&${2 + many}; exit 3`], preserveFds: many, stdio });
  closeSync(far);
  t.equal(h.exitCode, 3);
  t.equal(readFileSync(join(io, 'far'), 'utf8'), 'far\n/dev/null\n', `fd ${2 + many} passed; an ignored one is /dev/null, never one of the helper's`);
  const d = await rt.exec(id, { args: ['sleep', '30'], preserveFds: many, stdio: 'ignore', detach: true });
  t.ok(alive(d.pid), 'a detached exec through the helper too');
});
