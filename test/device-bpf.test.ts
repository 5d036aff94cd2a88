/**
 * The cgroup v2 device program on the real kernel. A cgroup-device program
 * works on any cgroup2 directory whatever controllers are enabled, so on a
 * v1/v2 hybrid host (devices controller in v1) it is tested on a cgroup of
 * its own under this process's cgroup2 cgroup: a child joins it and opens
 * devices; the v1 device cgroup (the root one, which allows all) plays no
 * part. Then koci itself, in a mount namespace where /sys/fs/cgroup is the
 * cgroup2 mount alone (a pure v2 host as koci sees it), attaches the program
 * at create and replaces it at update.
 */
import { spawnSync } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import * as B from '../bindings/bpf';
import * as C from '../bindings/constants';
import * as libc from '../bindings/libc';
import { hierarchies } from '../lib/cgroups';
import { attachDeviceProgram, attachedDevicePrograms, compileDeviceProgram, PROGRAM_NAME } from '../lib/cgroups/device-program';
import { sleepSync } from '../lib/sleep';
import type { LinuxDeviceCgroup } from '../lib/spec/types';
import { KOCI, makeBundle, rootSkipReason, uniqueId } from './helpers/fixtures';

/** this process's cgroup2 directory, or why there is none */
function ownUnified(): { mount: string; dir: string } | string {
  if (process.getuid?.() !== 0) return 'needs root (bpf and cgroups)';
  const mount = hierarchies().find((h) => h.key === '')?.mountpoint;
  if (!mount) return 'no cgroup2 mount on this host';
  const own = /^0::(.*)$/m.exec(readFileSync('/proc/self/cgroup', 'utf8'))?.[1];
  if (own === undefined) return 'no "0::" line in /proc/self/cgroup';
  return { mount, dir: join(mount, own) };
}

const unified = ownUnified();
const skip = typeof unified === 'string' ? unified : false;
if (skip) t.comment(`skipping cgroup v2 device program tests: ${skip}`);
const { mount: v2mount, dir: v2own } = typeof unified === 'string' ? { mount: '', dir: '' } : unified;

let n = 0;
/** a fresh cgroup2 directory; teardown kills what this test put in it and removes it */
function testCgroup(t: { teardown(fn: () => void): void }): string {
  const dir = join(v2own, `koci-bpftest-${process.pid}-${n++}`);
  mkdirSync(dir);
  t.teardown(() => removeCgroup(dir));
  return dir;
}

function removeCgroup(dir: string): void {
  if (!existsSync(dir)) return;
  for (let i = 0; i < 200; i++) {
    // only this test's children ever join these cgroups
    for (const pid of readFileSync(join(dir, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean)) {
      try {
        process.kill(Number(pid), 'SIGKILL');
      } catch {
        /* gone */
      }
    }
    try {
      rmdirSync(dir);
      return;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EBUSY') throw e;
      sleepSync(5);
    }
  }
}

/**
 * A child joins `cg` and tries each access: 'r /dev/null', 'w /dev/zero',
 * 'rw /dev/full', or 'mknod c 1 3'. Returns access -> 'ok' | 'EPERM' | the error.
 */
function probe(t: { teardown(fn: () => void): void }, cg: string, checks: string[]): Record<string, string> {
  const tmp = mkdtempSync(join(tmpdir(), 'koci-bpfprobe-'));
  t.teardown(() => rmSync(tmp, { recursive: true, force: true }));
  const cmd = (c: string, i: number) => {
    const [op, ...rest] = c.split(' ');
    if (op === 'mknod') return `mknod ${tmp}/node${i} ${rest.join(' ')}`;
    return `exec 3${{ r: '<', w: '>', rw: '<>' }[op]}${rest[0]}`;
  };
  const script = [
    `echo $$ > ${cg}/cgroup.procs || exit 9`,
    `p() { if (eval "$2") 2>${tmp}/err; then echo "$1=ok"; else echo "$1=$(cat ${tmp}/err)"; fi; }`,
    ...checks.map((c, i) => `p '${c}' '${cmd(c, i)}'`),
  ].join('\n');
  const r = spawnSync('/bin/sh', ['-c', script], { encoding: 'utf8', timeout: 20_000 });
  if (r.status !== 0) throw new Error(`probe failed (${r.status}): ${r.stderr}`);
  const out: Record<string, string> = {};
  for (const line of r.stdout.trim().split('\n')) {
    const at = line.indexOf('=');
    const v = line.slice(at + 1);
    out[line.slice(0, at)] = v === 'ok' ? 'ok' : /Operation not permitted/.test(v) ? 'EPERM' : v;
  }
  return out;
}

const openFds = () => readdirSync('/proc/self/fd').length;
const DENY_ALL: LinuxDeviceCgroup = { allow: false, access: 'rwm' };

t.test('default deny: only the allowed device opens; replacing the program flips it', { skip }, async (t) => {
  const cg = testCgroup(t);
  const fds = openFds();
  attachDeviceProgram(cg, compileDeviceProgram([DENY_ALL, { allow: true, type: 'c', major: 1, minor: 3, access: 'rwm' }]));
  t.same(probe(t, cg, ['r /dev/null', 'rw /dev/null', 'r /dev/zero', 'mknod c 1 5']), { 'r /dev/null': 'ok', 'rw /dev/null': 'ok', 'r /dev/zero': 'EPERM', 'mknod c 1 5': 'EPERM' });
  const [first] = attachedDevicePrograms(cg);

  attachDeviceProgram(cg, compileDeviceProgram([DENY_ALL, { allow: true, type: 'c', major: 1, minor: 5, access: 'rwm' }]));
  t.same(probe(t, cg, ['r /dev/null', 'r /dev/zero', 'w /dev/zero']), { 'r /dev/null': 'EPERM', 'r /dev/zero': 'ok', 'w /dev/zero': 'ok' }, 'after the update');
  const now = attachedDevicePrograms(cg);
  t.equal(now.length, 1, 'the old program is detached');
  t.not(now[0].id, first.id, 'by the new one');
  t.equal(now[0].name, PROGRAM_NAME);
  t.equal(openFds(), fds, 'no fd left open');
});

t.test('wildcards and the last rule winning, per access', { skip }, async (t) => {
  const cg = testCgroup(t);
  // c 1:* allowed, then 1:5 (zero) denied again, then reading 1:7 (full) only
  attachDeviceProgram(cg, compileDeviceProgram([
    DENY_ALL,
    { allow: true, type: 'c', major: 1, access: 'rwm' },
    { allow: false, type: 'c', major: 1, minor: 5, access: 'rwm' },
    { allow: false, type: 'c', major: 1, minor: 7, access: 'w' },
  ]));
  t.same(probe(t, cg, ['rw /dev/null', 'r /dev/zero', 'r /dev/full', 'w /dev/full', 'rw /dev/full', 'r /dev/urandom', 'mknod c 1 3', 'r /dev/tty']), {
    'rw /dev/null': 'ok',
    'r /dev/zero': 'EPERM',
    'r /dev/full': 'ok',
    'w /dev/full': 'EPERM',
    'rw /dev/full': 'EPERM',
    'r /dev/urandom': 'ok',
    'mknod c 1 3': 'ok',
    'r /dev/tty': 'EPERM',
  });
  // type "a": an allow-all last overrides the denies before it
  attachDeviceProgram(cg, compileDeviceProgram([DENY_ALL, { allow: false, type: 'c', major: 1, minor: 5 }, { allow: true, type: 'a' }]));
  t.same(probe(t, cg, ['r /dev/zero', 'mknod b 7 0']), { 'r /dev/zero': 'ok', 'mknod b 7 0': 'ok' });
});

t.test("replacing leaves other programs alone; koci's own is replaced", { skip }, async (t) => {
  const cg = testCgroup(t);
  const dirFd = libc.open(cg, C.O_RDONLY | C.arch.O_DIRECTORY | C.O_CLOEXEC);
  t.teardown(() => libc.close(dirFd));
  // someone else's program (allows everything but /dev/full)
  const foreign = B.progLoadCgroupDevice(compileDeviceProgram([{ allow: true }, { allow: false, type: 'c', major: 1, minor: 7 }]), 'other_devices');
  t.teardown(() => libc.close(foreign));
  B.progAttach(dirFd, foreign, B.BPF_CGROUP_DEVICE, B.BPF_F_ALLOW_MULTI, cg);
  attachDeviceProgram(cg, compileDeviceProgram([{ allow: true }]));
  attachDeviceProgram(cg, compileDeviceProgram([{ allow: true }]));
  t.same(attachedDevicePrograms(cg).map((p) => p.name).sort(), [PROGRAM_NAME, 'other_devices'], 'one koci program beside the foreign one');
  t.same(probe(t, cg, ['r /dev/null', 'r /dev/full']), { 'r /dev/null': 'ok', 'r /dev/full': 'EPERM' }, 'every attached program must allow');
});

t.test('bpf errors are SyscallErrors naming the command and the cgroup', { skip }, async (t) => {
  const cg = testCgroup(t);
  const dirFd = libc.open(cg, C.O_RDONLY | C.arch.O_DIRECTORY | C.O_CLOEXEC);
  t.teardown(() => libc.close(dirFd));
  const err = (() => {
    try {
      B.progAttach(dirFd, dirFd, B.BPF_CGROUP_DEVICE, B.BPF_F_ALLOW_MULTI, cg); // not a program fd
    } catch (e) {
      return e as B.BpfError;
    }
  })();
  t.equal(err?.name, 'SyscallError');
  t.equal(err?.syscall, 'bpf');
  t.equal(err?.path, cg);
  t.equal(err?.code, 'EINVAL');
  t.match(err?.message, `BPF_PROG_ATTACH: bpf ${cg}: EINVAL`);
});

// ---- koci itself on a pure cgroup v2 view ---------------------------------

const pureV2 = hierarchies().every((h) => h.key === '') && hierarchies().some((h) => h.mountpoint === '/sys/fs/cgroup');
const e2eSkip = skip || rootSkipReason() || (!pureV2 && spawnSync('unshare', ['--version']).status !== 0 ? 'no unshare(1) to give koci a cgroup2-only /sys/fs/cgroup' : false);

/** koci as on a pure v2 host: here, in a private mount namespace whose /sys/fs/cgroup is only the cgroup2 mount */
function v2Koci(t: { teardown(fn: () => void): void }) {
  const root = mkdtempSync(join(tmpdir(), 'koci-root-'));
  const io = mkdtempSync(join(tmpdir(), 'koci-io-'));
  let k = 0;
  const run = (args: string[]) => {
    const files = [join(io, `${k}.out`), join(io, `${k++}.err`)];
    const fds = files.map((f) => openSync(f, 'w'));
    const argv = pureV2 ? [KOCI, '--root', root, ...args] : ['unshare', '--mount', '--propagation', 'private', 'sh', '-c', 'umount -R /sys/fs/cgroup && mount -t cgroup2 cgroup2 /sys/fs/cgroup && exec "$@"', 'v2', KOCI, '--root', root, ...args];
    try {
      const r = spawnSync(argv[0], argv.slice(1), { timeout: 60_000, stdio: ['ignore', fds[0], fds[1]] });
      return { status: r.status, stdout: readFileSync(files[0], 'utf8'), stderr: readFileSync(files[1], 'utf8') };
    } finally {
      fds.forEach((fd) => closeSync(fd));
    }
  };
  t.teardown(() => {
    // delete in the same view, so koci finds the cgroup it recorded
    for (const id of existsSync(root) ? readdirSync(root) : []) run(['delete', '--force', id]);
    rmSync(root, { recursive: true, force: true });
    rmSync(io, { recursive: true, force: true });
  });
  return run;
}

const withMknod = (s: import('../lib/spec/types').Spec) => {
  s.root!.readonly = false;
  for (const k of ['bounding', 'effective', 'permitted'] as const) s.process!.capabilities![k]!.push('CAP_MKNOD');
};

t.test('koci create attaches the program, update replaces it (cgroup v2 view)', { skip: e2eSkip }, async (t) => {
  const koci = v2Koci(t);
  const out = mkdtempSync(join(tmpdir(), 'koci-bpfout-'));
  t.teardown(() => rmSync(out, { recursive: true, force: true }));
  // /dev/fuse (10:229): not among the default devices; opening it for reading is harmless
  const probeFuse = (file: string) => `if (exec 3</tmp/fuse) 2>/out/err; then echo ok > /out/${file}; else cat /out/err > /out/${file}; fi`;
  const b = makeBundle(t, ['sh', '-c', `mknod /tmp/fuse c 10 229; ${probeFuse('before')}; while [ ! -e /out/go ]; do sleep 0.05; done; ${probeFuse('after')}; echo x > /dev/null && echo ok > /out/null`], (s) => {
    withMknod(s);
    s.mounts!.push({ destination: '/out', type: 'bind', source: out, options: ['rbind', 'rw'] });
  });
  const id = uniqueId('bpf');
  const leaf = join(v2mount, /^0::(.*)$/m.exec(readFileSync('/proc/self/cgroup', 'utf8'))![1], `koci-${id}`);
  const c = koci(['create', '--bundle', b.dir, id]);
  t.equal(c.status, 0, c.stderr);
  const before = attachedDevicePrograms(leaf);
  t.same(before.map((p) => p.name), [PROGRAM_NAME], 'create attached one device program to the container cgroup');
  const pid = Number(JSON.parse(koci(['state', id]).stdout).pid);
  const v1devices = (f: string) => /^\d+:devices:(.*)$/m.exec(readFileSync(f, 'utf8'))?.[1];
  if (!pureV2) t.equal(v1devices(`/proc/${pid}/cgroup`), v1devices('/proc/self/cgroup'), "the init stays in the caller's v1 device cgroup: the program is what guards it");

  t.equal(koci(['start', id]).status, 0);
  const waitFor = (f: string) => {
    for (let i = 0; i < 400 && !existsSync(join(out, f)); i++) sleepSync(25);
    return existsSync(join(out, f)) ? readFileSync(join(out, f), 'utf8').trim() : '(never written)';
  };
  t.match(waitFor('before'), /Operation not permitted/, 'a device outside the rules is refused');

  const res = join(out, 'resources.json');
  writeFileSync(res, JSON.stringify({ devices: [DENY_ALL, { allow: true, type: 'c', major: 10, minor: 229, access: 'r' }] }));
  const u = koci(['update', '-r', res, id]);
  t.equal(u.status, 0, u.stderr);
  const after = attachedDevicePrograms(leaf);
  t.equal(after.length, 1, 'still one program');
  t.not(after[0].id, before[0].id, 'a new one');
  writeFileSync(join(out, 'go'), '');
  t.equal(waitFor('after'), 'ok', 'the updated rules allow it');
  t.equal(waitFor('null'), 'ok', 'the default devices stay allowed');

  t.equal(koci(['delete', '--force', id]).status, 0);
  t.notOk(existsSync(leaf), 'delete removed the cgroup (and the program with it)');
});

t.test('koci run refuses a device outside the rules (cgroup v2 view)', { skip: e2eSkip }, async (t) => {
  const koci = v2Koci(t);
  const b = makeBundle(t, ['sh', '-c', 'mknod /tmp/fuse c 10 229; (exec 3</tmp/fuse) 2>&1; head -c 3 /dev/zero | wc -c; echo done'], withMknod);
  const r = koci(['run', '--bundle', b.dir, uniqueId('bpf')]);
  t.equal(r.status, 0, r.stderr);
  t.match(r.stdout, /Operation not permitted\n3\ndone/, '/dev/fuse refused, /dev/zero readable');
});

t.test('nothing is left in the cgroup2 tree', { skip }, async (t) => {
  const mine = readdirSync(v2own).filter((d) => d.includes(`-${process.pid}-`));
  t.same(mine, [], `no koci-*-${process.pid}-* directory under ${v2own}`);
});
