import { closeSync, createWriteStream, existsSync, mkdtempSync, openSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import t from 'tap';
// the built package, as users get it: the Runtime spawns dist/lib/process/helper.js
import { ContainerNotFoundError, IncorrectStatusError, InvalidSpecError, Runtime } from '../dist/lib/index';
// the library's own copy: koffi refuses a second declaration of the socket structs
import { acceptUnix, listenUnix, recvWithFds } from '../dist/bindings/socket';
import { makeBundle, rootSkipReason, uniqueId } from './helpers/fixtures';
import { leftovers } from './helpers/leftovers';
import { testRuntime } from './helpers/runtime';
import { alive, childrenOf, until } from './helpers/wait';
import { tmpdir } from 'node:os';

const skip = rootSkipReason();
if (skip) t.comment(`skipping library tests: ${skip}`);

const runtime = (t: Parameters<typeof testRuntime>[0]) => testRuntime(t, 'koci-lib-root-');

/** PIDs of koci zygotes whose parent is `ppid` */
function zygotesOf(ppid: number): number[] {
  const found: number[] = [];
  for (const p of readdirSync('/proc').filter((x) => /^\d+$/.test(x))) {
    try {
      const stat = readFileSync(`/proc/${p}/stat`, 'utf8');
      const parent = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (parent === ppid && readFileSync(`/proc/${p}/cmdline`, 'utf8').includes('process/zygote-main.js')) found.push(Number(p));
    } catch {
      /* gone meanwhile */
    }
  }
  return found;
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

t.test('library: parallel runs from one Runtime, each its own container', { skip }, async (t) => {
  const rt = runtime(t);
  const N = 8;
  const boxes = Array.from({ length: N }, (_, i) => makeBundle(t, ['sh', '-c', 'hostname; echo err-$(hostname) >&2; exit $(hostname | cut -d- -f2)'], (s) => (s.hostname = `lp-${i}`)));
  const results = await Promise.all(boxes.map((b) => rt.run(uniqueId('lpar'), { bundle: b.dir, capture: true })));
  results.forEach((r, i) => {
    t.equal(r.stdout, `lp-${i}\n`, `container ${i}: its own stdout`);
    t.equal(r.stderr, `err-lp-${i}\n`, `container ${i}: its own stderr`);
    t.equal(r.exitCode, i, `container ${i}: its own exit status`);
  });
  t.same(await rt.list(), [], 'every run deleted its container');
});

t.test('library stdio: fds, streams, pipe, preserved fds (zygote and per-call helper)', { skip }, async (t) => {
  const rt = runtime(t);
  const io = mkdtempSync(join(tmpdir(), 'koci-lib-io-'));
  t.teardown(() => rmSync(io, { recursive: true, force: true }));
  const file = (name: string) => join(io, name);

  // a plain fd for stdout and stderr; stdin 'pipe' reads EOF at once
  const b1 = makeBundle(t, ['sh', '-c', 'cat; echo out; echo err >&2']);
  const fd = openSync(file('1'), 'w');
  const r1 = await rt.run(uniqueId('lio'), { bundle: b1.dir, stdio: ['pipe', fd, fd] });
  closeSync(fd);
  t.equal(r1.exitCode, 0);
  t.equal(readFileSync(file('1'), 'utf8'), 'out\nerr\n', 'fd stdio, stdin at EOF');

  // a stream with an fd
  const ws = createWriteStream(file('2'));
  await new Promise((r) => ws.once('open', r));
  const b2 = makeBundle(t, ['sh', '-c', 'echo via-stream']);
  await rt.run(uniqueId('lio'), { bundle: b2.dir, stdio: ['ignore', ws, 'ignore'] });
  await new Promise((r) => ws.end(r));
  t.equal(readFileSync(file('2'), 'utf8'), 'via-stream\n', 'stream stdio');

  // preserved fds land on 3.. in order ('ignore': /dev/null, never one of the runtime's fds); capture keeps them
  writeFileSync(file('in'), 'from-fd-4\n');
  const out3 = openSync(file('3'), 'w');
  const in4 = openSync(file('in'), 'r');
  const b3 = makeBundle(t, ['sh', '-c', 'cat <&4 >&3; echo to-3 >&3; readlink /proc/self/fd/5 >&3; ls /proc/self/fd/ | sort -n | tr "\\n" " "']);
  const r3 = await rt.run(uniqueId('lio'), { bundle: b3.dir, preserveFds: 3, capture: true, stdio: ['ignore', 'ignore', 'ignore', out3, in4, 'ignore'] });
  closeSync(out3);
  closeSync(in4);
  t.equal(r3.exitCode, 0, r3.stderr);
  t.equal(readFileSync(file('3'), 'utf8'), 'from-fd-4\nto-3\n/dev/null\n', 'preserved fds 3 and 4 passed, 5 ignored');
  t.match(r3.stdout, /^0 1 2 3 4 5 6? ?$/, 'nothing else reaches the container (6: the directory ls reads)');

  // more preserved fds than the zygote holds room for: the per-call helper
  const many = 40;
  const last = openSync(file('last'), 'w');
  const b4 = makeBundle(t, ['sh', '-c', `echo far >&${2 + many}`]);
  const stdio = ['ignore', 'ignore', 'ignore', ...Array.from({ length: many - 1 }, () => 'ignore' as const), last];
  const r4 = await rt.run(uniqueId('lio'), { bundle: b4.dir, preserveFds: many, stdio });
  closeSync(last);
  t.equal(r4.exitCode, 0);
  t.equal(readFileSync(file('last'), 'utf8'), 'far\n', `fd ${2 + many} passed`);

  await t.rejects(rt.run(uniqueId('lio'), { bundle: b1.dir, stdio: ['ignore', 'ipc', 'ignore'] }), TypeError, 'ipc is refused');
  t.same(await rt.list(), []);
});

t.test('library warnings: each reported once', { skip }, async (t) => {
  const warnings: string[] = [];
  const root = mkdtempSync(join(tmpdir(), 'koci-lib-root-'));
  const rt = new Runtime({ root, onWarning: (m) => warnings.push(m) });
  t.teardown(async () => {
    await rt.close();
    rmSync(root, { recursive: true, force: true });
  });
  const b = makeBundle(t, ['true'], (s) => (s.hooks = { poststop: [{ path: '/bin/false' }], poststart: [{ path: '/bin/false' }] }));
  const r = await rt.run(uniqueId('lwarn'), { bundle: b.dir, stdio: 'ignore' });
  t.equal(r.exitCode, 0);
  t.equal(warnings.length, 2, warnings.join('; '));
  t.match(warnings[0], /poststart/);
  t.match(warnings[1], /poststop/);
});

t.test('library zygote: close() ends it, containers outlive it, the host exit ends it', { skip }, async (t) => {
  const root = mkdtempSync(join(tmpdir(), 'koci-lib-root-'));
  const rt = new Runtime({ root });
  t.teardown(async () => {
    for (const c of await rt.list()) await rt.delete(c.id, { force: true }).catch(() => {});
    await rt.close();
    rmSync(root, { recursive: true, force: true });
  });
  const b = makeBundle(t, ['sh', '-c', 'echo ran > /tmp/marker'], (s) => (s.root!.readonly = false));
  const id = uniqueId('lzyg');
  const created = await rt.create(id, { bundle: b.dir, stdio: 'ignore' });
  const [zygote] = zygotesOf(process.pid);
  t.ok(zygote, 'a zygote runs after the first create');
  // (the create's worker may still be on its way out)
  t.ok(await until(() => zygotesOf(zygote).length === 1), 'with one spare worker waiting for the next request');
  const [spare] = zygotesOf(zygote);
  await rt.close();
  t.notOk(alive(zygote), 'close() waited for the zygote to end');
  t.ok(await until(() => !alive(spare)), 'its spare ends too');
  t.same(zygotesOf(process.pid), []);
  t.ok(alive(created.pid!), 'the created container does not depend on the zygote');
  await rt.start(id);
  t.ok(await until(() => existsSync(join(b.rootfs, 'tmp', 'marker'))), 'and starts after it is gone');
  t.ok(await until(() => !alive(created.pid!)));
  await rt.delete(id);
  const again = await rt.run(uniqueId('lzyg'), { bundle: b.dir, capture: true });
  t.equal(again.exitCode, 0, 'a closed Runtime starts a new zygote when needed');
  const [killed] = zygotesOf(process.pid);
  t.ok(await until(() => zygotesOf(killed).length === 1));
  const [itsSpare] = zygotesOf(killed);
  process.kill(killed, 'SIGKILL');
  t.ok(await until(() => !alive(killed) && !alive(itsSpare)), 'a killed zygote takes its spare along');
  const after = await rt.run(uniqueId('lzyg'), { bundle: b.dir, capture: true });
  t.equal(after.exitCode, 0, 'and the next run starts a new one');

  // a host that never calls close(): its exit closes the control socket
  const script = `
    const { Runtime } = require(${JSON.stringify(join(__dirname, '..', 'dist', 'lib', 'index.js'))});
    const fs = require('node:fs');
    new Runtime({ root: ${JSON.stringify(root)} }).run(${JSON.stringify(uniqueId('lzyg'))}, { bundle: ${JSON.stringify(b.dir)}, stdio: 'ignore' }).then((r) => {
      const z = fs.readdirSync('/proc').filter((p) => /^\\d+$/.test(p)).filter((p) => {
        try { return fs.readFileSync('/proc/' + p + '/cmdline', 'utf8').includes('process/zygote-main.js') && fs.readFileSync('/proc/' + p + '/stat', 'utf8').split(') ')[1].split(' ')[1] === String(process.pid); } catch { return false; }
      });
      console.log(JSON.stringify({ exitCode: r.exitCode, zygotes: z.map(Number) }));
    });`;
  const host = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 60_000 });
  t.equal(host.status, 0, `the host exits on its own (the zygote does not keep it alive): ${host.stderr}`);
  const out = JSON.parse(host.stdout) as { exitCode: number; zygotes: number[] };
  t.equal(out.exitCode, 0);
  t.equal(out.zygotes.length, 1, 'the host had a zygote');
  t.ok(await until(() => !alive(out.zygotes[0])), 'which ended with the host');
});

t.test('library zygote: the next spare comes once the worker has made its container, or at once for a waiting request', { skip }, async (t) => {
  // every mount of every container of this Runtime slowed (the zygote reads it when it starts): a create takes ~1 s
  process.env.KOCI_TEST_MOUNT_DELAY_MS = '120';
  const rt = runtime(t);
  const b = makeBundle(t, ['true']);
  try {
    t.equal((await rt.run(uniqueId('lspare'), { bundle: b.dir, stdio: 'ignore' })).exitCode, 0, 'the zygote is up');
  } finally {
    delete process.env.KOCI_TEST_MOUNT_DELAY_MS;
  }
  const [zygote] = zygotesOf(process.pid);
  t.ok(await until(() => zygotesOf(zygote).length === 1), 'one spare waits');
  /** workers whose init is born (it mounts now, for a second or so) */
  const making = () => zygotesOf(zygote).filter((w) => childrenOf(w).length > 0);

  const a = rt.create(uniqueId('lspare'), { bundle: b.dir, stdio: 'ignore' });
  t.ok(await until(() => making().length === 1), "the spare took the request: its container's init mounts");
  t.same(zygotesOf(zygote), making(), 'no next spare while it does');
  const bReq = rt.create(uniqueId('lspare'), { bundle: b.dir, stdio: 'ignore' });
  t.ok(await until(() => making().length === 2), 'a second request waiting: a spare is forked at once, and takes it while the first container is still being made');
  t.equal((await a).status, 'created');
  t.equal((await bReq).status, 'created');
  t.ok(await until(() => zygotesOf(zygote).length === 1 && making().length === 0), 'then one spare waits again');
});

t.test('library seccomp: the program compiled once (zygote memo) applies on every run', { skip }, async (t) => {
  const rt = runtime(t);
  const b = makeBundle(t, ['sh', '-c', 'grep ^Seccomp: /proc/self/status; mkdir /tmp/x 2>&1; echo status=$?'], (s) => {
    s.root!.readonly = false;
    s.linux!.seccomp = { defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ names: ['mkdir', 'mkdirat'], action: 'SCMP_ACT_ERRNO', errnoRet: 13 }] };
  });
  for (let i = 0; i < 3; i++) {
    const r = await rt.run(uniqueId('lsec'), { bundle: b.dir, capture: true });
    t.match(r.stdout, /^Seccomp:\s+2\n.*Permission denied\nstatus=1\n$/s, `run ${i}: mkdir fails with errnoRet (EACCES)`);
  }

  // SCMP_ACT_NOTIFY: the listener flag and the fd hand-over work from the memo too
  const n = makeBundle(t, ['true']);
  const sock = join(n.dir, 'listener.sock');
  n.spec.linux!.seccomp = { defaultAction: 'SCMP_ACT_ALLOW', listenerPath: sock, syscalls: [{ names: ['mkdir', 'mkdirat'], action: 'SCMP_ACT_NOTIFY' }] };
  n.save();
  const l = listenUnix(sock);
  t.teardown(() => closeSync(l));
  for (let i = 0; i < 2; i++) {
    const id = uniqueId('lsecn');
    await rt.create(id, { bundle: n.dir, stdio: 'ignore' });
    await rt.start(id); // the init loads the filter and sends the listener before execve
    const conn = acceptUnix(l);
    const got = recvWithFds(conn);
    closeSync(conn);
    t.equal(readlinkSync(`/proc/self/fd/${got.fds[0]}`), 'anon_inode:seccomp notify', `create ${i}: the listener fd arrives`);
    got.fds.forEach((fd) => closeSync(fd));
    t.ok(await until(async () => (await rt.state(id)).status === 'stopped'));
    await rt.delete(id);
  }
});

t.test('library trampoline: one sealed memfd in the zygote is every process\'s last hop', { skip }, async (t) => {
  const rt = runtime(t);
  const b = makeBundle(t, ['/evil']);
  // a program whose interpreter is /proc/self/exe gets the trampoline, which runs nothing without koci's argv[0]
  writeFileSync(join(b.rootfs, 'evil'), '#!/proc/self/exe\n', { mode: 0o755 });
  for (let i = 0; i < 2; i++) t.equal((await rt.run(uniqueId('ltr'), { bundle: b.dir, stdio: 'ignore' })).exitCode, 127, `run ${i}: the #!/proc/self/exe program execs nothing`);
  const s = makeBundle(t, ['sleep', '60']);
  writeFileSync(join(s.rootfs, 'evil'), '#!/proc/self/exe\n', { mode: 0o755 });
  const id = uniqueId('ltr');
  await rt.create(id, { bundle: s.dir, stdio: 'ignore' });
  await rt.start(id);
  t.equal((await rt.exec(id, { args: ['/evil'], stdio: 'ignore' })).exitCode, 127, 'exec: the same');
  await rt.delete(id, { force: true });
  const [zygote] = zygotesOf(process.pid);
  t.ok(zygote, 'the zygote runs');
  const kept = readdirSync(`/proc/${zygote}/fd`).filter((fd) => {
    try {
      return readlinkSync(`/proc/${zygote}/fd/${fd}`).startsWith('/memfd:koci-exec');
    } catch {
      return false; // closed meanwhile (a spare's pipe)
    }
  });
  t.equal(kept.length, 1, 'it holds one trampoline');
  let write = 'ok';
  try {
    writeFileSync(`/proc/${zygote}/fd/${kept[0]}`, 'x');
  } catch (e) {
    write = (e as NodeJS.ErrnoException).code ?? String(e);
  }
  t.equal(write, 'EPERM', 'sealed: nobody can write it');
});

t.test('library run resolves at the exit; the removal that follows is waited for by every later call', { skip }, async (t) => {
  // the zygote (started by the first run) gets the test's environment: each removal takes 300 ms more
  process.env.KOCI_TEST_REMOVE_DELAY_MS = '300';
  t.teardown(() => void delete process.env.KOCI_TEST_REMOVE_DELAY_MS);
  const rt = runtime(t);
  const b = makeBundle(t, ['true']);
  const id = uniqueId('lrm');
  for (let i = 0; i < 3; i++) {
    t.equal((await rt.run(id, { bundle: b.dir, stdio: 'ignore' })).exitCode, 0, `run ${i} with the same ID`);
    t.ok(existsSync(join(rt.root!, id)), `run ${i} resolved before the removal ended`);
  }
  await t.rejects(rt.state(id), ContainerNotFoundError, 'state waited for it: gone');
  t.equal((await rt.run(id, { bundle: b.dir, stdio: 'ignore' })).exitCode, 0);
  t.same(await rt.list(), [], 'list waited for it: gone');
  t.equal((await rt.run(id, { bundle: b.dir, stdio: 'ignore' })).exitCode, 0);
  await rt.close();
  const left = leftovers(rt.root!, [b.dir], id);
  t.same(left.state, [], 'close() waited for it: nothing left in the state root');
  t.same(left.cgroups, [], 'nor in the cgroups');

  // poststop hooks have run by the time run resolves, as before
  const h = makeBundle(t, ['true']);
  const mark = join(h.dir, 'poststop-ran');
  h.spec.hooks = { poststop: [{ path: '/bin/sh', args: ['sh', '-c', `sleep 0.2; touch ${mark}`] }] };
  h.save();
  t.equal((await rt.run(uniqueId('lrm'), { bundle: h.dir, stdio: 'ignore' })).exitCode, 0);
  t.ok(existsSync(mark), 'with poststop hooks: they ran before run resolved');
});
