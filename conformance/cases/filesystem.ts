/** Mounts (types, options, propagation), root.readonly, maskedPaths, readonlyPaths, devices. */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseMountinfo, type MountInfo, type Probe } from '../harness';
import type { Case } from './types';

function mounts(p: Probe): MountInfo[] {
  return parseMountinfo(p.lines('mountinfo'));
}
/** the last (topmost) mount at a mount point */
function at(p: Probe, point: string): MountInfo | undefined {
  return mounts(p).filter((m) => m.mountPoint === point).pop();
}
/** lines of the extra section as key=value */
function kv(p: Probe): Record<string, string> {
  return Object.fromEntries(p.lines('extra').map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
}

export const filesystem: Case[] = [
  {
    name: 'mounts: the default mounts have their types and flags',
    run(t) {
      const p = t.probe();
      if (!p) return;
      const want: [string, string, string[]][] = [
        ['/proc', 'proc', []],
        ['/dev', 'tmpfs', ['nosuid']],
        ['/dev/pts', 'devpts', ['nosuid', 'noexec']],
        ['/dev/shm', 'tmpfs', ['nosuid', 'noexec', 'nodev']],
        ['/dev/mqueue', 'mqueue', ['nosuid', 'noexec', 'nodev']],
        ['/sys', 'sysfs', ['nosuid', 'noexec', 'nodev', 'ro']],
      ];
      for (const [point, type, flags] of want) {
        const m = at(p, point);
        t.equal(m?.fstype, type, `${point} is ${type}`);
        if (flags.length) t.ok(m && flags.every((f) => m.opts.includes(f)), `${point} has ${flags.join(',')}`, m?.opts);
      }
      t.ok(at(p, '/sys/fs/cgroup'), '/sys/fs/cgroup is mounted');
      const dev = at(p, '/dev');
      t.ok(dev?.superOpts.includes('mode=755'), '/dev tmpfs has mode=755', dev?.superOpts);
    },
  },
  {
    name: 'mounts: tmpfs with data options and flags',
    run(t) {
      const p = t.probe((c) => c.mounts.push({ destination: '/conf/tmp', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'nodev', 'noexec', 'size=1m', 'mode=700'] }), 'stat -c %a /conf/tmp');
      if (!p) return;
      const m = at(p, '/conf/tmp');
      t.equal(m?.fstype, 'tmpfs', 'mounted as tmpfs');
      t.ok(m && ['nosuid', 'nodev', 'noexec'].every((f) => m.opts.includes(f)), 'nosuid,nodev,noexec applied', m?.opts);
      t.ok(m?.superOpts.includes('size=1024k'), 'size=1m applied', m?.superOpts);
      t.equal(p.get('extra'), '700', 'mode=700 applied');
    },
  },
  {
    name: 'mounts: read-only bind mount of a host directory',
    run(t) {
      const host = t.tmp();
      writeFileSync(join(host, 'hello'), 'from-host\n');
      const p = t.probe((c) => c.mounts.push({ destination: '/conf/ro', type: 'bind', source: host, options: ['rbind', 'ro'] }), 'echo read=$(cat /conf/ro/hello); touch /conf/ro/new 2>/dev/null; echo write=$?');
      if (!p) return;
      const e = kv(p);
      t.equal(e.read, 'from-host', 'host file visible in the container');
      t.ok(e.write !== '0', 'writing into the ro bind mount fails', e.write);
      t.ok(at(p, '/conf/ro')?.opts.includes('ro'), 'mountinfo shows ro');
    },
  },
  {
    name: 'mounts: read-write bind mount writes reach the host',
    run(t) {
      const host = t.tmp();
      const p = t.probe((c) => c.mounts.push({ destination: '/conf/rw', type: 'bind', source: host, options: ['rbind', 'rw'] }), 'echo from-container > /conf/rw/out; echo write=$?');
      if (!p) return;
      t.equal(kv(p).write, '0', 'write succeeds');
      let content = '';
      try {
        content = readFileSync(join(host, 'out'), 'utf8').trim();
      } catch {
        /* missing */
      }
      t.equal(content, 'from-container', 'the host sees the file');
      t.ok(at(p, '/conf/rw')?.opts.includes('rw'), 'mountinfo shows rw');
    },
  },
  {
    name: 'mounts: propagation rprivate and rshared',
    run(t) {
      const h1 = t.tmp();
      const h2 = t.tmp();
      const p = t.probe((c) => {
        c.mounts.push({ destination: '/conf/priv', type: 'bind', source: h1, options: ['rbind', 'rprivate'] });
        c.mounts.push({ destination: '/conf/shared', type: 'bind', source: h2, options: ['rbind', 'rshared'] });
      });
      if (!p) return;
      const priv = at(p, '/conf/priv');
      const shared = at(p, '/conf/shared');
      t.ok(priv && !priv.optional.some((o) => o.startsWith('shared:') || o.startsWith('master:')), 'rprivate mount has no peer group', priv?.optional);
      t.ok(shared?.optional.some((o) => o.startsWith('shared:')), 'rshared mount is in a peer group', shared?.optional);
    },
  },
  {
    name: 'mounts: rootfsPropagation slave with an rslave bind mount',
    run(t) {
      const host = t.tmp();
      const p = t.probe((c) => {
        c.linux.rootfsPropagation = 'slave';
        c.mounts.push({ destination: '/conf/slave', type: 'bind', source: host, options: ['rbind', 'rslave'] });
      });
      if (!p) return;
      const m = at(p, '/conf/slave');
      t.ok(m && !m.optional.some((o) => o.startsWith('shared:')), 'rslave mount is not shared', m?.optional);
    },
  },
  {
    name: 'mounts: a mount nested inside an earlier one',
    run(t) {
      const host = t.tmp();
      mkdirSync(join(host, 'inner'));
      writeFileSync(join(host, 'inner', 'f'), 'nested\n');
      const p = t.probe((c) => {
        c.mounts.push({ destination: '/conf/outer', type: 'tmpfs', source: 'tmpfs', options: ['size=1m'] });
        c.mounts.push({ destination: '/conf/outer/in', type: 'bind', source: join(host, 'inner'), options: ['rbind', 'ro'] });
      }, 'cat /conf/outer/in/f');
      if (!p) return;
      t.equal(at(p, '/conf/outer')?.fstype, 'tmpfs', 'outer tmpfs mounted');
      t.equal(p.get('extra'), 'nested', 'inner bind mount visible inside it (mounts applied in order)');
    },
  },
  {
    name: 'root: readonly true makes / read-only',
    run(t) {
      const p = t.probe((c) => (c.root.readonly = true), 'touch /conf-w 2>/dev/null; echo $?');
      if (!p) return;
      t.ok(p.get('extra') !== '0', 'writing to / fails');
      t.ok(at(p, '/')?.opts.includes('ro'), 'mountinfo shows / ro', at(p, '/')?.opts);
    },
  },
  {
    name: 'root: readonly false leaves / writable',
    run(t) {
      const b = t.bundle((c) => {
        c.root.readonly = false;
        c.process.args = ['sh', '/conformance-probe.sh', 'touch /conf-w; echo $?'];
      });
      const p = t.probeBundle(b);
      if (!p) return;
      t.equal(p.get('extra'), '0', 'writing to / succeeds');
      t.ok(at(p, '/')?.opts.includes('rw'), 'mountinfo shows / rw');
    },
  },
  {
    name: 'maskedPaths: files read empty, directories are empty',
    run(t) {
      const p = t.probe(
        (c, b) => {
          writeFileSync(join(b.rootfs, 'etc', 'conf-secret'), 'secret\n');
          mkdirSync(join(b.rootfs, 'conf-secretdir'));
          writeFileSync(join(b.rootfs, 'conf-secretdir', 'f'), 'secret\n');
          c.linux.maskedPaths.push('/etc/conf-secret', '/conf-secretdir');
        },
        'echo timer=$(wc -c < /proc/timer_list); echo file=$(cat /etc/conf-secret); echo dir=$(ls -A /conf-secretdir | wc -l); echo wdir=$(touch /conf-secretdir/x 2>/dev/null; echo $?)',
      );
      if (!p) return;
      const e = kv(p);
      t.equal(e.timer, '0', '/proc/timer_list (default mask, non-empty on the host) reads empty');
      t.ok(at(p, '/proc/keys'), '/proc/keys (default mask) is covered by a mount');
      t.ok(at(p, '/proc/acpi')?.opts.includes('ro'), '/proc/acpi (default mask) is covered by a read-only mount');
      t.equal(e.file, '', 'masked file reads empty');
      t.equal(e.dir, '0', 'masked directory is empty');
      t.ok(e.wdir !== '0', 'masked directory is not writable');
    },
  },
  {
    name: 'readonlyPaths: listed paths are read-only, others stay writable',
    run(t) {
      const p = t.probe(
        (c, b) => {
          c.root.readonly = false;
          mkdirSync(join(b.rootfs, 'conf-ro'));
          mkdirSync(join(b.rootfs, 'conf-rw'));
          c.linux.readonlyPaths.push('/conf-ro');
        },
        'touch /conf-ro/x 2>/dev/null; echo ro=$?; touch /conf-rw/x; echo rw=$?',
      );
      if (!p) return;
      const e = kv(p);
      t.ok(e.ro !== '0', 'write under a readonlyPath fails');
      t.equal(e.rw, '0', 'write elsewhere succeeds');
      t.ok(at(p, '/proc/sys')?.opts.includes('ro'), '/proc/sys (default readonlyPath) is mounted ro');
      t.ok(at(p, '/conf-ro')?.opts.includes('ro'), '/conf-ro is mounted ro');
    },
  },
  {
    name: 'devices: the default devices exist with the right numbers',
    run(t) {
      const p = t.probe(
        undefined,
        'for d in null zero full random urandom tty; do echo "$d=$(stat -c \'%F %t:%T\' /dev/$d)"; done; for l in fd stdin stdout stderr ptmx; do echo "$l=$(readlink /dev/$l)"; done; echo zeroread=$(head -c 4 /dev/zero | wc -c); echo devnull=$(echo x > /dev/null; echo $?)',
      );
      if (!p) return;
      const e = kv(p);
      const want: Record<string, string> = { null: '1:3', zero: '1:5', full: '1:7', random: '1:8', urandom: '1:9', tty: '5:0' };
      for (const [d, mm] of Object.entries(want)) t.equal(e[d], `character special file ${mm}`, `/dev/${d} is char ${mm}`);
      t.equal(e.fd, '/proc/self/fd', '/dev/fd -> /proc/self/fd');
      t.equal(e.stdin, '/proc/self/fd/0', '/dev/stdin -> /proc/self/fd/0');
      t.equal(e.stdout, '/proc/self/fd/1', '/dev/stdout -> /proc/self/fd/1');
      t.equal(e.stderr, '/proc/self/fd/2', '/dev/stderr -> /proc/self/fd/2');
      t.equal(e.ptmx, 'pts/ptmx', '/dev/ptmx -> pts/ptmx');
      t.equal(e.devnull, '0', '/dev/null is writable');
      t.equal(e.zeroread, '4', '/dev/zero is readable');
    },
  },
  {
    name: 'devices: linux.devices creates nodes with type, numbers, mode and owner',
    run(t) {
      const p = t.probe(
        (c) => {
          c.linux.devices = [
            { path: '/dev/conf-null', type: 'c', major: 1, minor: 3, fileMode: 0o620, uid: 1000, gid: 1001 },
            { path: '/dev/conf-dir/zero', type: 'c', major: 1, minor: 5, fileMode: 0o666, uid: 0, gid: 0 },
          ];
          c.linux.resources.devices.push({ allow: true, type: 'c', major: 1, minor: 3, access: 'rw' }, { allow: true, type: 'c', major: 1, minor: 5, access: 'rw' });
        },
        'echo a=$(stat -c "%F %t:%T %a %u:%g" /dev/conf-null); echo b=$(stat -c "%F %t:%T %a" /dev/conf-dir/zero); echo r=$(head -c 3 /dev/conf-dir/zero | wc -c)',
      );
      if (!p) return;
      const e = kv(p);
      t.equal(e.a, 'character special file 1:3 620 1000:1001', '/dev/conf-null: char 1:3, mode 0620, owner 1000:1001');
      t.equal(e.b, 'character special file 1:5 666', '/dev/conf-dir/zero: created with its parent directory');
      t.equal(e.r, '3', 'the device works');
    },
  },
];
