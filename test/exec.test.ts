/**
 * koci exec against real containers: every namespace kind joined, the
 * cgroup, the process's user/cwd/env/caps/no_new_privs, the container's
 * seccomp profile, --detach/--pid-file, --preserve-fds, errors that leave
 * nothing behind, and a terminal through --console-socket.
 */
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, closeSync, existsSync, mkdtempSync, openSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tty from 'node:tty';
import t from 'tap';
import * as C from '../dist/bindings/constants';
import * as libc from '../dist/bindings/libc';
import { KOCI, type Koci, kociCli, makeBundle, rootSkipReason, stateOf, uniqueId } from './helpers/fixtures';
import { listenForFd } from './helpers/sockets';

const skip = rootSkipReason();
if (skip) t.comment(`skipping exec tests: ${skip}`);

function tmp(t: { teardown(fn: () => void): void }): string {
  const d = mkdtempSync(join(tmpdir(), 'koci-exec-'));
  t.teardown(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

/** a created-and-started container running `sleep` */
function running(t: Parameters<typeof makeBundle>[0], koci: Koci, edit?: Parameters<typeof makeBundle>[2]): { id: string; pid: number; rootfs: string } {
  const b = makeBundle(t, ['sleep', '1000'], edit);
  chmodSync(b.dir, 0o755); // mkdtemp's 0700 would keep a user namespace's root (host uid 100000) out
  const id = uniqueId('ex');
  const c = koci(['create', '--bundle', b.dir, id]);
  if (c.status !== 0) throw new Error(`create: ${c.stderr}`);
  const s = koci(['start', id]);
  if (s.status !== 0) throw new Error(`start: ${s.stderr}`);
  return { id, pid: stateOf(koci, id).pid as number, rootfs: b.rootfs };
}

const ALL_NS = ['cgroup', 'ipc', 'mnt', 'net', 'pid', 'time', 'user', 'uts'];

t.test('exec joins every namespace of the container, user first, and its cgroups', { skip }, async (t) => {
  const koci = kociCli(t);
  const { id, pid } = running(t, koci, (s) => {
    s.linux!.namespaces = ['pid', 'network', 'ipc', 'uts', 'mount', 'cgroup', 'time', 'user'].map((type) => ({ type: type as never }));
    s.linux!.uidMappings = [{ containerID: 0, hostID: 100000, size: 65536 }];
    s.linux!.gidMappings = [{ containerID: 0, hostID: 100000, size: 65536 }];
    s.root!.readonly = false;
  });
  const script = ALL_NS.map((n) => `[ "$(readlink /proc/self/ns/${n})" = "$(readlink /proc/1/ns/${n})" ] && echo same-${n}`).join('; ');
  const r = koci(['exec', id, 'sh', '-c', `${script}; echo pid=$$; cat /proc/self/uid_map; echo; hostname`]);
  t.equal(r.status, 0, r.stderr);
  for (const n of ALL_NS) t.match(r.stdout, new RegExp(`^same-${n}$`, 'm'), `the init's ${n} namespace`);
  t.match(r.stdout, /^pid=\d+$/m);
  t.not(r.stdout.match(/^pid=(\d+)$/m)![1], '1', 'a new process in the PID namespace, not its init');
  t.match(r.stdout, /^\s+0\s+100000\s+65536$/m, 'in the container user namespace (its uid map)');
  t.match(r.stdout, /^koci$/m, 'the container hostname');
  // the cgroups, as the host sees them
  const dr = koci(['exec', '-d', '--pid-file', join(tmp(t), 'p'), id, 'sleep', '30']);
  t.equal(dr.status, 0, dr.stderr);
  const ps = koci(['ps', '--format', 'json', id]);
  const pids = JSON.parse(ps.stdout) as number[];
  t.equal(pids.length, 2, 'init and the exec process both in the container cgroup');
  const other = pids.find((p) => p !== pid)!;
  t.equal(readFileSync(`/proc/${other}/cgroup`, 'utf8'), readFileSync(`/proc/${pid}/cgroup`, 'utf8'), 'every hierarchy: the init cgroups');
});

t.test("exec's process is in every cgroup of the container: v1 joined by itself, cgroup2 born there (clone3) or placed by the runtime", { skip }, async (t) => {
  const koci = kociCli(t);
  const { id, pid } = running(t, koci);
  for (const [what, env] of [['clone3', {}], ['without clone3', { KOCI_TEST_NO_CLONE3: '1' }]] as const) {
    const pidFile = join(tmp(t), 'p');
    const r = koci(['exec', '-d', '--pid-file', pidFile, id, 'sleep', '30'], { env: { ...process.env, ...env } });
    t.equal(r.status, 0, `${what}: ${r.stderr}`);
    const other = Number(readFileSync(pidFile, 'utf8'));
    t.equal(readFileSync(`/proc/${other}/cgroup`, 'utf8'), readFileSync(`/proc/${pid}/cgroup`, 'utf8'), `${what}: every hierarchy: the init's cgroups`);
    const inside = koci(['exec', id, 'cat', '/proc/self/cgroup'], { env: { ...process.env, ...env } });
    t.same(inside.stdout.trim().split('\n').filter((l) => !l.endsWith(':/')), [], `${what}: the container's cgroup namespace sees it at its root`);
    process.kill(other, 'SIGKILL');
  }
});

t.test('exec in a container sharing the host network namespace joins only what the container has', { skip }, async (t) => {
  const koci = kociCli(t);
  const { id } = running(t, koci, (s) => (s.linux!.namespaces = s.linux!.namespaces!.filter((n) => n.type !== 'network')));
  const r = koci(['exec', id, 'readlink', '/proc/self/ns/net']);
  t.equal(r.status, 0, r.stderr);
  t.equal(r.stdout.trim(), readlinkSync('/proc/self/ns/net'), 'the host network namespace');
});

t.test('exec flags: --user, --cwd, --env, --cap, --no-new-privs; the process keeps the container profile', { skip }, async (t) => {
  const koci = kociCli(t);
  const { id } = running(t, koci, (s) => {
    s.process!.env = ['PATH=/bin:/sbin', 'BASE=1'];
    s.linux!.seccomp = { defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ names: ['mkdir', 'mkdirat'], action: 'SCMP_ACT_ERRNO' }] };
  });
  const r = koci(['exec', '-u', '1000:1001', '--cwd', '/tmp', '-e', 'FOO=bar', '--cap', 'CAP_SYS_TIME', '--no-new-privs', id,
    'sh', '-c', 'echo "$(id -u):$(id -g) $(pwd) $BASE $FOO"; grep -E "^(CapEff|CapBnd|NoNewPrivs)" /proc/self/status; mkdir /tmp/x; echo mkdir=$?']);
  t.equal(r.status, 0, r.stderr);
  t.match(r.stdout, /^1000:1001 \/tmp 1 bar$/m, 'user, cwd and env (the container env plus --env)');
  const home = koci(['exec', '-e', 'X=1', '-e', 'X=2', id, 'sh', '-c', 'echo "$HOME $X"']);
  t.equal(home.stdout, '/root 2\n', "HOME from the container's /etc/passwd when unset; a name set twice keeps its last value (as runc)");
  const bad = koci(['exec', '-e', 'NOEQUALS', id, 'true']);
  t.match(bad, { status: 1, stderr: /process\.env entry "NOEQUALS" is not NAME=VALUE/ });
  const cap = (set: string) => BigInt('0x' + r.stdout.match(new RegExp(`^${set}:\\s+([0-9a-f]+)$`, 'm'))![1]);
  t.ok(cap('CapBnd') & (1n << 25n), '--cap adds CAP_SYS_TIME to the bounding set');
  t.equal(cap('CapEff'), 0n, 'a non-root user without ambient caps has no effective caps');
  t.match(r.stdout, /^NoNewPrivs:\s+1$/m);
  t.match(r.stdout + r.stderr, /Operation not permitted/, "the container's seccomp profile denies mkdir");
  t.match(r.stdout, /^mkdir=1$/m);
});

t.test('exec --process FILE: the runtime-spec process document, rlimits and capabilities included', { skip }, async (t) => {
  const koci = kociCli(t);
  const { id } = running(t, koci);
  const dir = tmp(t);
  const proc = {
    args: ['sh', '-c', 'ulimit -n; grep CapEff /proc/self/status; echo $X; exit 4'],
    env: ['PATH=/bin', 'X=from-file'],
    cwd: '/',
    user: { uid: 0, gid: 0 },
    rlimits: [{ type: 'RLIMIT_NOFILE', soft: 77, hard: 77 }],
    capabilities: { bounding: ['CAP_KILL'], effective: ['CAP_KILL'], permitted: ['CAP_KILL'] },
  };
  writeFileSync(join(dir, 'process.json'), JSON.stringify(proc));
  const r = koci(['exec', '--process', join(dir, 'process.json'), id]);
  t.equal(r.status, 4, `the process's exit status ${r.stderr}`);
  t.match(r.stdout, /^77\nCapEff:\s+0000000000000020\nfrom-file$/m);
  // an invalid document is refused before anything runs
  writeFileSync(join(dir, 'bad.json'), JSON.stringify({ ...proc, cwd: 'relative' }));
  const bad = koci(['exec', '--process', join(dir, 'bad.json'), id]);
  t.equal(bad.status, 1);
  t.match(bad.stderr, /process\.cwd "relative" must be absolute/);
});

t.test('exec --detach --pid-file: returns at once, the pid file names the live process', { skip }, async (t) => {
  const koci = kociCli(t);
  const { id } = running(t, koci);
  const pf = join(tmp(t), 'exec.pid');
  const r = koci(['exec', '--detach', '--pid-file', pf, id, 'sleep', '60']);
  t.equal(r.status, 0, r.stderr);
  const pid = Number(readFileSync(pf, 'utf8'));
  t.ok(pid > 0);
  t.equal(readFileSync(`/proc/${pid}/cmdline`, 'utf8'), 'sleep\x0060\x00', 'the exec process runs');
  t.equal(readlinkSync(`/proc/${pid}/ns/pid`), readlinkSync(`/proc/${stateOf(koci, id).pid}/ns/pid`));
  // kill --all reaches it through the cgroup
  t.equal(koci(['kill', '--all', id, 'KILL']).status, 0);
});

t.test('exec --preserve-fds: fd 3 of the caller is fd 3 of the process, nothing else leaks', { skip }, async (t) => {
  const koci = kociCli(t);
  const { id } = running(t, koci);
  const dir = tmp(t);
  const fd = openSync(join(dir, 'out'), 'w');
  try {
    const r = spawnSync(KOCI, ['--root', koci.root, 'exec', '--preserve-fds', '1', id, 'sh', '-c', 'echo through-fd3 >&3; ls /proc/self/fd | wc -l'], {
      stdio: ['ignore', 'pipe', 'pipe', fd],
      encoding: 'utf8',
      timeout: 30_000,
    });
    t.equal(r.status, 0, r.stderr);
    t.equal(r.stdout.trim(), '5', 'fds 0-3 and the one ls opened');
  } finally {
    closeSync(fd);
  }
  t.equal(readFileSync(join(dir, 'out'), 'utf8'), 'through-fd3\n');
});

t.test('exec errors: unknown ID, stopped container, missing binary; nothing left running', { skip }, async (t) => {
  const koci = kociCli(t);
  const unknown = koci(['exec', uniqueId('none'), 'true']);
  t.equal(unknown.status, 1);
  t.match(unknown.stderr, /does not exist/, 'orchestrators match "does not exist"');
  const { id, pid } = running(t, koci);
  const missing = koci(['exec', id, '/bin/nosuch']);
  t.equal(missing.status, 1);
  t.match(missing.stderr, /^koci: exec: \/bin\/nosuch: no such executable file\n$/, 'one clear line');
  t.same(JSON.parse(koci(['ps', '--format', 'json', id]).stdout), [pid], 'only the init is left in the container');
  const noArgs = koci(['exec', id]);
  t.match(noArgs, { status: 1, stderr: /needs the command to run/ });
  t.equal(koci(['kill', id, 'KILL']).status, 0);
  for (let i = 0; i < 100 && stateOf(koci, id).status !== 'stopped'; i++) await new Promise((r) => setTimeout(r, 20));
  const stopped = koci(['exec', id, 'true']);
  t.equal(stopped.status, 1);
  t.match(stopped.stderr, /container not running/);
});

t.test('exec --apparmor / --process-label are refused clearly when the LSM is not active, nothing forked', { skip }, async (t) => {
  const { apparmorEnabled, selinuxEnabled } = await import('../dist/lib/security/lsm');
  const koci = kociCli(t);
  const { id, pid } = running(t, koci);
  const cases: Array<[string, string[], RegExp, boolean]> = [
    ['--apparmor', ['--apparmor', 'koci-test'], /^koci: process\.apparmorProfile is "koci-test" but AppArmor is not enabled on this host\n$/, apparmorEnabled()],
    ['--process-label', ['--process-label', 'system_u:system_r:container_t:s0'], /^koci: process\.selinuxLabel is "system_u:system_r:container_t:s0" but SELinux is not enabled on this host\n$/, selinuxEnabled()],
  ];
  for (const [flag, args, message, active] of cases) {
    if (active) {
      t.comment(`${flag}: the LSM is active on this host; the refusal does not apply (skipped)`);
      continue;
    }
    const dir = tmp(t);
    const r = koci(['exec', '--pid-file', join(dir, 'pid'), ...args, id, 'sh', '-c', 'echo ran']);
    t.equal(r.status, 1, `${flag}: refused`);
    t.match(r.stderr, message, `${flag}: one clear line (${r.stderr.trim()})`);
    t.notMatch(r.stdout, /ran/, `${flag}: the command never ran`);
    t.notOk(existsSync(join(dir, 'pid')), `${flag}: no process, no pid file`);
    t.same(JSON.parse(koci(['ps', '--format', 'json', id]).stdout), [pid], `${flag}: only the init is in the container`);
  }
  t.equal(stateOf(koci, id).status, 'running', 'the container is untouched');
});

t.test('exec into a paused container is refused; into a created one works', { skip }, async (t) => {
  const koci = kociCli(t);
  const b = makeBundle(t, ['sleep', '1000']);
  const id = uniqueId('ex');
  t.equal(koci(['create', '--bundle', b.dir, id]).status, 0);
  const r = koci(['exec', id, 'sh', '-c', 'cat /proc/1/cmdline | tr "\\0" " "']);
  t.equal(r.status, 0, r.stderr);
  t.match(r.stdout, /node|koci/, 'PID 1 is still the waiting init');
  t.equal(koci(['start', id]).status, 0);
  t.equal(koci(['pause', id]).status, 0);
  const p = koci(['exec', id, 'true']);
  t.match(p, { status: 1, stderr: /paused/ });
  t.equal(koci(['resume', id]).status, 0);
});

/** the caller's side of a pty master: one reader for its whole life (libuv allows one handle per fd) */
class Terminal {
  private out = '';
  private readonly stream: tty.ReadStream;
  private waiter?: () => void;
  constructor(readonly master: number) {
    this.stream = new tty.ReadStream(master);
    this.stream.on('data', (d: Buffer) => {
      this.out += d.toString();
      this.waiter?.();
    });
    this.stream.on('error', () => {}); // EIO once the last slave holder is gone
  }

  /** type input, then wait until the output that follows matches `until` (the echo of the input counts: use markers it cannot contain) */
  async send(input: string, until: RegExp, timeoutMs = 20_000): Promise<string> {
    const from = this.out.length;
    libc.write(this.master, Buffer.from(input));
    const deadline = Date.now() + timeoutMs;
    while (!until.test(this.out.slice(from))) {
      if (Date.now() > deadline) throw new Error(`no ${until} in ${JSON.stringify(this.out.slice(from))}`);
      await new Promise<void>((r) => {
        this.waiter = r;
        setTimeout(r, 100);
      });
    }
    return this.out.slice(from);
  }

  /** closes the master too */
  close(): void {
    this.stream.destroy();
  }
}

function winsize(rows: number, cols: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeUInt16LE(rows, 0);
  b.writeUInt16LE(cols, 2);
  return b;
}

t.test('create --console-socket: the pty master reaches the caller; a session through it, with resize', { skip }, async (t) => {
  const koci = kociCli(t);
  const dir = tmp(t);
  const b = makeBundle(t, ['sh'], (s) => {
    s.process!.terminal = true;
    s.process!.consoleSize = { height: 24, width: 80 };
  });
  const id = uniqueId('con');
  const listener = listenForFd(join(dir, 'console.sock'));
  t.teardown(() => listener.close());
  const create = spawn(KOCI, ['--root', koci.root, 'create', '--bundle', b.dir, '--console-socket', listener.path, id], { stdio: 'ignore' });
  const created = new Promise<number | null>((r) => create.on('exit', r));
  const { data, fd: master } = await listener.receive();
  const term = new Terminal(master);
  t.teardown(() => term.close());
  t.equal(data, '/dev/ptmx', 'named as runc names it');
  t.equal(await created, 0, 'create succeeds');
  t.equal(koci(['start', id]).status, 0);
  let out = await term.send('stty size; echo sum=$((6*7)); tty\n', /sum=42\r\n\/dev\/pts\/\d+/);
  t.match(out, /\r\n24 80\r\n/, 'consoleSize');
  libc.ioctl(master, C.TIOCSWINSZ, winsize(40, 132));
  out = await term.send('stty size | tr " " x\n', /40x132/);
  t.match(out, /40x132/, 'a resize through the master reaches the container');
  libc.write(master, Buffer.from('exit 3\n'));
  for (let i = 0; i < 200 && stateOf(koci, id).status !== 'stopped'; i++) await new Promise((r) => setTimeout(r, 20));
  t.equal(stateOf(koci, id).status, 'stopped', 'the shell exited');
});

t.test('exec --tty --console-socket: a terminal of its own for the exec process', { skip }, async (t) => {
  const koci = kociCli(t);
  const { id } = running(t, koci);
  const dir = tmp(t);
  const listener = listenForFd(join(dir, 'console.sock'));
  t.teardown(() => listener.close());
  const pf = join(dir, 'pid');
  const ex = spawn(KOCI, ['--root', koci.root, 'exec', '-t', '-d', '--console-socket', listener.path, '--pid-file', pf, id, 'sh'], { stdio: 'ignore' });
  const exited = new Promise<number | null>((r) => ex.on('exit', r));
  const { fd: master } = await listener.receive();
  const term = new Terminal(master);
  t.teardown(() => term.close());
  t.equal(await exited, 0, 'exec -d returns once the process runs');
  const out = await term.send('tty; [ -t 0 ] && echo stdin-tty; echo do""ne\n', /done\r\n/);
  t.match(out, /\/dev\/pts\/\d+\r\n/, 'its own pty of the container devpts');
  t.match(out, /stdin-tty/);
  const pid = Number(readFileSync(pf, 'utf8'));
  libc.write(master, Buffer.from('exit\n'));
  for (let i = 0; i < 200 && existsSync(`/proc/${pid}`); i++) await new Promise((r) => setTimeout(r, 20));
});

t.test('exec -t in the foreground relays the terminal to the caller', { skip }, async (t) => {
  const koci = kociCli(t);
  const { id } = running(t, koci);
  const dir = tmp(t);
  writeFileSync(join(dir, 'in'), 'echo "in=$(tty)"; exit 5\n');
  const fd = openSync(join(dir, 'in'), 'r');
  try {
    const r = spawnSync(KOCI, ['--root', koci.root, 'exec', '-t', id, 'sh'], { stdio: [fd, 'pipe', 'pipe'], encoding: 'utf8', timeout: 30_000 });
    t.equal(r.status, 5, r.stderr);
    t.match(r.stdout, /in=\/dev\/pts\/\d+\r\n/);
  } finally {
    closeSync(fd);
  }
});

t.test('--pidfd-socket: create and exec send a pidfd of their process', { skip }, async (t) => {
  const koci = kociCli(t);
  const dir = tmp(t);
  const b = makeBundle(t, ['sleep', '1000']);
  const id = uniqueId('pfd');
  const listener = listenForFd(join(dir, 'pidfd.sock'));
  t.teardown(() => listener.close());
  const create = spawn(KOCI, ['--root', koci.root, 'create', '--bundle', b.dir, '--pidfd-socket', listener.path, id], { stdio: 'ignore' });
  const created = new Promise<number | null>((r) => create.on('exit', r));
  const { fd } = await listener.receive();
  t.equal(await created, 0);
  const pidOf = (pidfd: number) => Number(/^Pid:\s+(\d+)$/m.exec(readFileSync(`/proc/self/fdinfo/${pidfd}`, 'utf8'))![1]);
  t.equal(readlinkSync(`/proc/self/fd/${fd}`), 'anon_inode:[pidfd]');
  t.equal(pidOf(fd), stateOf(koci, id).pid, "a pidfd of the container's init");
  libc.close(fd);
  t.equal(koci(['start', id]).status, 0);
  const ex = spawn(KOCI, ['--root', koci.root, 'exec', '-d', '--pidfd-socket', listener.path, id, 'sleep', '20'], { stdio: 'ignore' });
  const exited = new Promise<number | null>((r) => ex.on('exit', r));
  const got = await listener.receive();
  t.equal(await exited, 0);
  const ps = JSON.parse(koci(['ps', '--format', 'json', id]).stdout) as number[];
  t.ok(ps.includes(pidOf(got.fd)), 'a pidfd of the exec process, in the container');
  libc.close(got.fd);
});
