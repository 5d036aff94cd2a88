/**
 * Mounts of real containers, checked from inside (the container's
 * /proc/self/mountinfo and busybox behaviour) and from the host (bind-mounted
 * files, and that nothing of a container's rootfs stays mounted on the host).
 */
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import type { Mount, Spec } from '../lib/spec/types';
import { type Bundle, type Koci, kociCli, makeBundle, rootSkipReason, stateOf, uniqueId } from './helpers/fixtures';
import { leftovers } from './helpers/leftovers';

const skip = rootSkipReason();
if (skip) t.comment(`skipping mount tests: ${skip}`);

interface MountInfo {
  root: string;
  mountpoint: string;
  /** per-mount options (ro, nosuid, ...) */
  options: string[];
  /** optional fields: shared:N, master:N, unbindable, ... */
  tags: string[];
  fstype: string;
  source: string;
  /** per-superblock options (size=, mode=, ...) */
  superOptions: string[];
}

/** parse mountinfo text (proc(5)); octal escapes in paths decoded */
function parseMountinfo(text: string): MountInfo[] {
  const unescape = (s: string) => s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
  const out: MountInfo[] = [];
  for (const line of text.split('\n')) {
    const [pre, post] = line.split(' - ');
    if (!post) continue;
    const f = pre.split(' ');
    const [fstype, source, superOpts] = post.split(' ');
    out.push({
      root: unescape(f[3]),
      mountpoint: unescape(f[4]),
      options: f[5].split(','),
      tags: f.slice(6),
      fstype,
      source: unescape(source),
      superOptions: (superOpts ?? '').split(','),
    });
  }
  return out;
}

/** the top-most mount at a mount point (the last one listed) */
function at(mounts: MountInfo[], mountpoint: string): MountInfo | undefined {
  return mounts.filter((m) => m.mountpoint === mountpoint).pop();
}

function tempDir(t: Test, prefix: string): string {
  const d = mkdtempSync(join(tmpdir(), prefix));
  t.teardown(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

/** no mount of the bundle (its rootfs or anything under it) in the host's mount table */
function assertNoHostMounts(t: Test, b: Bundle, what: string): void {
  const leaked = parseMountinfo(readFileSync('/proc/self/mountinfo', 'utf8')).filter((m) => m.mountpoint === b.dir || m.mountpoint.startsWith(b.dir + '/'));
  t.same(leaked.map((m) => m.mountpoint), [], `no mount of the rootfs left on the host ${what}`);
}

/**
 * run `script` in a container; its output is sections separated by lines
 * "==name": returns name -> text. The mountinfo section is always there.
 */
function runSections(t: Test, koci: Koci, b: Bundle, script: string, runOptions: string[] = []): { status: number | null; sections: Record<string, string>; mounts: MountInfo[]; stderr: string } {
  b.spec.process!.args = ['sh', '-c', `echo ==mountinfo; cat /proc/self/mountinfo; ${script}`];
  b.save();
  const r = koci(['run', ...runOptions, '--bundle', b.dir, uniqueId('mnt')]);
  const sections: Record<string, string> = {};
  let cur = '';
  for (const line of r.stdout.replace(/\n$/, '').split('\n')) {
    if (line.startsWith('==')) sections[(cur = line.slice(2))] = '';
    else if (cur) sections[cur] += line + '\n';
  }
  assertNoHostMounts(t, b, 'after run');
  return { status: r.status, sections, mounts: parseMountinfo(sections.mountinfo ?? ''), stderr: r.stderr };
}

const addMounts = (...ms: Mount[]) => (s: Spec) => s.mounts!.push(...ms);

t.test('bind and rbind from host directories', { skip }, async (t) => {
  const koci = kociCli(t);
  const host = tempDir(t, 'koci-bind-');
  writeFileSync(join(host, 'hello.txt'), 'from the host\n');
  const b = makeBundle(t, undefined, addMounts(
    { destination: '/mnt/bind', type: 'bind', source: host, options: ['bind'] },
    { destination: '/mnt/none', type: 'none', source: host, options: ['rbind', 'rw'] },
    // the host's /dev has submounts (pts, shm): rbind brings them, bind does not
    { destination: '/mnt/rdev', type: 'none', source: '/dev', options: ['rbind', 'ro'] },
    { destination: '/mnt/dev', type: 'none', source: '/dev', options: ['bind', 'ro'] },
  ));
  const hostDevSubs = parseMountinfo(readFileSync('/proc/self/mountinfo', 'utf8'))
    .filter((m) => m.mountpoint.startsWith('/dev/'))
    .map((m) => m.mountpoint.slice('/dev/'.length));
  const r = runSections(t, koci, b, 'echo ==read; cat /mnt/bind/hello.txt; echo inside > /mnt/bind/from-inside; echo again > /mnt/none/second; echo ==status; echo $?');
  t.equal(r.status, 0, r.stderr);
  t.equal(r.sections.read, 'from the host\n', 'host file visible inside');
  t.equal(readFileSync(join(host, 'from-inside'), 'utf8'), 'inside\n', 'a write inside reaches the host directory');
  t.equal(readFileSync(join(host, 'second'), 'utf8'), 'again\n', 'through the rbind too');
  const bind = at(r.mounts, '/mnt/bind');
  t.ok(bind, '/mnt/bind is a mount point');
  t.equal(bind?.options[0], 'rw');
  t.ok(at(r.mounts, '/mnt/none'), 'type "none" with rbind is a bind mount');
  t.equal(at(r.mounts, '/mnt/rdev')?.options[0], 'ro', 'ro applied to the rbind');
  t.equal(at(r.mounts, '/mnt/dev')?.options[0], 'ro', 'ro applied to the bind');
  if (hostDevSubs.length === 0) {
    t.comment('the host /dev has no submounts: bind vs rbind not distinguishable here');
  } else {
    for (const sub of hostDevSubs) t.ok(at(r.mounts, `/mnt/rdev/${sub}`), `rbind brought the submount /dev/${sub}`);
    t.same(r.mounts.filter((m) => m.mountpoint.startsWith('/mnt/dev/')).map((m) => m.mountpoint), [], 'bind brought no submount');
  }
});

t.test('filesystem types: proc, sysfs, tmpfs, devpts, mqueue, cgroup', { skip }, async (t) => {
  const koci = kociCli(t);
  const b = makeBundle(t, undefined, addMounts({ destination: '/mnt/tmpfs', type: 'tmpfs', source: 'tmpfs', options: ['size=1m', 'mode=1770', 'nosuid'] }));
  const r = runSections(
    t,
    koci,
    b,
    [
      'echo ==mode; stat -c %a /mnt/tmpfs',
      'echo ==fill; dd if=/dev/zero of=/mnt/tmpfs/big bs=1024 count=2048 2>&1; echo rc=$?',
      'echo ==small; rm /mnt/tmpfs/big; echo ok > /mnt/tmpfs/small && cat /mnt/tmpfs/small',
      'echo ==proc; cat /proc/self/stat | cut -d" " -f1',
      'echo ==sys; ls /sys/kernel >/dev/null && echo listed',
      'echo ==cgroup; cat /proc/self/cgroup',
    ].join('; '),
  );
  t.equal(r.status, 0, r.stderr);
  const fs = (p: string) => at(r.mounts, p)?.fstype;
  t.equal(fs('/proc'), 'proc');
  t.equal(r.sections.proc.trim(), String(Number(r.sections.proc)), 'proc works (a pid from /proc/self/stat)');
  t.equal(fs('/sys'), 'sysfs');
  t.equal(at(r.mounts, '/sys')?.options[0], 'ro', 'sysfs ro as configured');
  t.equal(r.sections.sys, 'listed\n', 'sysfs is readable');
  const tm = at(r.mounts, '/mnt/tmpfs');
  t.equal(tm?.fstype, 'tmpfs');
  t.ok(tm?.superOptions.includes('size=1024k'), `tmpfs size=1m (${tm?.superOptions})`);
  t.ok(tm?.superOptions.includes('mode=1770'), 'tmpfs mode=1770');
  t.ok(tm?.options.includes('nosuid'), 'tmpfs nosuid');
  t.equal(r.sections.mode.trim(), '1770', 'the tmpfs root has mode 1770');
  t.match(r.sections.fill, /No space left on device/, 'the tmpfs is limited to its size');
  t.equal(r.sections.small, 'ok\n', 'and writable below it');
  const pts = at(r.mounts, '/dev/pts');
  t.equal(pts?.fstype, 'devpts');
  for (const o of ['ptmxmode=666', 'mode=620', 'gid=5']) t.ok(pts?.superOptions.includes(o), `devpts ${o}`);
  t.equal(fs('/dev/mqueue'), 'mqueue');
  t.equal(fs('/dev/shm'), 'tmpfs');

  // cgroup: the host's layout, from the container's own cgroup
  const hostCg = at(parseMountinfo(readFileSync('/proc/self/mountinfo', 'utf8')), '/sys/fs/cgroup');
  const cg = at(r.mounts, '/sys/fs/cgroup');
  t.ok(cg, '/sys/fs/cgroup is mounted');
  t.equal(cg?.options[0], 'ro', 'cgroup mount is ro as configured');
  if (hostCg?.fstype === 'cgroup2') {
    t.equal(cg?.fstype, 'cgroup2', 'pure cgroup v2 host: cgroup2 inside');
    t.equal(cg?.root, '/', 'with a cgroup namespace the mount shows the container cgroup as root');
  } else {
    t.equal(cg?.fstype, 'tmpfs', 'v1/hybrid host: a tmpfs holding one mount per hierarchy');
    const subs = r.mounts.filter((m) => m.mountpoint.startsWith('/sys/fs/cgroup/'));
    t.ok(subs.length > 0, `hierarchies mounted (${subs.map((m) => m.mountpoint).join(' ')})`);
    for (const s of subs) {
      t.match(s.fstype, /^cgroup2?$/, `${s.mountpoint} is a cgroup fs`);
      t.equal(s.root, '/', `${s.mountpoint} shows the container's cgroup as its root (cgroup namespace)`);
    }
  }
  t.match(r.sections.cgroup, /^0::\/$/m, 'inside, its own cgroup is / (cgroup namespace)');
});

t.test('mount options and behaviour: ro, nosuid, nodev, noexec, atime', { skip }, async (t) => {
  const koci = kociCli(t);
  const tmpfs = (dest: string, ...options: string[]): Mount => ({ destination: dest, type: 'tmpfs', source: 'tmpfs', options });
  const b = makeBundle(t, undefined, addMounts(
    tmpfs('/o/ro', 'ro'),
    tmpfs('/o/rw', 'rw', 'exec', 'dev', 'suid'),
    tmpfs('/o/flags', 'nosuid', 'nodev', 'noexec', 'noatime'),
    tmpfs('/o/relatime', 'relatime'),
    tmpfs('/o/strict', 'strictatime'),
    // opening a device node on a nodev mount is refused; elsewhere it works
    { destination: '/o/null-nodev', type: 'bind', source: '/dev/null', options: ['bind', 'nodev'] },
    { destination: '/o/null-dev', type: 'bind', source: '/dev/null', options: ['bind'] },
  ));
  const r = runSections(
    t,
    koci,
    b,
    [
      'echo ==ro; touch /o/ro/x 2>&1; echo rc=$?',
      'echo ==rw; touch /o/rw/x && echo made',
      'echo ==noexec; cp /bin/busybox /o/flags/true && /o/flags/true 2>&1; echo rc=$?',
      'echo ==exec; cp /bin/busybox /o/rw/true && /o/rw/true; echo rc=$?',
      'echo ==nodev; { echo x > /o/null-nodev; } 2>&1; echo rc=$?',
      'echo ==dev; { echo x > /o/null-dev; } 2>&1; echo rc=$?',
    ].join('; '),
  );
  t.equal(r.status, 0, r.stderr);
  const opts = (p: string) => at(r.mounts, p)?.options ?? [];
  t.equal(opts('/o/ro')[0], 'ro');
  t.match(r.sections.ro, /Read-only file system[\s\S]*rc=1/, 'writing to a ro mount fails');
  t.equal(opts('/o/rw')[0], 'rw');
  t.same(opts('/o/rw').filter((o) => ['nosuid', 'nodev', 'noexec'].includes(o)), [], 'rw/exec/dev/suid clear the flags');
  t.equal(r.sections.rw, 'made\n');
  for (const o of ['nosuid', 'nodev', 'noexec', 'noatime']) t.ok(opts('/o/flags').includes(o), `${o} in mountinfo`);
  t.notOk(opts('/o/flags').includes('relatime'), 'noatime replaces relatime');
  t.ok(opts('/o/relatime').includes('relatime'), 'relatime in mountinfo');
  t.notOk(opts('/o/strict').some((o) => o === 'relatime' || o === 'noatime'), `strictatime: neither relatime nor noatime (${opts('/o/strict')})`);
  t.match(r.sections.noexec, /Permission denied[\s\S]*rc=126/, 'exec from a noexec mount fails');
  t.equal(r.sections.exec, 'rc=0\n', 'exec from a mount without noexec works');
  t.ok(opts('/o/null-nodev').includes('nodev'), 'nodev on the file bind');
  t.match(r.sections.nodev, /Permission denied[\s\S]*rc=[12]/, 'a device on a nodev mount cannot be opened');
  t.equal(r.sections.dev, 'rc=0\n', 'the same device without nodev can');
  // file binds onto paths that did not exist created regular files in the rootfs
  for (const f of ['null-nodev', 'null-dev']) t.ok(lstatSync(join(b.rootfs, 'o', f)).isFile(), `rootfs/o/${f} was created as a file`);
});

t.test('propagation flags: shared, slave, private, unbindable', { skip }, async (t) => {
  const koci = kociCli(t);
  const host = tempDir(t, 'koci-prop-');
  const b = makeBundle(t);
  // the slave's source is the shared mount itself, as the container's mount namespace sees it before pivot_root
  b.spec.mounts!.push(
    { destination: '/prop/shared', type: 'bind', source: host, options: ['rbind', 'rshared'] },
    { destination: '/prop/slave', type: 'bind', source: join(b.rootfs, 'prop', 'shared'), options: ['rbind', 'rslave'] },
    { destination: '/prop/private', type: 'bind', source: host, options: ['bind', 'private'] },
    { destination: '/prop/rprivate', type: 'bind', source: host, options: ['rbind', 'rprivate'] },
    { destination: '/prop/unbindable', type: 'bind', source: host, options: ['bind', 'unbindable'] },
    { destination: '/prop/tmp-shared', type: 'tmpfs', source: 'tmpfs', options: ['shared'] },
  );
  const r = runSections(t, koci, b, 'true');
  t.equal(r.status, 0, r.stderr);
  const tags = (p: string) => at(r.mounts, p)?.tags ?? [];
  const shared = tags('/prop/shared').find((x) => x.startsWith('shared:'));
  t.ok(shared, `rshared bind is shared (${tags('/prop/shared')})`);
  const master = tags('/prop/slave').find((x) => x.startsWith('master:'));
  t.ok(master, `rslave bind of a shared mount is a slave (${tags('/prop/slave')})`);
  t.equal(master?.slice('master:'.length), shared?.slice('shared:'.length), 'slave of the shared mount’s peer group');
  t.notOk(tags('/prop/slave').some((x) => x.startsWith('shared:')), 'the slave is not shared itself');
  t.same(tags('/prop/private'), [], 'private: no propagation tags');
  t.same(tags('/prop/rprivate'), [], 'rprivate: no propagation tags');
  t.same(tags('/prop/unbindable'), ['unbindable'], 'unbindable');
  t.ok(tags('/prop/tmp-shared').some((x) => x.startsWith('shared:')), 'shared on a tmpfs');
});

t.test('destinations are created as needed; relative destinations are under /', { skip }, async (t) => {
  const koci = kociCli(t);
  const host = tempDir(t, 'koci-dest-');
  writeFileSync(join(host, 'f'), 'file content\n');
  const b = makeBundle(t, undefined, addMounts(
    { destination: '/deep/er/and/deeper', type: 'tmpfs', source: 'tmpfs' },
    { destination: '/etc/new/dir/file.conf', type: 'bind', source: join(host, 'f'), options: ['bind', 'ro'] },
    { destination: 'data', type: 'tmpfs', source: 'tmpfs', options: ['size=2m'] },
    { destination: 'rel/nested/', type: 'bind', source: host, options: ['bind'] },
  ));
  t.notOk(existsSync(join(b.rootfs, 'deep')), 'the nested destination does not exist before');
  const r = runSections(t, koci, b, 'echo ==file; cat /etc/new/dir/file.conf; echo ==rel; cat /rel/nested/f; echo x > /data/x && echo ok');
  t.equal(r.status, 0, r.stderr);
  t.equal(at(r.mounts, '/deep/er/and/deeper')?.fstype, 'tmpfs', 'nested destination mounted');
  t.ok(lstatSync(join(b.rootfs, 'deep/er/and/deeper')).isDirectory(), 'its directories were created in the rootfs');
  t.ok(lstatSync(join(b.rootfs, 'etc/new/dir/file.conf')).isFile(), 'a file bind destination was created as a file');
  t.equal(r.sections.file, 'file content\n', 'the bound file is visible');
  const data = at(r.mounts, '/data');
  t.equal(data?.fstype, 'tmpfs', 'relative "data" mounted at /data');
  t.ok(data?.superOptions.includes('size=2048k'), 'with its options');
  t.equal(r.sections.rel, 'file content\nok\n', 'relative "rel/nested/" bind mounted at /rel/nested');
  t.ok(at(r.mounts, '/rel/nested'), '/rel/nested is a mount point');
});

t.test('a destination through a symlink pointing outside the rootfs stays inside it', { skip }, async (t) => {
  const koci = kociCli(t);
  const victim = tempDir(t, 'koci-victim-'); // a host directory the image tries to reach
  const victim2 = tempDir(t, 'koci-victim-');
  const source = tempDir(t, 'koci-src-');
  writeFileSync(join(source, 'payload'), 'payload\n');
  const b = makeBundle(t, undefined, addMounts(
    { destination: '/escape', type: 'tmpfs', source: 'tmpfs' },
    { destination: '/escape-rel/sub', type: 'bind', source, options: ['bind'] },
    { destination: '/../../../..' + victim2 + '/dotdot', type: 'tmpfs', source: 'tmpfs' },
  ));
  symlinkSync(victim, join(b.rootfs, 'escape')); // absolute
  symlinkSync('../../../../../../../..' + victim2, join(b.rootfs, 'escape-rel')); // relative, climbing out
  const r = runSections(t, koci, b, 'echo ==w; echo inside > /escape/written && echo ok; ls /escape-rel/sub');
  const create = r.status;
  if (create !== 0) {
    // refusing is safe too, as long as nothing was touched
    t.comment(`koci refused the escaping destination: ${r.stderr.trim()}`);
  } else {
    t.equal(r.sections.w, 'ok\npayload\n', 'mounts usable inside');
    t.equal(at(r.mounts, victim)?.fstype, 'tmpfs', `the tmpfs landed at ${victim} inside the container (symlink resolved in the rootfs)`);
    t.ok(at(r.mounts, victim2 + '/sub'), 'the relative symlink resolved inside the rootfs too');
    t.ok(at(r.mounts, victim2 + '/dotdot'), '".." does not climb above the rootfs');
    t.ok(lstatSync(join(b.rootfs, victim)).isDirectory(), 'the mount point was created in the rootfs');
  }
  t.same(readdirSync(victim), [], 'the host directory behind the absolute symlink is untouched');
  t.same(readdirSync(victim2), [], 'the host directory behind the relative symlink is untouched');
  t.same(readdirSync(source).sort(), ['payload'], 'the bind source is unchanged');
  const hostMounts = parseMountinfo(readFileSync('/proc/self/mountinfo', 'utf8'));
  t.notOk(hostMounts.some((m) => m.mountpoint.startsWith(victim) || m.mountpoint.startsWith(victim2)), 'nothing mounted on the host directories');
});

t.test('proc and sysfs are refused on a symlinked destination: one line, nothing left behind', { skip }, async (t) => {
  const koci = kociCli(t);
  const victim = tempDir(t, 'koci-victim-'); // a host directory the image points its symlinks at
  const procLink = (b: Bundle) => {
    rmSync(join(b.rootfs, 'proc'), { recursive: true, force: true });
    symlinkSync(victim, join(b.rootfs, 'proc'));
  };
  // the 4th element: the environment koci runs in
  const cases: Array<[string, (b: Bundle) => void, string, NodeJS.ProcessEnv?]> = [
    ['/proc is a symlink', procLink, '/proc'],
    // the runtime placing the init in cgroup2 while it mounts (no clone3): the init fails, and is gone, before the runtime's next word
    ['/proc is a symlink, the init placed by the runtime', procLink, '/proc', { KOCI_TEST_NO_CLONE3: '1' }],
    ['/sys is a symlink', (b) => {
      rmSync(join(b.rootfs, 'sys'), { recursive: true, force: true });
      symlinkSync('tmp', join(b.rootfs, 'sys')); // relative, inside the rootfs: still refused
    }, '/sys'],
    ['a proc mount at /a/proc where /a is a symlink', (b) => {
      b.spec.mounts!.push({ destination: '/a/proc', type: 'proc', source: 'proc' });
      b.save();
      symlinkSync(victim, join(b.rootfs, 'a'));
    }, '/a/proc'],
    ['a sysfs mount at /a/sys where /a is a symlink', (b) => {
      b.spec.mounts!.push({ destination: '/a/sys', type: 'sysfs', source: 'sysfs', options: ['nosuid', 'noexec', 'nodev', 'ro'] });
      b.save();
      symlinkSync('/tmp', join(b.rootfs, 'a'));
    }, '/a/sys'],
  ];
  for (const [what, plant, dest, env] of cases) {
    const b = makeBundle(t, ['true']);
    plant(b);
    const before = leftovers(koci.root, [b.dir, victim]);
    const id = uniqueId('mntsym');
    const r = koci(['create', '--bundle', b.dir, id], { env: { ...process.env, ...env } });
    t.not(r.status, 0, `${what}: refused`);
    t.match(r.stderr, new RegExp(`destination ${dest.replace(/\//g, '\\/')} is a symlink or goes through one`), `${what}: says why (${r.stderr.trim()})`);
    t.equal(r.stderr.trim().split('\n').length, 1, `${what}: one line`);
    t.same(leftovers(koci.root, [b.dir, victim]), before, `${what}: nothing left behind`);
    t.not(koci(['state', id]).status, 0, `${what}: no such container`);
    t.same(readdirSync(victim), [], `${what}: the host directory behind the symlink is untouched`);
    t.same(readdirSync(join(b.rootfs, 'tmp')), [], `${what}: nothing was mounted or made through the symlink in the rootfs`);
    assertNoHostMounts(t, b, what);
  }
});

t.test('root.readonly: / is read-only, a tmpfs on /tmp stays writable', { skip }, async (t) => {
  const koci = kociCli(t);
  const b = makeBundle(t, undefined, (s) => {
    s.root!.readonly = true;
    s.mounts!.push({ destination: '/tmp', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'nodev'] });
  });
  const r = runSections(t, koci, b, 'echo ==root; touch /x 2>&1; echo rc=$?; echo ==tmp; touch /tmp/x && echo ok');
  t.equal(r.status, 0, r.stderr);
  t.match(r.sections.root, /Read-only file system[\s\S]*rc=1/, 'touch /x fails');
  t.equal(r.sections.tmp, 'ok\n', 'touch /tmp/x works');
  t.equal(at(r.mounts, '/')?.options[0], 'ro', '/ is ro in mountinfo');
  t.equal(at(r.mounts, '/tmp')?.options[0], 'rw');
  t.notOk(existsSync(join(b.rootfs, 'x')), 'nothing written to the rootfs');

  // the same rootfs with readonly false is writable
  b.spec.root!.readonly = false;
  const r2 = runSections(t, koci, b, 'echo ==root; touch /x && echo ok');
  t.equal(r2.status, 0, r2.stderr);
  t.equal(r2.sections.root, 'ok\n', 'writable root when readonly is false');
  t.ok(existsSync(join(b.rootfs, 'x')), 'the write landed in the rootfs');
});

t.test('linux.rootfsPropagation: the container\'s / gets it, with pivot_root and with --no-pivot', { skip }, async (t) => {
  const koci = kociCli(t);
  for (const [prop, tag] of [['shared', /^shared:/], ['private', undefined], ['unbindable', /^unbindable$/]] as const) {
    for (const opts of [[], ['--no-pivot']]) {
      const b = makeBundle(t, undefined, (s) => (s.linux!.rootfsPropagation = prop));
      const r = runSections(t, koci, b, 'echo ==ok; echo ok', opts);
      const what = `${prop}${opts.length ? ' --no-pivot' : ''}`;
      // pivot_root and MS_MOVE refuse a shared mount: the rootfs's parent is made private first, as runc does
      t.equal(r.status, 0, `${what}: runs (${r.stderr.trim()})`);
      t.equal(r.sections.ok, 'ok\n', `${what}: the process ran`);
      const tags = at(r.mounts, '/')?.tags ?? [];
      if (tag) t.ok(tags.some((x) => tag.test(x)), `${what}: / is ${prop} (${tags.join(' ') || 'private'})`);
      else t.same(tags.filter((x) => /^(shared|master):/.test(x)), [], `${what}: / is private`);
    }
  }
});

t.test('--no-pivot (MS_MOVE + chroot): the rootfs is / and the host tree is out of sight', { skip }, async (t) => {
  const koci = kociCli(t);
  const b = makeBundle(t, undefined, (s) => (s.root!.readonly = true));
  const mark = `rootfs of ${b.dir}`;
  writeFileSync(join(b.rootfs, 'koci-rootfs-mark'), mark + '\n');
  // in the host tree, next to the rootfs: the container must not reach it by its host path
  const hostFile = join(b.dir, 'koci-host-mark');
  writeFileSync(hostFile, 'host\n');
  const r = runSections(
    t,
    koci,
    b,
    [
      'echo ==mark; cat /koci-rootfs-mark',
      'echo ==ino; stat -c %i /',
      'echo ==ls; ls -a /',
      `echo ==host; cat ${hostFile} 2>&1; ls ${b.dir} 2>&1; ls /proc/1/root/${b.dir} 2>&1; echo rc=$?`,
      'echo ==ro; touch /x 2>&1; echo rc=$?',
    ].join('; '),
    ['--no-pivot'],
  );
  t.equal(r.status, 0, `run --no-pivot: ${r.stderr}`);
  t.equal(r.sections.mark, mark + '\n', "/ is the bundle's rootfs: its marker file is at /koci-rootfs-mark");
  t.equal(r.sections.ino?.trim(), String(lstatSync(b.rootfs).ino), "/ inside has the rootfs directory's inode");
  const inside = (r.sections.ls ?? '').trim().split('\n').filter((n) => n !== '.' && n !== '..').sort();
  t.same(inside, readdirSync(b.rootfs).sort(), 'ls / lists exactly the rootfs');
  t.notMatch(r.sections.host ?? '', /^host$/m, 'the host file next to the rootfs cannot be read by its host path');
  t.match(r.sections.host ?? '', /No such file or directory[\s\S]*No such file or directory[\s\S]*rc=1/, 'the bundle directory does not exist inside');
  const root = at(r.mounts, '/');
  t.ok(root && root.root !== '/' && b.rootfs.endsWith(root.root), `the / mount is the rootfs bind mount (root ${root?.root})`);
  t.notOk(r.mounts.some((m) => m.mountpoint === b.dir || m.mountpoint.startsWith(b.rootfs)), 'no mount point inside names a host path');
  t.match(r.sections.ro ?? '', /Read-only file system[\s\S]*rc=1/, 'root.readonly still applies after the move');
  t.notOk(existsSync(join(b.rootfs, 'x')), 'nothing written to the rootfs');
});

t.test('default devices, /dev symlinks, /dev/pts and /dev/shm', { skip }, async (t) => {
  const koci = kociCli(t);
  const b = makeBundle(t);
  const devices: Record<string, [number, number]> = { null: [1, 3], zero: [1, 5], full: [1, 7], random: [1, 8], urandom: [1, 9], tty: [5, 0] };
  const r = runSections(
    t,
    koci,
    b,
    [
      `echo ==devs; for d in ${Object.keys(devices).join(' ')}; do stat -c '%n %F %t:%T %a' /dev/$d; done`,
      'echo ==links; for l in fd stdin stdout stderr ptmx; do echo "$l $(readlink /dev/$l)"; done',
      'echo ==zero; head -c 4 /dev/zero | od -An -tx1',
      'echo ==full; echo x 2>&1 > /dev/full; echo rc=$?',
    ].join('; '),
  );
  t.equal(r.status, 0, r.stderr);
  const lines = new Map(r.sections.devs.trim().split('\n').map((l) => [l.split(' ')[0], l] as const));
  for (const [name, [maj, min]] of Object.entries(devices)) {
    t.equal(lines.get(`/dev/${name}`), `/dev/${name} character special file ${maj.toString(16)}:${min.toString(16)} 666`, `/dev/${name} is char ${maj}:${min} mode 666`);
  }
  const links = Object.fromEntries(r.sections.links.trim().split('\n').map((l) => l.split(' ')));
  t.same(links, { fd: '/proc/self/fd', stdin: '/proc/self/fd/0', stdout: '/proc/self/fd/1', stderr: '/proc/self/fd/2', ptmx: 'pts/ptmx' }, '/dev symlinks');
  t.equal(r.sections.zero.trim(), '00 00 00 00', '/dev/zero reads zeros');
  t.match(r.sections.full, /No space left on device[\s\S]*rc=1/, '/dev/full is full');
  t.equal(at(r.mounts, '/dev/pts')?.fstype, 'devpts', '/dev/pts mounted');
  t.equal(at(r.mounts, '/dev/shm')?.fstype, 'tmpfs', '/dev/shm mounted');
  t.equal(at(r.mounts, '/dev')?.fstype, 'tmpfs', '/dev is a tmpfs (devices were made in it, not in the rootfs)');
  t.same(readdirSync(join(b.rootfs, 'dev')), [], 'the rootfs /dev is untouched');
});

t.test('no mount of a deleted container stays on the host', { skip }, async (t) => {
  const koci = kociCli(t);
  const host = tempDir(t, 'koci-leak-');
  const b = makeBundle(t, ['sleep', '1000'], addMounts(
    { destination: '/mnt/bind', type: 'bind', source: host, options: ['rbind', 'rshared'] },
    { destination: '/mnt/tmp', type: 'tmpfs', source: 'tmpfs' },
  ));
  const id = uniqueId('leak');
  const c = koci(['run', '--detach', '--bundle', b.dir, id]);
  t.equal(c.status, 0, c.stderr);
  if (c.status !== 0) return;
  const pid = stateOf(koci, id).pid as number;
  const inside = parseMountinfo(readFileSync(`/proc/${pid}/mountinfo`, 'utf8'));
  t.ok(at(inside, '/mnt/bind') && at(inside, '/mnt/tmp'), 'the running container has its mounts');
  assertNoHostMounts(t, b, 'while it runs (they live in its mount namespace)');
  t.equal(koci(['delete', '--force', id]).status, 0, 'delete --force');
  assertNoHostMounts(t, b, 'after delete');
  t.notOk(existsSync(`/proc/${pid}`) && readFileSync(`/proc/${pid}/cmdline`, 'utf8').startsWith('sleep'), 'the container process is gone');
});

t.test('maskedPaths and readonlyPaths', { skip }, async (t) => {
  const koci = kociCli(t);
  const b = makeBundle(t, undefined, (s) => {
    s.root!.readonly = false;
    s.linux!.maskedPaths = ['/proc/kcore', '/proc/acpi', '/secret-dir', '/secret-file', '/does/not/exist'];
    s.linux!.readonlyPaths = ['/proc/sys', '/ro-dir', '/nope'];
  });
  mkdirSync(join(b.rootfs, 'secret-dir'));
  writeFileSync(join(b.rootfs, 'secret-dir', 'inner'), 'hidden\n');
  writeFileSync(join(b.rootfs, 'secret-file'), 'hidden\n');
  mkdirSync(join(b.rootfs, 'ro-dir'));
  const r = runSections(
    t,
    koci,
    b,
    [
      'echo ==dir; ls -A /secret-dir; echo rc=$?',
      'echo ==file; cat /secret-file; echo rc=$?',
      'echo ==kcore; head -c 1 /proc/kcore | wc -c',
      'echo ==rodir; touch /ro-dir/x 2>&1; echo rc=$?',
      'echo ==rw; touch /other && echo ok',
    ].join('; '),
  );
  t.equal(r.status, 0, r.stderr);
  t.equal(r.sections.dir, 'rc=0\n', 'a masked directory looks empty');
  t.equal(r.sections.file, 'rc=0\n', 'a masked file reads empty');
  t.equal(r.sections.kcore.trim(), '0', '/proc/kcore reads nothing');
  t.equal(at(r.mounts, '/secret-dir')?.fstype, 'tmpfs', 'masked directory: tmpfs');
  t.equal(at(r.mounts, '/secret-dir')?.options[0], 'ro', 'read-only');
  t.ok(at(r.mounts, '/secret-file'), 'masked file: a bind mount');
  // /proc entries are masked where this kernel has them, skipped where it does not
  for (const p of ['/proc/kcore', '/proc/acpi']) {
    if (existsSync(p)) t.ok(at(r.mounts, p), `${p} masked`);
    else t.notOk(at(r.mounts, p), `${p} absent on this kernel: skipped, not mounted`);
  }
  t.notOk(r.mounts.some((m) => m.mountpoint.startsWith('/does') || m.mountpoint === '/nope'), 'missing paths skipped');
  t.notOk(existsSync(join(b.rootfs, 'does')) || existsSync(join(b.rootfs, 'nope')), 'and not created');
  t.equal(at(r.mounts, '/proc/sys')?.options[0], 'ro', '/proc/sys read-only');
  t.equal(at(r.mounts, '/ro-dir')?.options[0], 'ro', '/ro-dir read-only');
  t.match(r.sections.rodir, /Read-only file system[\s\S]*rc=1/, 'writing under a readonly path fails');
  t.equal(r.sections.rw, 'ok\n', 'the rest of the root stays writable');
  t.equal(readFileSync(join(b.rootfs, 'secret-file'), 'utf8'), 'hidden\n', 'masking changed nothing in the rootfs');
});

t.test("the mount guard: koci's mount code refuses to run in the runtime's own mount namespace, every time", { skip: rootSkipReason() }, async (t) => {
  // the compiled module (koffi-backed); this test process is the runtime here, in the host's mount namespace
  const { mount, recordHostMountNs } = require('../dist/lib/rootfs/mount') as typeof import('../lib/rootfs/mount');
  const dir = mkdtempSync(join(tmpdir(), 'koci-guard-'));
  const before = readFileSync('/proc/self/mountinfo', 'utf8');
  t.teardown(() => {
    // were the guard broken, what it let through would be undone here
    for (let i = 0; i < 4 && readFileSync('/proc/self/mountinfo', 'utf8').includes(dir); i++) require('node:child_process').spawnSync('umount', [dir]);
    rmSync(dir, { recursive: true, force: true });
  });
  recordHostMountNs();
  for (const attempt of ['first', 'second']) {
    t.throws(() => mount('tmpfs', dir, 'tmpfs', 0, null), /refusing to mount .*not in a mount namespace of the container's own/, `${attempt} call refused`);
  }
  t.equal(readFileSync('/proc/self/mountinfo', 'utf8'), before, 'nothing mounted');
});
