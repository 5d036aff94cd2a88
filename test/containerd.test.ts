/**
 * koci under containerd (issue 6): a private containerd 1.6 daemon (Debian's
 * package, installed here when missing) whose runc shim
 * (containerd-shim-runc-v2) is pointed at koci, driven with `ctr`; every
 * scenario runs with runc first (the baseline) and then with koci, and the
 * two must agree (exit codes, outputs modulo ids).
 *
 * Everything lives under one temp dir: containerd's root, state, gRPC/ttrpc
 * sockets, config, the ctr fifos, the runtimes' --root, TMPDIR (the shim's
 * console sockets). The one thing containerd 1.6 does not let us move is the
 * shim's own socket directory, /run/containerd/s (hard-coded): the shim makes
 * and removes its socket there (named by a hash of our gRPC address, so it
 * never meets a system containerd's); the test removes /run/containerd/s and
 * /run/containerd afterwards only when it created them and they are empty.
 * The daemon, and any shim it left (found by our gRPC address on its command
 * line), are stopped by PID; ctr's cgroups (/<namespace>/<id>) are removed.
 *
 * Each runtime is called through a small wrapper script that appends every
 * command line, its exit status and, on failure, the runtime's log.json
 * (`--log-format json`) to a calls log: a failed assertion prints those and
 * the daemon's (shim's) warnings and errors about the container.
 */
import { type ChildProcess, execFileSync, spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, readlinkSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import t, { type Test } from 'tap';
import { KOCI, ROOTFS, rootSkipReason } from './helpers/fixtures';

const RUNC = '/usr/sbin/runc';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const which = (cmd: string) => spawnSync('sh', ['-c', `command -v ${cmd}`], { encoding: 'utf8' }).stdout.trim();

/** containerd, ctr and the runc v2 shim from Debian's package: installed when missing (needs root and apt) */
function containerdSkipReason(): string | undefined {
  const missing = () => ['containerd', 'ctr', 'containerd-shim-runc-v2'].filter((c) => !which(c));
  if (missing().length) {
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
    const install = () => execFileSync('apt-get', ['install', '-y', '-q', 'containerd'], { env, stdio: ['ignore', 'ignore', 'pipe'], timeout: 240_000 });
    try {
      t.comment('containerd is missing: apt-get install -y containerd');
      try {
        install();
      } catch {
        execFileSync('apt-get', ['update', '-q'], { env, stdio: ['ignore', 'ignore', 'pipe'], timeout: 120_000 });
        install();
      }
    } catch (e) {
      const err = e as { stderr?: Buffer; message: string };
      return `containerd could not be installed (apt-get install -y containerd): ${(err.stderr?.toString().trim().split('\n').pop() ?? err.message).slice(0, 300)}`;
    }
    if (missing().length) return `apt-get installed containerd but ${missing().join(', ')} is still missing`;
  }
  if (!existsSync(RUNC)) return `no runc at ${RUNC} (the baseline; Debian's containerd package depends on it)`;
  return undefined;
}

const skip = rootSkipReason() ?? containerdSkipReason();
if (skip) t.comment(`skipping containerd tests: ${skip}`);

/* ------------------------------------------------------------------ setup */

const tag = `${process.pid}-${Date.now().toString(36)}`;
const NS = `koci-ctr-${tag}`; // containerd namespace; also the cgroup parent ctr uses (/<ns>/<id>)
const IMAGE = 'docker.io/koci-test/busybox:latest'; // inside our private namespace and daemon
const base = mkdtempSync(join(tmpdir(), 'koci-ctrd-'));
const P = {
  root: join(base, 'root'),
  state: join(base, 'state'),
  sock: join(base, 'c.sock'),
  config: join(base, 'config.toml'),
  daemonLog: join(base, 'containerd.log'),
  fifo: join(base, 'fifo'),
  tmp: join(base, 'tmp'),
  opt: join(base, 'opt'),
  image: join(base, 'image'),
};
const runcRunDirExisted = existsSync('/run/containerd');
const runcSocketDirExisted = existsSync('/run/containerd/s');

interface Rt {
  name: 'runc' | 'koci';
  /** the wrapper the shim runs as BinaryName */
  bin: string;
  /** --runc-root: the shim adds /<namespace> */
  root: string;
  calls: string;
  /** the runtime itself, for teardown */
  real: string;
}
const RTS: Rt[] = (['runc', 'koci'] as const).map((name) => ({
  name,
  bin: join(base, `${name}-wrapper`),
  root: join(base, `${name}-root`),
  calls: join(base, `${name}-calls.log`),
  real: name === 'runc' ? RUNC : KOCI,
}));

const ids = new Set<string>();
let n = 0;
function newId(rt: Rt, what: string): string {
  const id = `${rt.name}-${what}-${tag}-${n++}`;
  ids.add(id);
  return id;
}

let daemon: ChildProcess | undefined;
let ready = false;
let snapshotter = 'overlayfs';

interface Res {
  status: number | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

/** the environment without the test runner's own variables */
const cleanEnv = () => Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^(NODE_OPTIONS$|TAP|_TAPJS_|TS_NODE_)/.test(k)));

/** run a command in its own process group; on timeout the whole group is killed (only what we started) */
function run(cmd: string, args: string[], { timeout = 30_000, env = {} as Record<string, string> } = {}): Promise<Res> {
  return new Promise((resolve) => {
    const c = spawn(cmd, args, {
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
      env: { ...cleanEnv(), CONTAINERD_ADDRESS: P.sock, CONTAINERD_NAMESPACE: NS, CONTAINERD_SNAPSHOTTER: snapshotter, ...env },
    });
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    c.stdout!.on('data', (d) => (stdout += d));
    c.stderr!.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => {
      timedOut = true;
      try {
        process.kill(-c.pid!, 'SIGKILL');
      } catch {
        /* gone */
      }
    }, timeout);
    c.on('error', (e) => {
      clearTimeout(timer);
      resolve({ status: null, stdout, stderr: stderr + e.message, timedOut });
    });
    c.on('close', (status) => {
      clearTimeout(timer);
      resolve({ status, stdout, stderr, timedOut });
    });
  });
}
const ctr = (args: string[], opts?: { timeout?: number }) => run('ctr', args, opts);
/** the runtime options of `ctr run` for one runtime */
const rtArgs = (rt: Rt) => ['--runc-binary', rt.bin, '--runc-root', rt.root, '--fifo-dir', P.fifo];
const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

async function taskStatus(id: string): Promise<{ pid: number; status: string } | undefined> {
  const r = await ctr(['task', 'ls']);
  const line = r.stdout.split('\n').find((l) => l.split(/\s+/)[0] === id);
  if (!line) return undefined;
  const [, pid, status] = line.trim().split(/\s+/);
  return { pid: Number(pid), status };
}

async function waitStatus(id: string, want: string, ms = 15_000): Promise<string | undefined> {
  let st: string | undefined;
  for (const end = Date.now() + ms; Date.now() < end; await sleep(100)) {
    st = (await taskStatus(id))?.status;
    if (st === want) break;
  }
  return st;
}

/** `ctr task rm`: the task's exit code is only in its warning line */
async function removeTask(id: string): Promise<{ status: number | null; exitCode: number | undefined; stderr: string }> {
  const r = await ctr(['task', 'rm', id]);
  const m = /exit with non-zero exit code (\d+)/.exec(r.stderr);
  return { status: r.status, exitCode: r.status === 0 ? (m ? Number(m[1]) : 0) : undefined, stderr: r.stderr };
}

/** on failure: what the shim called and what it said about these containers */
function diagnose(tt: { passing(): boolean; comment(...a: unknown[]): void }, rt: Rt, ...cids: string[]): void {
  if (tt.passing()) return;
  const calls = existsSync(rt.calls) ? readFileSync(rt.calls, 'utf8').split('\n') : [];
  const mine = calls.filter((l) => cids.some((id) => l.includes(id)));
  const pids = new Set(mine.map((l) => l.split(' ')[0]));
  tt.comment(`${rt.name} calls by the shim:\n${calls.filter((l) => pids.has(l.split(' ')[0])).join('\n')}`);
  const log = existsSync(P.daemonLog) ? readFileSync(P.daemonLog, 'utf8').split('\n') : [];
  tt.comment(`containerd/shim log:\n${log.filter((l) => /level=(error|warning)/.test(l) && cids.some((id) => l.includes(id))).join('\n')}`);
}

function writeWrapper(rt: Rt): void {
  // not exec: the exit status and log.json (the runtime's --log) are appended after the call
  writeFileSync(
    rt.bin,
    `#!/bin/sh
echo "$$ $(date +%T.%3N) $*" >> ${q(rt.calls)}
log=; prev=
for a in "$@"; do [ "$prev" = --log ] && log=$a; prev=$a; done
${q(rt.real)} "$@"
rc=$?
echo "$$ $(date +%T.%3N) exit $rc" >> ${q(rt.calls)}
if [ $rc -ne 0 ] && [ -n "$log" ] && [ -f "$log" ]; then tail -n 3 "$log" | sed "s/^/$$ log.json: /" >> ${q(rt.calls)}; fi
exit $rc
`,
  );
  chmodSync(rt.bin, 0o755);
}

function writeConfig(): void {
  const koci = RTS[1];
  writeFileSync(
    P.config,
    `version = 2
root = ${JSON.stringify(P.root)}
state = ${JSON.stringify(P.state)}
[grpc]
  address = ${JSON.stringify(P.sock)}
[ttrpc]
  address = ${JSON.stringify(P.sock + '.ttrpc')}
[debug]
  address = ""
  level = "debug"
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = ${JSON.stringify(P.opt)}
[plugins."io.containerd.grpc.v1.cri"]
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    default_runtime_name = "koci"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.koci]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.koci.options]
        BinaryName = ${JSON.stringify(koci.bin)}
        Root = ${JSON.stringify(koci.root)}
`,
  );
}

/** an OCI image layout of the busybox rootfs (one uncompressed layer), tarred for `ctr images import` */
function buildImage(): string {
  const blobs = join(P.image, 'blobs', 'sha256');
  mkdirSync(blobs, { recursive: true });
  const put = (buf: Buffer) => {
    const hex = createHash('sha256').update(buf).digest('hex');
    writeFileSync(join(blobs, hex), buf);
    return { digest: `sha256:${hex}`, size: buf.length };
  };
  const layerTar = join(base, 'layer.tar');
  execFileSync('tar', ['-C', ROOTFS, '--numeric-owner', '--owner=0', '--group=0', '-cf', layerTar, '.']);
  const layer = put(readFileSync(layerTar));
  rmSync(layerTar);
  const architecture = ({ x64: 'amd64', arm64: 'arm64', arm: 'arm', ppc64: 'ppc64le', s390x: 's390x', riscv64: 'riscv64' } as Record<string, string>)[process.arch] ?? process.arch;
  const platform = { architecture, os: 'linux' };
  const config = put(Buffer.from(JSON.stringify({ ...platform, config: { Env: ['PATH=/bin'], Cmd: ['sh'], WorkingDir: '/' }, rootfs: { type: 'layers', diff_ids: [layer.digest] } })));
  const manifest = put(
    Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...config },
        layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', ...layer }],
      }),
    ),
  );
  const annotations = { 'io.containerd.image.name': IMAGE, 'org.opencontainers.image.ref.name': 'latest' };
  writeFileSync(join(P.image, 'index.json'), JSON.stringify({ schemaVersion: 2, manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', ...manifest, platform, annotations }] }));
  writeFileSync(join(P.image, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  const out = join(base, 'image.tar');
  execFileSync('tar', ['-C', P.image, '-cf', out, 'oci-layout', 'index.json', 'blobs']);
  return out;
}

/* --------------------------------------------------------------- teardown */

function pidsOf(match: (cmdline: string[]) => boolean): number[] {
  const out: number[] = [];
  for (const p of readdirSync('/proc').filter((x) => /^\d+$/.test(x))) {
    try {
      const cmd = readFileSync(`/proc/${p}/cmdline`, 'utf8').split('\0');
      if (match(cmd)) out.push(Number(p));
    } catch {
      /* gone */
    }
  }
  return out;
}
const ourShims = () => pidsOf((c) => c[0].endsWith('containerd-shim-runc-v2') && c.includes(P.sock));
/** processes whose root or cwd is in our temp dir: containers and shims */
const ourProcesses = () =>
  readdirSync('/proc')
    .filter((x) => /^\d+$/.test(x) && Number(x) !== process.pid)
    .filter((p) => ['root', 'cwd'].some((l) => {
      try {
        return readlinkSync(`/proc/${p}/${l}`).startsWith(base + '/');
      } catch {
        return false;
      }
    }));
const ourMounts = () => readFileSync('/proc/self/mountinfo', 'utf8').split('\n').filter((l) => l.includes(base + '/'));
function ourCgroups(): string[] {
  const out: string[] = [];
  const walk = (dir: string, depth: number) => {
    let es;
    try {
      es = readdirSync(dir, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of es) {
      if (!e.isDirectory()) continue;
      const p = join(dir, e.name);
      if (e.name === NS || [...ids].some((id) => e.name.includes(id))) out.push(p);
      if (depth < 4) walk(p, depth + 1);
    }
  };
  walk('/sys/fs/cgroup', 1);
  return out.sort((a, b) => b.length - a.length); // children first, for rmdir
}
/** containers the runtime still has under its --root (only those of `only`, when given) */
const stateLeft = (rt: Rt, ...only: string[]) =>
  (existsSync(join(rt.root, NS)) ? readdirSync(join(rt.root, NS)) : []).filter((e) => !only.length || only.includes(e));
/** where containerd 1.6's shim puts its socket, whatever the config says: /run/containerd/s/sha256(<grpc address>/<ns>/<id>) */
const shimSocket = (id: string) => join('/run/containerd/s', createHash('sha256').update(`${P.sock}/${NS}/${id}`).digest('hex'));

/**
 * A container stuck half-way (e.g. the shim waiting forever for a console
 * that never comes): the runtime deletes it, its shim (ours: our address and
 * its id on the command line) is killed by PID, and containerd forgets it.
 * Returns what had to be done, for the report.
 */
async function rescue(rt: Rt, id: string): Promise<string[]> {
  const done: string[] = [];
  const shims = () => pidsOf((c) => c[0].endsWith('containerd-shim-runc-v2') && c.includes(P.sock) && c.includes(id));
  for (const pid of shims()) {
    process.kill(pid, 'SIGKILL');
    done.push(`killed shim ${pid}`);
  }
  for (const end = Date.now() + 5000; shims().length && Date.now() < end; ) await sleep(50);
  if (stateLeft(rt, id).length) {
    const d = spawnSync(rt.real, ['--root', join(rt.root, NS), 'delete', '--force', id], { encoding: 'utf8', timeout: 30_000, env: cleanEnv() });
    done.push(`${rt.name} delete --force: exit ${d.status} ${d.stderr.trim()}`);
  }
  if (existsSync(shimSocket(id))) {
    rmSync(shimSocket(id));
    done.push(`removed ${shimSocket(id)}`);
  }
  if (daemon && daemon.exitCode === null) {
    if (await taskStatus(id)) await ctr(['task', 'rm', '-f', id], { timeout: 10_000 });
    if ((await ctr(['containers', 'rm', id], { timeout: 10_000 })).status === 0) done.push('ctr containers rm');
  }
  return done;
}

let cleaned = false;
/** remove everything; return what was left behind after the orderly deletes (for the final assertions) */
async function cleanup(): Promise<Record<string, string[]>> {
  if (cleaned) return {};
  cleaned = true;
  const left: Record<string, string[]> = {};
  if (daemon && daemon.exitCode === null) {
    // orderly: what any user of containerd would do
    for (const id of ids) {
      if (await taskStatus(id)) {
        await ctr(['task', 'kill', '-s', 'SIGKILL', id], { timeout: 10_000 });
        await waitStatus(id, 'STOPPED', 5_000);
        await ctr(['task', 'rm', '-f', id], { timeout: 10_000 });
      }
      await ctr(['containers', 'rm', id], { timeout: 10_000 });
    }
    left.containers = (await ctr(['containers', 'ls', '-q'])).stdout.split('\n').filter(Boolean);
    await ctr(['images', 'rm', '--sync', IMAGE], { timeout: 10_000 });
    await ctr(['namespaces', 'rm', NS], { timeout: 10_000 });
  }
  // what the runtimes still know about
  for (const rt of RTS) {
    left[`${rt.name} state`] = stateLeft(rt);
    for (const id of left[`${rt.name} state`]) spawnSync(rt.real, ['--root', join(rt.root, NS), 'delete', '--force', id], { timeout: 30_000, env: cleanEnv() });
  }
  // the daemon, by PID
  if (daemon && daemon.exitCode === null && daemon.signalCode === null) {
    const exited = new Promise((r) => daemon!.once('exit', r));
    daemon.kill('SIGTERM');
    if ((await Promise.race([exited, sleep(10_000).then(() => 'timeout')])) === 'timeout') {
      daemon.kill('SIGKILL');
      await exited;
    }
  }
  // shims our daemon started and left (they outlive a daemon by design)
  left.shims = ourShims().map(String);
  for (const pid of ourShims()) process.kill(pid, 'SIGKILL');
  for (const end = Date.now() + 5000; ourShims().length && Date.now() < end; ) await sleep(50);
  left.shimSockets = [...ids].map(shimSocket).filter((s) => existsSync(s));
  left.shimSockets.forEach((s) => rmSync(s));
  left.processes = ourProcesses();
  for (const pid of left.processes) process.kill(Number(pid), 'SIGKILL');
  left.mounts = ourMounts();
  for (const m of [...left.mounts].reverse()) spawnSync('umount', ['-l', m.split(' ')[4]]);
  left.cgroups = ourCgroups().filter((c) => !c.endsWith('/' + NS)); // the namespace's parent cgroup is ctr's, not a runtime's leftover
  for (const c of ourCgroups()) {
    try {
      rmdirSync(c);
    } catch {
      /* busy: reported */
    }
  }
  // the shim's hard-coded socket directory: only what we created, only when empty
  for (const [dir, existed] of [['/run/containerd/s', runcSocketDirExisted], ['/run/containerd', runcRunDirExisted]] as const) {
    if (!existed && existsSync(dir) && readdirSync(dir).length === 0) rmdirSync(dir);
  }
  rmSync(base, { recursive: true, force: true });
  return left;
}

t.teardown(async () => {
  await cleanup();
  rmSync(base, { recursive: true, force: true });
});

/* ------------------------------------------------------------------ tests */

t.test('a private containerd with the runc shim pointed at runc and at koci', { skip }, async (t) => {
  for (const d of [P.root, P.state, P.fifo, P.tmp, P.opt]) mkdirSync(d, { recursive: true });
  RTS.forEach(writeWrapper);
  writeConfig();
  const dump = spawnSync('containerd', ['--config', P.config, 'config', 'dump'], { encoding: 'utf8' });
  t.match(dump.stdout, new RegExp(`BinaryName = "${RTS[1].bin}"`), 'the CRI runtime "koci" runs the runc shim with koci as BinaryName');

  const started = Date.now();
  const logFd = openSync(P.daemonLog, 'w');
  daemon = spawn('containerd', ['--config', P.config], {
    stdio: ['ignore', logFd, logFd],
    // TMPDIR: where the shim makes its console sockets; node: for koci's `#!/usr/bin/env -S node` shebang
    // and none of tap's variables (NODE_OPTIONS=--import its process tracker): koci runs as in production
    env: { ...cleanEnv(), TMPDIR: P.tmp, PATH: `${dirname(process.execPath)}:${process.env.PATH}` },
  });
  closeSync(logFd);
  let up = false;
  for (const end = Date.now() + 20_000; !up && Date.now() < end && daemon.exitCode === null; ) {
    up = (await ctr(['version'], { timeout: 5000 })).status === 0;
    if (!up) await sleep(100);
  }
  if (!t.ok(up, `containerd answers on ${P.sock}`)) {
    t.comment(readFileSync(P.daemonLog, 'utf8').split('\n').slice(-20).join('\n'));
    return;
  }
  t.comment(`containerd ${daemon.pid} up in ${Date.now() - started} ms`);
  const plugins = (await ctr(['plugins', 'ls'])).stdout;
  if (!/io\.containerd\.snapshotter\.v1\s+overlayfs\s+\S+\s+ok/.test(plugins)) snapshotter = 'native'; // e.g. /tmp on overlayfs
  t.match(plugins, /io\.containerd\.grpc\.v1\s+cri\s+\S+\s+ok/, 'the CRI plugin loaded its config');

  const imp = await ctr(['images', 'import', buildImage()], { timeout: 60_000 });
  t.equal(imp.status, 0, `ctr images import: ${imp.stderr}`);
  t.match((await ctr(['images', 'ls', '-q'])).stdout, IMAGE);
  ready = imp.status === 0;
});

/** the scenarios need the daemon and the image: without them each is a skipped point with that reason */
function notReady(t: Test): boolean {
  if (!ready) t.plan(0, 'containerd setup failed (see the first test)');
  return !ready;
}

/** run the same scenario with runc, then koci; compare what each run returned (outputs with ids and PIDs taken out) */
async function both<T>(t: Test, name: string, scenario: (t: Test, rt: Rt) => Promise<T>, compare?: (t: Test, runc: T, koci: T) => void): Promise<void> {
  const results: Partial<Record<Rt['name'], T>> = {};
  for (const rt of RTS) {
    await t.test(`${name} — ${rt.name}`, async (tt) => {
      const started = Date.now();
      results[rt.name] = await scenario(tt, rt);
      tt.comment(`${rt.name}: ${Date.now() - started} ms`);
    });
  }
  if (compare && results.runc !== undefined && results.koci !== undefined) {
    await t.test(`${name} — koci behaves as runc`, async (tt) => compare(tt, results.runc as T, results.koci as T));
  }
}

t.test('ctr run: exit codes and stdout', { skip }, async (t) => {
  if (notReady(t)) return;
  await both(
    t,
    'ctr run --rm',
    async (tt, rt) => {
      const id = newId(rt, 'exit');
      const r = await ctr(['run', '--rm', ...rtArgs(rt), IMAGE, id, 'sh', '-c', 'echo "out $((1+2))"; echo err >&2; exit 3']);
      tt.equal(r.status, 3, `exit 3 is ctr's exit status: ${r.stderr}`);
      tt.equal(r.stdout, 'out 3\n', 'stdout');
      tt.match(r.stderr, /^err$/m, 'stderr');
      const id0 = newId(rt, 'true');
      const r0 = await ctr(['run', '--rm', ...rtArgs(rt), IMAGE, id0, 'sh', '-c', 'echo "pid $$ $(hostname)"; ls /proc/self/fd | wc -l']);
      tt.equal(r0.status, 0, r0.stderr);
      tt.match(r0.stdout, /^pid 1 \S+\n\s*4\n$/, 'PID 1 of its own pid namespace; only stdio (+ the fd ls opened)');
      tt.notOk((await ctr(['containers', 'ls', '-q'])).stdout.includes(id), '--rm removed the container');
      tt.same(stateLeft(rt, id, id0), [], 'no runtime state left');
      diagnose(tt, rt, id, id0);
      return { status: r.status, stdout: r.stdout, status0: r0.status, stdout0: r0.stdout.replace(/pid 1 \S+/, 'pid 1 HOST') };
    },
    (tt, a, b) => tt.same(b, a),
  );
});

t.test('ctr task: ps, pause/resume, kill SIGTERM and SIGKILL, delete', { skip }, async (t) => {
  if (notReady(t)) return;
  await both(
    t,
    'a detached task',
    async (tt, rt) => {
      const id = newId(rt, 'task');
      // `wait` is interrupted by the trapped TERM at once; PID 1 ignores untrapped TERM
      const r = await ctr(['run', '-d', ...rtArgs(rt), IMAGE, id, 'sh', '-c', 'trap "exit 7" TERM; sleep 1000 & wait']);
      tt.equal(r.status, 0, `ctr run -d: ${r.stderr}`);
      const st = await taskStatus(id);
      tt.equal(st?.status, 'RUNNING', 'ctr task ls: RUNNING');
      const ps = await ctr(['task', 'ps', id]);
      tt.equal(ps.status, 0, `ctr task ps: ${ps.stderr}`);
      const pids = ps.stdout.split('\n').slice(1).map((l) => Number(l.split(/\s+/)[0])).filter((x) => x > 0);
      tt.equal(pids.length, 2, `ps lists sh and sleep: ${ps.stdout}`);
      tt.ok(st && pids.includes(st.pid), 'ps includes the task PID');

      const pause = await ctr(['task', 'pause', id]);
      tt.equal(pause.status, 0, `ctr task pause: ${pause.stderr}`);
      tt.equal((await taskStatus(id))?.status, 'PAUSED', 'ctr task ls: PAUSED');
      const resume = await ctr(['task', 'resume', id]);
      tt.equal(resume.status, 0, `ctr task resume: ${resume.stderr}`);
      tt.equal((await taskStatus(id))?.status, 'RUNNING', 'ctr task ls: RUNNING again');

      const kill = await ctr(['task', 'kill', id]);
      tt.equal(kill.status, 0, `ctr task kill (SIGTERM): ${kill.stderr}`);
      tt.equal(await waitStatus(id, 'STOPPED'), 'STOPPED', 'stopped by the trapped SIGTERM');
      const again = await ctr(['task', 'kill', id]);
      tt.not(again.status, 0, 'kill of a finished process fails');
      tt.match(again.stderr, /process already finished/, 'the shim maps the runtime error to "process already finished"');
      const rm = await removeTask(id);
      tt.equal(rm.status, 0, `ctr task rm: ${rm.stderr}`);
      tt.equal(rm.exitCode, 7, 'exit code 7 from the trap');
      const crm = await ctr(['containers', 'rm', id]);
      tt.equal(crm.status, 0, `ctr containers rm: ${crm.stderr}`);

      const id9 = newId(rt, 'kill9');
      tt.equal((await ctr(['run', '-d', ...rtArgs(rt), IMAGE, id9, 'sleep', '1000'])).status, 0, 'ctr run -d sleep');
      const k9 = await ctr(['task', 'kill', '-s', 'SIGKILL', id9]);
      tt.equal(k9.status, 0, `ctr task kill -s SIGKILL: ${k9.stderr}`);
      tt.equal(await waitStatus(id9, 'STOPPED'), 'STOPPED');
      const rm9 = await removeTask(id9);
      tt.equal(rm9.exitCode, 137, `128+9: ${rm9.stderr}`);
      tt.equal((await ctr(['containers', 'rm', id9])).status, 0, 'deletable');
      tt.same(stateLeft(rt, id, id9), [], 'no runtime state left');
      diagnose(tt, rt, id, id9);
      return { psCount: pids.length, exit: rm.exitCode, killAgain: again.status, exit9: rm9.exitCode };
    },
    (tt, a, b) => tt.same(b, a),
  );
});

t.test('ctr task exec into a running task', { skip }, async (t) => {
  if (notReady(t)) return;
  await both(
    t,
    'exec',
    async (tt, rt) => {
      const id = newId(rt, 'exec');
      const r = await ctr(['run', '-d', ...rtArgs(rt), IMAGE, id, 'sleep', '1000']);
      tt.equal(r.status, 0, `ctr run -d: ${r.stderr}`);
      const e = await ctr(['task', 'exec', '--fifo-dir', P.fifo, '--exec-id', 'e1', id, 'sh', '-c', 'echo "exec $(cat /proc/1/comm) $$"; exit 4'], { timeout: 20_000 });
      tt.equal(e.status, 4, `the exec'd process's exit status: ${e.stderr}`);
      tt.match(e.stdout, /^exec sleep \d+\n$/, 'stdout; it sees the task as its PID 1');
      const bad = await ctr(['task', 'exec', '--fifo-dir', P.fifo, '--exec-id', 'e2', id, '/nonexistent-bin'], { timeout: 20_000 });
      tt.not(bad.status, 0, 'exec of a missing binary fails');
      tt.match(bad.stderr, /OCI runtime exec failed/, bad.stderr);
      tt.equal((await taskStatus(id))?.status, 'RUNNING', 'the task is still running');
      await ctr(['task', 'kill', '-s', 'SIGKILL', id]);
      await waitStatus(id, 'STOPPED');
      await ctr(['task', 'rm', id]);
      tt.equal((await ctr(['containers', 'rm', id])).status, 0);
      diagnose(tt, rt, id);
      return { status: e.status, stdout: e.stdout.replace(/\d+\n$/, 'N\n'), bad: bad.status };
    },
    (tt, a, b) => tt.same(b, a),
  );
});

const scriptSkip = which('script') ? undefined : 'no `script` (util-linux/bsdutils) to give ctr -t a terminal';
t.test('ctr run --tty', { skip: skip ?? scriptSkip }, async (t) => {
  if (notReady(t)) return;
  await both(
    t,
    'tty',
    async (tt, rt) => {
      const id = newId(rt, 'tty');
      // ctr -t needs its own stdin to be a terminal: script(1) gives it one
      const cmd = ['ctr', 'run', '--rm', '-t', ...rtArgs(rt), IMAGE, id, 'sh', '-c', 'tty; [ -t 0 ] && [ -t 1 ] && echo stdio-tty; exit 5'].map(q).join(' ');
      const r = await run('script', ['-qec', cmd, '/dev/null'], { timeout: 15_000 });
      tt.notOk(r.timedOut, 'ctr run -t finished');
      if (r.timedOut) {
        // the shim reads `create`'s output to EOF before it calls start: whoever still holds that pipe blocks it
        const st = spawnSync(rt.real, ['--root', join(rt.root, NS), 'state', id], { encoding: 'utf8', env: cleanEnv() });
        const pid = st.status === 0 ? (JSON.parse(st.stdout) as { pid: number; status: string }).pid : 0;
        const fds = [0, 1, 2].map((fd) => {
          try {
            return `${fd}->${readlinkSync(`/proc/${pid}/fd/${fd}`)}`;
          } catch {
            return `${fd}->?`;
          }
        });
        tt.comment(`ctr run -t hung; ${rt.name} state: ${st.stdout.replace(/\s+/g, ' ').trim() || st.stderr.trim()}; init's stdio: ${fds.join(' ')}`);
        tt.comment(`rescued ${id}: ${(await rescue(rt, id)).join('; ')}`);
      }
      tt.equal(r.status, 5, `exit status through the terminal: ${r.stdout}`);
      tt.match(r.stdout, /\/dev\/pts\/\d+\r*\n/, 'tty: a pty of the container');
      tt.match(r.stdout, /stdio-tty\r*\n/);
      diagnose(tt, rt, id);
      return { status: r.status, out: (r.stdout.match(/\/dev\/pts\/\d+|stdio-tty/g) ?? []).join(' ') };
    },
    (tt, a, b) => tt.same(b, a),
  );
});

t.test('a process that cannot start: ctr run fails with the runtime message', { skip }, async (t) => {
  if (notReady(t)) return;
  await both(
    t,
    'missing binary',
    async (tt, rt) => {
      const id = newId(rt, 'nobin');
      const r = await ctr(['run', '--rm', ...rtArgs(rt), IMAGE, id, '/nonexistent-bin', 'arg']);
      tt.not(r.status, 0, 'ctr run fails');
      tt.match(r.stderr, /OCI runtime create failed: .*\/nonexistent-bin/, `the runtime's message: ${r.stderr.trim()}`);
      tt.notOk((await ctr(['containers', 'ls', '-q'])).stdout.includes(id), 'no container left');
      tt.same(stateLeft(rt, id), [], 'no runtime state left');
      diagnose(tt, rt, id);
      return { status: r.status, failedAt: /OCI runtime (\w+) failed/.exec(r.stderr)?.[1] };
    },
    (tt, a, b) => tt.same(b, a),
  );
});

/** per runtime and verb: how many calls the shim made and their median duration (from the wrappers' logs) */
function callTimings(rt: Rt): string {
  const ms = (hms: string) => hms.split(':').reduce((a, x) => a * 60 + Number(x), 0) * 1000;
  const open = new Map<string, { verb: string; at: number }>();
  const per = new Map<string, number[]>();
  for (const l of existsSync(rt.calls) ? readFileSync(rt.calls, 'utf8').split('\n') : []) {
    const [pid, at, ...rest] = l.split(' ');
    if (rest[0] === 'exit') {
      const o = open.get(pid);
      if (o) per.set(o.verb, [...(per.get(o.verb) ?? []), ms(at) - o.at]);
    } else if (rest.length && rest[0] !== 'log.json:') {
      // the verb: the first word after the global options (each of which takes a value here)
      let i = 0;
      while (rest[i]?.startsWith('--')) i += 2;
      open.set(pid, { verb: rest[i] + (rest[i + 1]?.startsWith('--') && rest[i] === 'delete' ? ` ${rest[i + 1]}` : ''), at: ms(at) });
    }
  }
  return [...per]
    .map(([verb, d]) => `${verb} ×${d.length} median ${d.sort((a, b) => a - b)[d.length >> 1].toFixed(0)} ms`)
    .join(', ');
}

t.test('teardown leaves nothing behind', { skip }, async (t) => {
  if (notReady(t)) return;
  for (const rt of RTS) t.comment(`${rt.name} as called by the shim: ${callTimings(rt)}`);
  const left = await cleanup();
  t.same(left.containers, [], 'every container removed through ctr');
  t.same(left['runc state'], [], 'no runc state left');
  t.same(left['koci state'], [], 'no koci state dirs left');
  t.same(left.shims, [], 'no shim outlived its task');
  t.same(left.shimSockets, [], 'no shim socket left in /run/containerd/s');
  t.same(left.processes, [], 'no process in our temp dirs');
  t.same(left.mounts, [], 'no mount of our temp dirs');
  t.same(left.cgroups, [], 'no cgroup named after our containers');
  t.same(ourCgroups(), [], 'the namespace cgroups removed too');
  t.same(ourMounts(), []);
  t.notOk(existsSync(base), 'temp dir removed');
  t.equal(existsSync('/run/containerd'), runcRunDirExisted, '/run/containerd as it was');
});
