/** exec (runc's flags, --process, --detach, --preserve-fds, errors), terminals through --console-socket, and `features`. */
import { spawnSync } from 'node:child_process';
import { closeSync, existsSync, openSync, readdirSync, readFileSync, readlinkSync, readSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { isatty } from 'node:tty';
import { alive, cgroupFile, nsOf, parseProbe, PROBE_PATH, readPid, readTrim, REPO, sleep, type Bundle, type Ctx, type Probe, type Result } from '../harness';
import { capMask, type Config } from '../spec';
import type { Case } from './types';

/** a created-and-started container whose init (PID 1) sleeps; undefined after a failed assertion */
function running(t: Ctx, edit?: (c: Config) => void): { id: string; pid: number; b: Bundle } | undefined {
  const b = t.bundle((c) => {
    c.process.args = ['sh', '-c', 'echo started; exec sleep 300'];
    edit?.(c);
  });
  const { id, res } = t.create(b);
  if (!t.succeeds(res, 'create succeeds')) return undefined;
  const pid = t.state(id)?.pid as number | undefined;
  if (!t.ok(pid, 'state has a pid')) return undefined;
  if (!t.succeeds(t.cli(['start', id]), 'start succeeds')) return undefined;
  t.ok(t.waitFor(b.stdout, /started/), 'the container init runs');
  return { id, pid: pid!, b };
}

function statusField(text: string, field: string): string | undefined {
  const l = text.split('\n').find((x) => x.startsWith(field + ':'));
  return l?.slice(field.length + 1).trim().split(/\s+/).join(' ');
}
function capField(p: Probe, field: string): bigint | undefined {
  const v = statusField(p.get('status'), field);
  return v === undefined ? undefined : BigInt('0x' + v);
}
function limit(p: Probe, name: string): string | undefined {
  const l = p.lines('limits').find((x) => x.startsWith(name));
  return l?.slice(name.length).trim().split(/\s+/).slice(0, 2).join(' ');
}

/** host pids whose pid namespace is `ns` */
function pidsInNs(ns: string | undefined): number[] {
  const out: number[] = [];
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    if (nsOf(Number(e), 'pid') === ns && alive(Number(e))) out.push(Number(e));
  }
  return out.sort((a, b) => a - b);
}

/** the pids in the init's cgroup (pids controller, or the unified tree) */
function cgroupProcs(pid: number): number[] | undefined {
  const text = readTrim(cgroupFile(pid, 'pids', 'cgroup.procs'));
  return text === undefined ? undefined : text.split('\n').filter(Boolean).map(Number).sort((a, b) => a - b);
}

/** the runtime's CLI with stdio in files and `fd` as the child's fd 3 */
function cliWithFd3(t: Ctx, args: string[], fd: number, dir: string): Result {
  const out = openSync(join(dir, 'cli.out'), 'w');
  const err = openSync(join(dir, 'cli.err'), 'w');
  try {
    const r = spawnSync(t.rt.bin, ['--root', t.rt.root, ...args], { timeout: 30_000, stdio: ['ignore', out, err, fd] });
    return { status: r.status, stdout: readFileSync(join(dir, 'cli.out'), 'utf8'), stderr: readFileSync(join(dir, 'cli.err'), 'utf8') + (r.error ? `\n${r.error.message}` : '') };
  } finally {
    closeSync(out);
    closeSync(err);
  }
}

// --- the console socket: the caller's end, as containerd's shim or conmon hold it ----------------

interface Bindings {
  listenUnix(path: string, backlog?: number): number;
  acceptUnix(fd: number): number;
  recvWithFds(sock: number, maxData?: number, maxFds?: number): { data: Buffer; fds: number[] };
  fcntl(fd: number, cmd: number, arg?: number): number;
  close(fd: number): void;
  F_GETFL: number;
  F_SETFL: number;
  O_NONBLOCK: number;
}

/** SCM_RIGHTS needs recvmsg(2), which node lacks: test tooling borrows koci's libc bindings (dist/bindings, `npm run build`) */
function bindings(): Bindings {
  const dir = join(REPO, 'dist', 'bindings');
  if (!existsSync(join(dir, 'socket.js'))) throw new Error(`the console-socket receiver needs koci's ${dir} (npm run build)`);
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return { ...require(join(dir, 'socket.js')), ...require(join(dir, 'libc.js')), ...require(join(dir, 'constants.js')) } as Bindings;
}

/** a listening console socket; `receive` takes the one connection the runtime made (queued even after the runtime exited) */
class ConsoleSocket {
  private readonly L = bindings();
  private readonly fd: number;
  constructor(readonly path: string) {
    this.fd = this.L.listenUnix(path);
    this.L.fcntl(this.fd, this.L.F_SETFL, this.L.fcntl(this.fd, this.L.F_GETFL) | this.L.O_NONBLOCK);
  }
  receive(ms = 10_000): { data: string; fds: number[] } | undefined {
    const end = Date.now() + ms;
    for (;;) {
      let conn: number;
      try {
        conn = this.L.acceptUnix(this.fd);
      } catch (e) {
        if ((e as { code?: string }).code !== 'EAGAIN' || Date.now() > end) return undefined;
        sleep(15);
        continue;
      }
      try {
        const { data, fds } = this.L.recvWithFds(conn);
        return { data: data.toString(), fds };
      } finally {
        this.L.close(conn);
      }
    }
  }
  close(): void {
    this.L.close(this.fd);
  }
}

/** the caller's side of a pty master, read without an event loop (non-blocking reads and sleeps) */
class Terminal {
  out = '';
  constructor(readonly master: number) {
    const L = bindings();
    L.fcntl(master, L.F_SETFL, L.fcntl(master, L.F_GETFL) | L.O_NONBLOCK);
  }
  private drain(): boolean {
    const buf = Buffer.alloc(4096);
    for (;;) {
      try {
        const n = readSync(this.master, buf, 0, buf.length, null);
        if (n <= 0) return false;
        this.out += buf.subarray(0, n).toString();
      } catch (e) {
        return (e as { code?: string }).code === 'EAGAIN'; // EIO: no slave left
      }
    }
  }
  /** type `input` and collect what comes back for `ms` */
  type(input: string, ms = 300): void {
    this.send(input, /$^/, ms);
  }
  /** type `input`, then wait until what follows matches `until` (the echo of the input counts: use markers it cannot contain) */
  send(input: string, until: RegExp, ms = 10_000): string {
    const from = this.out.length;
    writeSync(this.master, input);
    const end = Date.now() + ms;
    while (Date.now() < end) {
      const open = this.drain();
      if (until.test(this.out.slice(from)) || !open) break;
      sleep(15);
    }
    return this.out.slice(from);
  }
  close(): void {
    closeSync(this.master);
  }
}

/** receive the console master sent by a runtime; asserts one terminal fd arrived */
function receiveMaster(t: Ctx, sock: ConsoleSocket): Terminal | undefined {
  const got = sock.receive();
  if (!t.ok(got, 'the runtime connects to the console socket and sends a message')) return undefined;
  const fds = got!.fds;
  if (!t.equal(fds.length, 1, 'the message carries one fd (SCM_RIGHTS)')) {
    fds.forEach((fd) => closeSync(fd));
    return undefined;
  }
  const term = new Terminal(fds[0]);
  let target = '';
  try {
    target = readlinkSync(`/proc/self/fd/${fds[0]}`);
  } catch {
    /* unreadable */
  }
  t.ok(isatty(fds[0]), 'the fd is a terminal (the pty master)', `${target} (message data ${JSON.stringify(got!.data)})`);
  return term;
}

export const execCases: Case[] = [
  {
    name: 'exec: stdout, stderr and exit status reach the caller',
    run(t) {
      const c = running(t);
      if (!c) return;
      const r = t.cli(['exec', c.id, 'sh', '-c', 'echo exec-out; echo exec-err >&2; exit 3']);
      t.equal(r.status, 3, 'exec exits with the process exit status (3)');
      t.match(r.stdout, /^exec-out$/m, "the process's stdout reaches the caller's stdout");
      t.match(r.stderr, /^exec-err$/m, "the process's stderr reaches the caller's stderr");
      const ok = t.cli(['exec', c.id, 'echo', 'a b', '$HOME']);
      t.succeeds(ok, 'exec of a command exiting 0 succeeds');
      t.equal(ok.stdout, 'a b $HOME\n', 'the arguments after the container ID arrive verbatim');
      t.equal(t.state(c.id)?.status, 'running', 'the container keeps running');
    },
  },
  {
    name: "exec: the process joins the init's namespaces and cgroup",
    run(t) {
      const c = running(t);
      if (!c) return;
      const ns = ['pid', 'mnt', 'uts', 'ipc', 'net', 'cgroup'];
      const script = [
        'echo "pid $$"',
        `for n in ${ns.join(' ')}; do echo "ns $n $(readlink /proc/self/ns/$n) $(readlink /proc/1/ns/$n)"; done`,
        '[ "$(cat /proc/self/cgroup)" = "$(cat /proc/1/cgroup)" ] && echo cgroup-same || { echo cgroup-differs; cat /proc/self/cgroup /proc/1/cgroup; }',
        'echo "hostname $(hostname)"',
      ].join('; ');
      const r = t.cli(['exec', c.id, 'sh', '-c', script]);
      if (!t.succeeds(r, 'exec succeeds')) return;
      const lines = r.stdout.split('\n');
      const mypid = lines.find((l) => l.startsWith('pid '))?.slice(4);
      t.ok(mypid && mypid !== '1', 'a new process in the pid namespace, not PID 1', mypid);
      for (const n of ns) {
        const f = lines.find((l) => l.startsWith(`ns ${n} `))?.split(' ');
        t.ok(f && f[2] && f[2] === f[3], `${n}: /proc/self/ns/${n} equals /proc/1/ns/${n} inside`, f);
        t.equal(f?.[2], nsOf(c.pid, n), `${n}: the init's namespace as the host sees it`);
      }
      t.ok(lines.includes('cgroup-same'), '/proc/self/cgroup equals /proc/1/cgroup inside', r.stdout);
      t.ok(lines.includes('hostname conformance'), 'the container hostname', r.stdout);
    },
  },
  {
    name: 'exec --process: user, cwd, env, rlimits, capabilities and noNewPrivileges apply',
    run(t) {
      const c = running(t, (cfg) => (cfg.process.noNewPrivileges = false));
      if (!c) return;
      const caps = ['CAP_KILL', 'CAP_NET_RAW'];
      const bounding = [...caps, 'CAP_CHOWN'];
      const env = ['PATH=/bin:/usr/bin', 'HOME=/conf-home', 'CONF_EXEC=from process file'];
      const proc = {
        terminal: false,
        user: { uid: 1000, gid: 1001, additionalGids: [2000] },
        args: ['sh', PROBE_PATH],
        env,
        cwd: '/etc',
        capabilities: { bounding, effective: caps, permitted: caps, inheritable: caps, ambient: caps },
        rlimits: [
          { type: 'RLIMIT_NOFILE', soft: 256, hard: 512 },
          { type: 'RLIMIT_CORE', soft: 0, hard: 2048 },
        ],
        noNewPrivileges: true,
      };
      const file = join(t.tmp(), 'process.json');
      writeFileSync(file, JSON.stringify(proc));
      const r = t.cli(['exec', '--process', file, c.id]);
      if (!t.succeeds(r, 'exec --process succeeds')) return;
      const p = parseProbe(r.stdout);
      if (!t.ok(p.sections.end !== undefined, 'probe ran to the end', r.stdout.slice(-300) + r.stderr.slice(-300))) return;
      t.equal(p.get('uid'), '1000', 'uid 1000');
      t.equal(p.get('gid'), '1001', 'gid 1001');
      t.equal(statusField(p.get('status'), 'Uid'), '1000 1000 1000 1000', 'real, effective, saved and fs uid are 1000');
      t.equal(statusField(p.get('status'), 'Groups'), '2000', 'Groups: 2000 (additionalGids)');
      t.equal(p.get('cwd'), '/etc', 'cwd /etc');
      // busybox sh itself exports SHLVL and PWD
      const got = p.lines('env').filter((e) => !/^(SHLVL|PWD)=/.test(e));
      for (const e of env) t.ok(got.includes(e), `${e} is set`, got);
      t.equal(got.length, env.length, "no other variables (not the container's env)");
      t.equal(limit(p, 'Max open files'), '256 512', 'RLIMIT_NOFILE 256/512');
      t.equal(limit(p, 'Max core file size'), '0 2048', 'RLIMIT_CORE 0/2048');
      t.equal(capField(p, 'CapBnd'), capMask(bounding), 'CapBnd');
      t.equal(capField(p, 'CapPrm'), capMask(caps), 'CapPrm');
      t.equal(capField(p, 'CapEff'), capMask(caps), 'CapEff');
      t.equal(capField(p, 'CapInh'), capMask(caps), 'CapInh');
      t.equal(capField(p, 'CapAmb'), capMask(caps), 'CapAmb');
      t.equal(statusField(p.get('status'), 'NoNewPrivs'), '1', 'NoNewPrivs: 1 (the init has 0)');
      t.equal(statusField(readFileSync(`/proc/${c.pid}/status`, 'utf8'), 'NoNewPrivs'), '0', 'the init keeps NoNewPrivs 0');
    },
  },
  {
    name: 'exec flags: --user, --cwd, --env, --cap and --no-new-privs change the container process',
    run(t) {
      const c = running(t, (cfg) => (cfg.process.noNewPrivileges = false));
      if (!c) return;
      const r = t.cli(['exec', '-u', '1000:1001', '--cwd', '/etc', '-e', 'CONF_FLAG=set', '-e', 'CONF_OTHER=x y', '--cap', 'CAP_SYS_TIME', '--no-new-privs', c.id, 'sh', PROBE_PATH]);
      if (!t.succeeds(r, 'exec succeeds')) return;
      const p = parseProbe(r.stdout);
      if (!t.ok(p.sections.end !== undefined, 'probe ran to the end', r.stdout.slice(-300) + r.stderr.slice(-300))) return;
      t.equal(p.get('uid'), '1000', '-u: uid 1000');
      t.equal(p.get('gid'), '1001', '-u: gid 1001');
      t.equal(p.get('cwd'), '/etc', '--cwd: /etc');
      const env = p.lines('env');
      t.ok(env.includes('CONF_FLAG=set') && env.includes('CONF_OTHER=x y'), 'each -e adds a variable', env);
      t.ok(env.includes('TERM=xterm'), "the container process's env is kept", env);
      t.ok(((capField(p, 'CapBnd') ?? 0n) & capMask(['CAP_SYS_TIME'])) !== 0n, '--cap adds CAP_SYS_TIME to the bounding set');
      t.equal(statusField(p.get('status'), 'NoNewPrivs'), '1', '--no-new-privs: NoNewPrivs 1');
    },
  },
  {
    name: 'exec flags: -g adds supplementary groups',
    run(t) {
      const c = running(t);
      if (!c) return;
      const r = t.cli(['exec', '-u', '1000:1000', '-g', '2000', '-g', '3000', c.id, 'grep', '^Groups:', '/proc/self/status']);
      if (!t.succeeds(r, 'exec succeeds')) return;
      t.equal(statusField(r.stdout, 'Groups')?.split(' ').sort().join(' '), '2000 3000', 'Groups: 2000 3000');
    },
  },
  {
    name: 'exec --detach --pid-file: the pid file names a live process in the container',
    run(t) {
      const c = running(t);
      if (!c) return;
      const pidFile = join(t.tmp(), 'exec.pid');
      const t0 = Date.now();
      const r = t.cli(['exec', '--detach', '--pid-file', pidFile, c.id, 'sleep', '61']);
      if (!t.succeeds(r, 'exec --detach succeeds')) return;
      t.ok(Date.now() - t0 < 20_000, 'exec --detach returns while the process runs');
      t.match(existsSync(pidFile) ? readFileSync(pidFile, 'utf8') : undefined, /^\d+\n?$/, 'the pid file holds a number');
      const pid = readPid(pidFile);
      if (!t.ok(pid && alive(pid), 'the pid is a live process', pid)) return;
      t.equal(readFileSync(`/proc/${pid}/cmdline`, 'utf8'), 'sleep\u000061\u0000', "its command line is the exec'd command");
      t.ok(pid !== c.pid, 'not the init');
      for (const n of ['pid', 'mnt', 'net', 'ipc', 'uts']) t.equal(nsOf(pid!, n), nsOf(c.pid, n), `in the init's ${n} namespace`);
      t.equal(readTrim(`/proc/${pid}/cgroup`), readTrim(`/proc/${c.pid}/cgroup`), "in the init's cgroups (every hierarchy)");
      t.equal(t.state(c.id)?.status, 'running', 'the container keeps running');
    },
  },
  {
    name: 'exec: a missing binary fails and leaves only the init in the container',
    run(t) {
      const c = running(t);
      if (!c) return;
      const before = cgroupProcs(c.pid);
      t.equal(JSON.stringify(before), JSON.stringify([c.pid]), 'the container cgroup holds only the init before');
      const r = t.cli(['exec', c.id, '/bin/conformance-no-such-binary']);
      t.fails(r, 'exec of a missing binary fails');
      t.ok(r.stderr.trim() !== '', 'with a message on stderr');
      sleep(100);
      const ns = nsOf(c.pid, 'pid');
      t.equal(JSON.stringify(pidsInNs(ns)), JSON.stringify([c.pid]), "only the init is left in the container's pid namespace");
      t.equal(JSON.stringify(cgroupProcs(c.pid)), JSON.stringify([c.pid]), 'only the init is left in the container cgroup');
      t.equal(t.state(c.id)?.status, 'running', 'the container keeps running');
      t.succeeds(t.cli(['exec', c.id, 'true']), 'a later exec succeeds');
    },
  },
  {
    name: 'exec: into a stopped container or an unknown ID fails',
    run(t) {
      const b = t.bundle((c) => (c.process.args = ['sh', '-c', 'echo done']));
      const { id, res } = t.create(b);
      if (!t.succeeds(res, 'create succeeds')) return;
      const pid = t.state(id)?.pid;
      t.succeeds(t.cli(['start', id]), 'start succeeds');
      t.ok(t.waitExit(id, pid), 'the container stops');
      const r = t.cli(['exec', id, 'echo', 'exec-ran']);
      t.fails(r, 'exec into the stopped container fails');
      t.ok(!r.stdout.includes('exec-ran'), 'nothing ran');
      t.ok(r.stderr.trim() !== '', 'with a message on stderr');
      t.equal(t.state(id)?.status, 'stopped', 'the container stays stopped');
      t.fails(t.cli(['exec', t.id('unknown'), 'true']), 'exec into an unknown ID fails');
    },
  },
  {
    name: 'exec --preserve-fds 1: the caller\'s fd 3 is usable inside',
    run(t) {
      const c = running(t);
      if (!c) return;
      const dir = t.tmp();
      const file = join(dir, 'fd3');
      const fd = openSync(file, 'w');
      let r: Result;
      try {
        r = cliWithFd3(t, ['exec', '--preserve-fds', '1', c.id, 'sh', '-c', 'echo through-fd3 >&3 && echo wrote'], fd, dir);
      } finally {
        closeSync(fd);
      }
      t.succeeds(r, 'exec --preserve-fds 1 succeeds');
      t.match(r.stdout, /^wrote$/m, 'writing to fd 3 inside succeeds');
      t.equal(readFileSync(file, 'utf8'), 'through-fd3\n', "what the process wrote to fd 3 is in the caller's file");
    },
  },
];

export const terminal: Case[] = [
  {
    name: 'terminal: create with process.terminal sends the pty master to --console-socket',
    run(t) {
      const b = t.bundle((c) => {
        c.process.args = ['sh'];
        c.process.terminal = true;
        c.process.consoleSize = { height: 33, width: 97 };
      });
      const sock = new ConsoleSocket(join(t.tmp(), 'console.sock'));
      let term: Terminal | undefined;
      try {
        const { id, res } = t.create(b, t.id(), ['--console-socket', sock.path]);
        if (!t.succeeds(res, 'create --console-socket succeeds')) return;
        term = receiveMaster(t, sock);
        if (!term) return;
        const pid = t.state(id)?.pid;
        if (!t.succeeds(t.cli(['start', id]), 'start succeeds')) return;
        const out = term.send('stty size; tty; echo sum=$((6*7))\n', /sum=42/);
        t.match(out, /sum=42/, 'a command typed through the master runs and its output comes back');
        t.match(out, /^33 97\r?$/m, 'consoleSize applies (stty size: 33 97)');
        t.match(out, /^\/dev\/pts\/\d+\r?$/m, 'tty names /dev/pts/N');
        term.type('exit 0\n');
        t.ok(t.waitExit(id, pid), 'the container stops when the shell exits');
      } finally {
        term?.close();
        sock.close();
      }
    },
  },
  {
    name: 'terminal: exec -t -d --console-socket gives the process a tty',
    run(t) {
      const c = running(t);
      if (!c) return;
      const dir = t.tmp();
      const sock = new ConsoleSocket(join(dir, 'console.sock'));
      const pidFile = join(dir, 'exec.pid');
      let term: Terminal | undefined;
      try {
        const r = t.cli(['exec', '-t', '-d', '--console-socket', sock.path, '--pid-file', pidFile, c.id, 'sh']);
        if (!t.succeeds(r, 'exec -t -d --console-socket succeeds')) return;
        term = receiveMaster(t, sock);
        if (!term) return;
        const pid = readPid(pidFile);
        t.ok(pid && alive(pid), 'the pid file names a live process', pid);
        const out = term.send('[ -t 0 ] && echo stdin-is-a-tty; [ -t 1 ] && echo stdout-is-a-tty; tty; echo do""ne\n', /done/);
        t.match(out, /stdin-is-a-tty/, "the exec process's stdin is a tty");
        t.match(out, /stdout-is-a-tty/, "the exec process's stdout is a tty");
        t.match(out, /^\/dev\/pts\/\d+\r?$/m, 'tty names /dev/pts/N');
        if (pid) t.equal(nsOf(pid, 'pid'), nsOf(c.pid, 'pid'), 'the process is in the container');
        term.type('exit\n');
        const end = Date.now() + 5000;
        while (pid && alive(pid) && Date.now() < end) sleep(15);
        t.ok(!pid || !alive(pid), 'the exec process exits when its shell does');
        t.equal(t.state(c.id)?.status, 'running', 'the container keeps running');
      } finally {
        term?.close();
        sock.close();
      }
    },
  },
];

export const features: Case[] = [
  {
    name: 'features: JSON with ociVersionMin and ociVersionMax',
    run(t) {
      // a runtime without the command (or whose command fails) fails the case: never a skip, or a broken `features` would pass CI
      const r = t.cli(['features']);
      if (!t.succeeds(r, 'features exits 0')) return;
      let f: Record<string, any> | undefined;
      try {
        f = JSON.parse(r.stdout) as Record<string, any>;
      } catch {
        /* checked below */
      }
      if (!t.ok(f && typeof f === 'object', 'features prints a JSON object', r.stdout.slice(0, 300))) return;
      const semver = /^(\d+)\.(\d+)\.(\d+)(?:[-+].*)?$/;
      t.match(f!.ociVersionMin, semver, 'ociVersionMin is a SemVer string');
      t.match(f!.ociVersionMax, semver, 'ociVersionMax is a SemVer string');
      const num = (v: string) => (semver.exec(v) ?? []).slice(1, 4).map(Number);
      const [a, b] = [num(String(f!.ociVersionMin)), num(String(f!.ociVersionMax))];
      const cmp = a[0] - b[0] || a[1] - b[1] || a[2] - b[2];
      t.ok(a.length === 3 && b.length === 3 && cmp <= 0, 'ociVersionMin <= ociVersionMax', `${f!.ociVersionMin} .. ${f!.ociVersionMax}`);
      t.ok(b[0] >= 1, 'ociVersionMax is at least 1.0.0', f!.ociVersionMax);
    },
  },
];
