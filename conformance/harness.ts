/**
 * The conformance harness: a runtime under test driven through its runc-style
 * CLI (private --root, unique IDs), bundles made from the busybox rootfs with
 * the in-container probe, and a tiny TAP assertion collector.
 */
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, closeSync, cpSync, existsSync, mkdtempSync, openSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { defaultConfig, type Config } from './spec';

export const REPO = resolve(__dirname, '..', '..');
export const ROOTFS = join(REPO, '.cache', 'busybox-rootfs');
export const PROBE_PATH = '/conformance-probe.sh';

/** the in-container probe: busybox sh only; prints `@@section` headers followed by what the container sees */
export const PROBE = `#!/bin/sh
s() { echo "@@$1"; }
s pid; echo $$
s uid; id -u
s gid; id -g
s groups; id -G
s hostname; hostname
s domainname; cat /proc/sys/kernel/domainname
s status; grep -E '^(Cap|Seccomp|NoNewPrivs|Groups|Uid|Gid)' /proc/self/status
s mountinfo; cat /proc/self/mountinfo
s limits; cat /proc/self/limits
s umask; umask
s cwd; pwd
s env; env
s cgroup; cat /proc/self/cgroup
s oom; cat /proc/self/oom_score_adj
s uidmap; cat /proc/self/uid_map
s gidmap; cat /proc/self/gid_map
s ns; for n in cgroup ipc mnt net pid uts user; do echo "$n $(readlink /proc/self/ns/$n)"; done
if [ -n "$1" ]; then s extra; eval "$1"; fi
s end
`;

export interface Probe {
  raw: string;
  sections: Record<string, string>;
  /** a section's lines */
  lines(name: string): string[];
  /** a section's text, trimmed */
  get(name: string): string;
}

export function parseProbe(raw: string): Probe {
  const sections: Record<string, string> = {};
  let cur = '';
  for (const line of raw.split('\n')) {
    const m = /^@@(\w+)$/.exec(line);
    if (m) {
      cur = m[1];
      sections[cur] = '';
    } else if (cur) sections[cur] += line + '\n';
  }
  return {
    raw,
    sections,
    lines: (n) => (sections[n] ?? '').split('\n').filter((l) => l !== ''),
    get: (n) => (sections[n] ?? '').trim(),
  };
}

export interface Result {
  status: number | null;
  stdout: string;
  stderr: string;
}

export interface Runtime {
  name: string;
  /** argv prefix: binary (and interpreter) */
  bin: string;
  root: string;
}

export class Skip extends Error {}

export interface Assertion {
  ok: boolean;
  name: string;
  diag?: string;
}

let counter = 0;

/** per-case context: assertions plus the runtime and resources, all cleaned up at the end */
export class Ctx {
  readonly assertions: Assertion[] = [];
  private ids: string[] = [];
  private dirs: string[] = [];
  private pids: number[] = [];

  constructor(readonly rt: Runtime) {}

  // --- assertions -------------------------------------------------------
  ok(cond: unknown, name: string, diag?: unknown): boolean {
    this.assertions.push({ ok: !!cond, name, diag: cond ? undefined : diag === undefined ? undefined : String(typeof diag === 'string' ? diag : JSON.stringify(diag)) });
    return !!cond;
  }
  equal(actual: unknown, expected: unknown, name: string): boolean {
    const show = (v: unknown) => (typeof v === 'bigint' ? `0x${v.toString(16)}` : JSON.stringify(v));
    return this.ok(actual === expected, name, `expected ${show(expected)}, got ${show(actual)}`);
  }
  match(actual: string | undefined, re: RegExp, name: string): boolean {
    return this.ok(actual !== undefined && re.test(actual), name, `expected to match ${re}, got ${JSON.stringify(actual)}`);
  }
  /** a CLI call that must succeed; returns whether it did */
  succeeds(r: Result, name: string): boolean {
    return this.ok(r.status === 0, name, `exit ${r.status}: ${r.stderr.trim().slice(0, 400)}`);
  }
  fails(r: Result, name: string): boolean {
    return this.ok(r.status !== 0 && r.status !== null, name, `exit ${r.status} (expected a non-zero exit)`);
  }
  skip(reason: string): never {
    throw new Skip(reason);
  }

  // --- resources --------------------------------------------------------
  tmp(prefix = 'conf-'): string {
    const d = mkdtempSync(join(tmpdir(), prefix));
    chmodSync(d, 0o755);
    this.dirs.push(d);
    return d;
  }
  id(tag = 'c'): string {
    const id = `conf-${tag}-${process.pid}-${Date.now().toString(36)}-${counter++}`;
    this.ids.push(id);
    return id;
  }
  /** a long-running host process to clean up (namespace holders) */
  track(pid: number): void {
    this.pids.push(pid);
  }

  cleanup(): void {
    for (const id of this.ids) this.cli(['delete', '--force', id], 10_000);
    for (const pid of this.pids) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
    for (const d of this.dirs) rmSync(d, { recursive: true, force: true });
  }

  // --- runtime CLI ------------------------------------------------------
  /** run the runtime's CLI; stdio are files (a created container keeps the caller's stdio open) */
  cli(args: string[], timeout = 30_000, stdoutFile?: string, stdin?: string): Result {
    const io = mkdtempSync(join(tmpdir(), 'conf-io-'));
    try {
      const out = stdoutFile ?? join(io, 'out');
      const errFile = stdoutFile ? `${stdoutFile}.err` : join(io, 'err');
      const fds = [openSync(out, 'a'), openSync(errFile, 'a')];
      const infd = stdin === undefined ? 'ignore' : openSync(stdin, 'r');
      try {
        const r = spawnSync(this.rt.bin, ['--root', this.rt.root, ...args], { timeout, stdio: [infd, fds[0], fds[1]] });
        return {
          status: r.status,
          stdout: stdoutFile ? '' : readFileSync(out, 'utf8'),
          stderr: readFileSync(errFile, 'utf8') + (r.error ? `\n${r.error.message}` : ''),
        };
      } finally {
        fds.forEach((fd) => closeSync(fd));
        if (typeof infd === 'number') closeSync(infd);
      }
    } finally {
      rmSync(io, { recursive: true, force: true });
    }
  }

  state(id: string): Record<string, any> | undefined {
    const r = this.cli(['state', id]);
    if (r.status !== 0) return undefined;
    try {
      return JSON.parse(r.stdout) as Record<string, any>;
    } catch {
      return undefined;
    }
  }

  // --- bundles ----------------------------------------------------------
  /** a bundle: copy of the busybox rootfs plus the probe, config from defaultConfig() edited by `edit` */
  bundle(edit?: (c: Config, b: Bundle) => void): Bundle {
    const dir = this.tmp('conf-bundle-');
    const rootfs = join(dir, 'rootfs');
    cpSync(ROOTFS, rootfs, { recursive: true, verbatimSymlinks: true });
    writeFileSync(join(rootfs, PROBE_PATH), PROBE, { mode: 0o755 });
    const b = new Bundle(dir, rootfs, defaultConfig());
    edit?.(b.config, b);
    b.save();
    return b;
  }

  /** create a container from a bundle; stdout of the container goes to `<bundle>/stdout` */
  create(b: Bundle, id = this.id(), extra: string[] = []): { id: string; res: Result; pidFile: string } {
    const pidFile = join(b.dir, 'pidfile');
    const res = this.cli(['create', '--bundle', b.dir, '--pid-file', pidFile, ...extra, id], 30_000, b.stdout);
    return { id, res, pidFile };
  }

  /** wait until the container's init is gone (or a zombie), then until state says stopped */
  waitExit(id: string, pid: number | undefined, ms = 15_000): boolean {
    const end = Date.now() + ms;
    if (pid) {
      while (Date.now() < end && alive(pid)) sleep(10);
    }
    while (Date.now() < end) {
      const s = this.state(id);
      if (!s || s.status === 'stopped') return true;
      sleep(25);
    }
    return false;
  }

  /** wait until a file contains a pattern */
  waitFor(file: string, re: RegExp, ms = 10_000): boolean {
    const end = Date.now() + ms;
    while (Date.now() < end) {
      if (existsSync(file) && re.test(readFileSync(file, 'utf8'))) return true;
      sleep(15);
    }
    return false;
  }

  /**
   * The common path: a bundle running the probe (plus `extra` shell code),
   * create, start, wait for exit, parse stdout, delete. Asserts each CLI step.
   */
  probe(edit?: (c: Config, b: Bundle) => void, extra = ''): Probe | undefined {
    const b = this.bundle((c, bb) => {
      c.process.args = ['sh', PROBE_PATH, extra];
      edit?.(c, bb);
    });
    return this.probeBundle(b);
  }

  probeBundle(b: Bundle): Probe | undefined {
    const raw = this.runToExit(b);
    if (raw === undefined) return undefined;
    const p = parseProbe(raw);
    this.ok(p.sections.end !== undefined, 'probe ran to the end', raw.slice(-300) + readFileSync(b.stderr, 'utf8').slice(-300));
    return p;
  }

  /** create, start, wait for exit, delete; returns the container's stdout */
  runToExit(b: Bundle): string | undefined {
    const { id, res } = this.create(b);
    if (!this.succeeds(res, 'create succeeds')) return undefined;
    const pid = this.state(id)?.pid as number | undefined;
    if (!this.succeeds(this.cli(['start', id]), 'start succeeds')) return undefined;
    this.waitExit(id, pid);
    this.cli(['delete', '--force', id]);
    return readFileSync(b.stdout, 'utf8');
  }

  /** run a container with these args (and config edits) to exit; its stdout */
  output(args: string[], edit?: (c: Config, b: Bundle) => void): string | undefined {
    return this.runToExit(
      this.bundle((c, b) => {
        c.process.args = args;
        edit?.(c, b);
      }),
    );
  }

  /** spawn a namespace holder: `unshare <flags> sleep 300`; returns the pid whose /proc/PID/ns/* to join */
  holder(flags: string[], fork = false): number {
    const child = spawn('unshare', [...flags, ...(fork ? ['--fork'] : []), 'sleep', '300'], { stdio: 'ignore', detached: true });
    child.unref();
    const pid = child.pid!;
    this.track(pid);
    const end = Date.now() + 5000;
    // wait until the unshare has exec'd sleep (or forked it)
    while (Date.now() < end) {
      try {
        if (fork) {
          const kids = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim();
          if (kids) {
            const k = Number(kids.split(/\s+/)[0]);
            if (readFileSync(`/proc/${k}/comm`, 'utf8').trim() === 'sleep') {
              this.track(k);
              return k;
            }
          }
        } else if (readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === 'sleep') return pid;
      } catch {
        /* not yet */
      }
      sleep(10);
    }
    throw new Error(`namespace holder (unshare ${flags.join(' ')}) did not start`);
  }
}

export class Bundle {
  constructor(
    readonly dir: string,
    readonly rootfs: string,
    public config: Config,
  ) {}
  get stdout(): string {
    return join(this.dir, 'stdout');
  }
  get stderr(): string {
    return join(this.dir, 'stdout.err');
  }
  save(): void {
    writeFileSync(join(this.dir, 'config.json'), JSON.stringify(this.config, null, 2));
  }
}

// --- host helpers ---------------------------------------------------------
const sab = new Int32Array(new SharedArrayBuffer(4));
export function sleep(ms: number): void {
  Atomics.wait(sab, 0, 0, ms);
}

export function alive(pid: number): boolean {
  try {
    const st = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = st.slice(st.lastIndexOf(')') + 2, st.lastIndexOf(')') + 3);
    return state !== 'Z' && state !== 'X';
  } catch {
    return false;
  }
}

export function nsOf(pid: number | 'self', ns: string): string | undefined {
  try {
    return readlinkSync(`/proc/${pid}/ns/${ns}`);
  } catch {
    return undefined;
  }
}

export function readPid(file: string): number | undefined {
  try {
    const n = Number(readFileSync(file, 'utf8').trim());
    return Number.isInteger(n) && n > 0 ? n : undefined;
  } catch {
    return undefined;
  }
}

/** the host path of a cgroup file of process `pid` for a v1 controller, or the v2 path when the host is cgroup v2 */
export function cgroupFile(pid: number, controller: string, file: string): string | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/cgroup`, 'utf8');
  } catch {
    return undefined;
  }
  const lines = text.trim().split('\n').map((l) => l.split(':'));
  const v2 = existsSync('/sys/fs/cgroup/cgroup.controllers');
  if (v2) {
    const l = lines.find((x) => x[0] === '0');
    return l ? join('/sys/fs/cgroup', l.slice(2).join(':'), file) : undefined;
  }
  const l = lines.find((x) => x[1].split(',').includes(controller));
  return l ? join('/sys/fs/cgroup', controller, l.slice(2).join(':'), file) : undefined;
}

export const CGROUP_V2 = existsSync('/sys/fs/cgroup/cgroup.controllers');

export function readTrim(file: string | undefined): string | undefined {
  if (!file) return undefined;
  try {
    return readFileSync(file, 'utf8').trim();
  } catch {
    return undefined;
  }
}

/** parse /proc/PID/mountinfo lines into objects */
export interface MountInfo {
  mountPoint: string;
  opts: string[];
  optional: string[];
  fstype: string;
  source: string;
  superOpts: string[];
}
export function parseMountinfo(lines: string[]): MountInfo[] {
  return lines.map((l) => {
    const [pre, post] = l.split(' - ');
    const f = pre.split(' ');
    const g = (post ?? '').split(' ');
    return { mountPoint: f[4], opts: (f[5] ?? '').split(','), optional: f.slice(6), fstype: g[0], source: g[1], superOpts: (g[2] ?? '').split(',') };
  });
}
