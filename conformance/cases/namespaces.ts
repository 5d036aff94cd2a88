/** Namespaces: new, absent (shared with the host) and joined by path; user namespace mappings; hostname, domainname. */
import { readFileSync, writeFileSync } from 'node:fs';
import { nsOf, parseProbe, type Ctx } from '../harness';
import type { Config } from '../spec';
import type { Case } from './types';

const PROC: Record<string, string> = { pid: 'pid', network: 'net', ipc: 'ipc', uts: 'uts', mount: 'mnt', cgroup: 'cgroup', user: 'user' };
const UNSHARE: Record<string, string> = { pid: '--pid', network: '--net', ipc: '--ipc', uts: '--uts', mount: '--mount', cgroup: '--cgroup' };

/** create a long-running container, return its init pid (or undefined after a failed assertion) */
function created(t: Ctx, edit: (c: Config) => void): number | undefined {
  const b = t.bundle((c) => {
    c.process.args = ['sh', '-c', 'exec sleep 60'];
    edit(c);
  });
  const { id, res } = t.create(b);
  if (!t.succeeds(res, 'create succeeds')) return undefined;
  const pid = t.state(id)?.pid as number | undefined;
  t.ok(pid, 'state has a pid');
  return pid;
}

function newNs(type: string): Case {
  return {
    name: `namespace ${type}: new`,
    run(t) {
      const pid = created(t, () => {});
      if (!pid) return;
      const mine = nsOf('self', PROC[type]);
      const theirs = nsOf(pid, PROC[type]);
      t.ok(theirs, `container's ${PROC[type]} namespace is readable`);
      t.ok(theirs !== mine, `container has its own ${type} namespace`, `${theirs} vs host ${mine}`);
    },
  };
}

function absentNs(type: string): Case {
  return {
    name: `namespace ${type}: absent from config shares the runtime's`,
    run(t) {
      const pid = created(t, (c) => {
        c.linux.namespaces = c.linux.namespaces.filter((n: { type: string }) => n.type !== type);
        if (type === 'uts') delete c.hostname;
        if (type === 'network') c.mounts = c.mounts.map((m: any) => (m.destination === '/sys' ? { destination: '/sys', type: 'bind', source: '/sys', options: ['rbind', 'nosuid', 'noexec', 'nodev', 'ro'] } : m));
      });
      if (!pid) return;
      t.equal(nsOf(pid, PROC[type]), nsOf('self', PROC[type]), `container shares the host ${type} namespace`);
    },
  };
}

function joinedNs(type: string): Case {
  return {
    name: `namespace ${type}: joined by path`,
    run(t) {
      const holder = t.holder([UNSHARE[type]], type === 'pid');
      const want = nsOf(holder, PROC[type]);
      t.ok(want && want !== nsOf('self', PROC[type]), 'holder process has its own namespace');
      const pid = created(t, (c) => {
        c.linux.namespaces = c.linux.namespaces.map((n: { type: string }) => (n.type === type ? { type, path: `/proc/${holder}/ns/${PROC[type]}` } : n));
      });
      if (!pid) return;
      t.equal(nsOf(pid, PROC[type]), want, `container is in the ${type} namespace given by path`);
    },
  };
}

export const namespaces: Case[] = [
  ...['pid', 'network', 'ipc', 'uts', 'mount', 'cgroup'].map(newNs),
  ...['pid', 'network', 'ipc', 'uts'].map(absentNs),
  ...['network', 'ipc', 'uts', 'cgroup', 'pid', 'mount'].map(joinedNs),
  {
    name: 'namespace pid: the process is PID 1 and sees only its own processes',
    run(t) {
      const p = t.probe(undefined, 'ls -d /proc/[0-9]* | wc -l');
      if (!p) return;
      t.equal(p.get('pid'), '1', 'the container process is PID 1');
      const n = Number(p.get('extra'));
      t.ok(n > 0 && n <= 4, 'only the container\'s few processes are in /proc', n);
    },
  },
  {
    name: 'namespace network: only loopback, down',
    run(t) {
      const p = t.probe(undefined, "tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' '");
      if (!p) return;
      t.equal(p.lines('extra').join(','), 'lo', 'the only interface is lo');
    },
  },
  {
    name: 'namespace user: uid and gid mappings',
    run(t) {
      const uidMap = { containerID: 0, hostID: 100000, size: 65536 };
      const gidMap = { containerID: 0, hostID: 200000, size: 65536 };
      const b = t.bundle((c) => {
        c.process.args = ['sh', '/conformance-probe.sh', ''];
        c.linux.namespaces.push({ type: 'user' });
        c.linux.uidMappings = [uidMap];
        c.linux.gidMappings = [gidMap];
      });
      const { id, res } = t.create(b);
      if (!t.succeeds(res, 'create succeeds')) return;
      const pid = t.state(id)?.pid as number;
      t.ok(nsOf(pid, 'user') !== nsOf('self', 'user'), 'container has its own user namespace');
      const norm = (s: string) => s.trim().split(/\s+/).join(' ');
      t.equal(norm(readFileSync(`/proc/${pid}/uid_map`, 'utf8')), '0 100000 65536', 'uid_map seen from the host');
      t.equal(norm(readFileSync(`/proc/${pid}/gid_map`, 'utf8')), '0 200000 65536', 'gid_map seen from the host');
      t.succeeds(t.cli(['start', id]), 'start succeeds');
      t.waitExit(id, pid);
      const p = parseProbe(readFileSync(b.stdout, 'utf8'));
      t.equal(p.get('uid'), '0', 'container sees uid 0');
      t.equal(p.get('gid'), '0', 'container sees gid 0');
      t.equal(norm(p.get('uidmap')), '0 100000 65536', 'container sees its uid_map');
    },
  },
  {
    name: 'namespace user: joined by path',
    run(t) {
      // holder: a process in a new user namespace whose maps the (root) harness writes from outside
      const holder = t.holder(['--user']);
      const want = nsOf(holder, 'user');
      t.ok(want && want !== nsOf('self', 'user'), 'holder process has its own user namespace');
      writeFileSync(`/proc/${holder}/uid_map`, '0 300000 65536\n');
      writeFileSync(`/proc/${holder}/gid_map`, '0 400000 65536\n');
      const b = t.bundle((c) => {
        c.process.args = ['sh', '/conformance-probe.sh', ''];
        c.linux.namespaces.push({ type: 'user', path: `/proc/${holder}/ns/user` });
      });
      const { id, res } = t.create(b);
      if (!t.succeeds(res, 'create succeeds')) return;
      const pid = t.state(id)?.pid as number;
      t.equal(nsOf(pid, 'user'), want, 'container is in the user namespace given by path');
      const norm = (s: string) => s.trim().split(/\s+/).join(' ');
      t.equal(norm(readFileSync(`/proc/${pid}/uid_map`, 'utf8')), '0 300000 65536', "uid_map seen from the host is the holder's");
      t.equal(norm(readFileSync(`/proc/${pid}/gid_map`, 'utf8')), '0 400000 65536', "gid_map seen from the host is the holder's");
      const st = readFileSync(`/proc/${pid}/status`, 'utf8');
      t.match(/^Uid:.*$/m.exec(st)?.[0], /^Uid:\s+300000\s+300000\s+300000\s+300000$/, 'container root is host uid 300000');
      t.succeeds(t.cli(['start', id]), 'start succeeds');
      t.waitExit(id, pid);
      const p = parseProbe(readFileSync(b.stdout, 'utf8'));
      t.ok(p.sections.end !== undefined, 'probe ran to the end', p.raw.slice(-300));
      t.equal(p.get('uid'), '0', 'container sees uid 0');
      t.equal(p.get('gid'), '0', 'container sees gid 0');
      t.equal(norm(p.get('uidmap')), '0 300000 65536', 'container sees the holder\'s uid_map');
      t.equal(norm(p.get('gidmap')), '0 400000 65536', 'container sees the holder\'s gid_map');
    },
  },
  {
    name: 'hostname: set in the new uts namespace',
    run(t) {
      const p = t.probe((c) => (c.hostname = 'conf-host-1'));
      if (!p) return;
      t.equal(p.get('hostname'), 'conf-host-1', 'hostname inside the container');
      t.ok(readFileSync('/proc/sys/kernel/hostname', 'utf8').trim() !== 'conf-host-1', 'host hostname unchanged');
    },
  },
  {
    name: 'domainname: set in the new uts namespace',
    run(t) {
      const p = t.probe((c) => (c.domainname = 'conformance.example'));
      if (!p) return;
      t.equal(p.get('domainname'), 'conformance.example', 'domainname inside the container');
      t.ok(readFileSync('/proc/sys/kernel/domainname', 'utf8').trim() !== 'conformance.example', 'host domainname unchanged');
    },
  },
];
