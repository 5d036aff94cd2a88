/** process: args, env, cwd, user, additionalGids, umask, rlimits, oomScoreAdj (and both needing CAP_SYS_RESOURCE), noNewPrivileges; apparmorProfile, capabilities, seccomp, sysctl. */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { readTrim, type Ctx, type Probe } from '../harness';
import { CAP_BITS, capMask, DEFAULT_CAPS } from '../spec';
import type { Case } from './types';

function statusField(p: Probe, field: string): string | undefined {
  const l = p.lines('status').find((x) => x.startsWith(field + ':'));
  return l?.slice(field.length + 1).trim();
}
function capField(p: Probe, field: string): bigint | undefined {
  const v = statusField(p, field);
  return v === undefined ? undefined : BigInt('0x' + v);
}
function limit(p: Probe, name: string): [string, string] | undefined {
  const l = p.lines('limits').find((x) => x.startsWith(name));
  if (!l) return undefined;
  const f = l.slice(name.length).trim().split(/\s+/);
  return [f[0], f[1]];
}

/** the suite's own effective capabilities: the runtime under test is its child and has no more */
function ownCapEff(): bigint {
  const l = readFileSync('/proc/self/status', 'utf8').split('\n').find((x) => x.startsWith('CapEff:'));
  return l ? BigInt('0x' + l.slice(7).trim()) : 0n;
}

/** the suite's own [soft, hard] for a /proc/self/limits line ("unlimited" as Infinity); the runtime inherits them */
function ownLimit(name: string): [number, number] | undefined {
  const l = readFileSync('/proc/self/limits', 'utf8').split('\n').find((x) => x.startsWith(name));
  if (!l) return undefined;
  const [soft, hard] = l.slice(name.length).trim().split(/\s+/).map((v) => (v === 'unlimited' ? Infinity : Number(v)));
  return [soft, hard];
}

/** why this host cannot apply an AppArmor profile, or undefined when it can */
function apparmorGap(): string | undefined {
  const enabled = readTrim('/sys/module/apparmor/parameters/enabled');
  const lsm = readTrim('/sys/kernel/security/lsm');
  if (enabled !== 'Y' || (lsm !== undefined && !lsm.split(',').includes('apparmor'))) {
    return `AppArmor is not enabled on this host (/sys/module/apparmor/parameters/enabled: ${enabled ?? 'missing'}; /sys/kernel/security/lsm: ${lsm ?? 'missing'})`;
  }
  return undefined;
}

const AA_PROFILE = 'conformance-test';
// permissive, so busybox and the probe run under it; what is checked is the label the process carries
const AA_POLICY = `profile ${AA_PROFILE} flags=(attach_disconnected,mediate_deleted) {
  file,
  capability,
  network,
  mount,
  umount,
  pivot_root,
  signal,
  ptrace,
  unix,
}
`;

/** a loaded profile to confine the container with: the suite's own (loaded with apparmor_parser, removed by the case) or docker-default */
function apparmorProfile(t: Ctx): { name: string; unload?: () => void } {
  const load = spawnSync('apparmor_parser', ['-r'], { input: AA_POLICY, encoding: 'utf8' });
  if (load.status === 0) return { name: AA_PROFILE, unload: () => void spawnSync('apparmor_parser', ['-R'], { input: AA_POLICY }) };
  const loaded = readTrim('/sys/kernel/security/apparmor/profiles') ?? '';
  if (/^docker-default \(enforce\)$/m.test(loaded)) return { name: 'docker-default' };
  return t.skip(
    `AppArmor is enabled but no profile can be loaded for the case (apparmor_parser -r: ${load.error ? (load.error as NodeJS.ErrnoException).code : `exit ${load.status}: ${load.stderr.trim().split('\n')[0]}`}) and docker-default is not loaded`,
  );
}

export const processCases: Case[] = [
  {
    name: 'process.args: passed verbatim',
    run(t) {
      const args = ['a b', '$HOME', '', `q'"x`, '--flag=1'];
      const out = t.output(['sh', '-c', 'for a in "$@"; do echo "[$a]"; done', 'sh', ...args]);
      if (out === undefined) return;
      t.equal(out.trim(), args.map((a) => `[${a}]`).join('\n'), 'each argument arrives unchanged');
    },
  },
  {
    name: 'process.env: exactly the given variables',
    run(t) {
      const env = ['PATH=/bin:/usr/bin', 'HOME=/conf-home', 'CONF_A=with space', 'CONF_EQ=a=b=c', 'CONF_EMPTY='];
      const out = t.output(['/bin/env'], (c) => (c.process.env = env));
      if (out === undefined) return;
      const got = out.trim().split('\n');
      for (const e of env) t.ok(got.includes(e), `${e} is set`, got);
      t.equal(got.length, env.length, 'no other variables');
    },
  },
  {
    name: 'process.cwd: the process starts in cwd',
    run(t) {
      const p = t.probe((c) => (c.process.cwd = '/etc'));
      if (!p) return;
      t.equal(p.get('cwd'), '/etc', 'pwd is /etc');
    },
  },
  {
    name: 'process.user: uid and gid',
    run(t) {
      const p = t.probe((c) => (c.process.user = { uid: 1000, gid: 1001 }));
      if (!p) return;
      t.equal(p.get('uid'), '1000', 'uid 1000');
      t.equal(p.get('gid'), '1001', 'gid 1001');
      t.equal(statusField(p, 'Uid')?.split(/\s+/).join(' '), '1000 1000 1000 1000', 'real, effective, saved and fs uid are 1000');
      t.equal(statusField(p, 'Gid')?.split(/\s+/).join(' '), '1001 1001 1001 1001', 'real, effective, saved and fs gid are 1001');
    },
  },
  {
    name: 'process.user.additionalGids: exactly the supplementary groups',
    run(t) {
      const p = t.probe((c) => (c.process.user = { uid: 1000, gid: 1000, additionalGids: [10, 2000, 3000] }));
      if (!p) return;
      t.equal(statusField(p, 'Groups')?.split(/\s+/).sort().join(' '), '10 2000 3000', 'Groups: 10 2000 3000');
      t.equal(p.get('groups').split(/\s+/).sort().join(' '), ['1000', '10', '2000', '3000'].sort().join(' '), 'id -G lists primary and supplementary groups');
    },
  },
  {
    name: 'process.user: without additionalGids there are no supplementary groups',
    run(t) {
      const p = t.probe((c) => (c.process.user = { uid: 0, gid: 0 }));
      if (!p) return;
      t.equal(statusField(p, 'Groups') ?? '', '', 'Groups: is empty');
    },
  },
  {
    name: 'process.user.umask: applied',
    run(t) {
      const p = t.probe((c) => (c.process.user.umask = 0o027), 'touch /dev/shm/f; stat -c %a /dev/shm/f');
      if (!p) return;
      t.equal(p.get('umask'), '0027', 'umask is 0027');
      t.equal(p.get('extra'), '640', 'a new file gets mode 0640');
    },
  },
  {
    name: 'process.rlimits: soft and hard values set exactly',
    run(t) {
      const p = t.probe((c) => {
        c.process.rlimits = [
          { type: 'RLIMIT_NOFILE', soft: 512, hard: 768 },
          { type: 'RLIMIT_NPROC', soft: 300, hard: 400 },
          { type: 'RLIMIT_CORE', soft: 0, hard: 4096 },
          { type: 'RLIMIT_MSGQUEUE', soft: 8192, hard: 16384 },
        ];
      });
      if (!p) return;
      t.equal(limit(p, 'Max open files')?.join(' '), '512 768', 'RLIMIT_NOFILE 512/768');
      t.equal(limit(p, 'Max processes')?.join(' '), '300 400', 'RLIMIT_NPROC 300/400');
      t.equal(limit(p, 'Max core file size')?.join(' '), '0 4096', 'RLIMIT_CORE 0/4096');
      t.equal(limit(p, 'Max msgqueue size')?.join(' '), '8192 16384', 'RLIMIT_MSGQUEUE 8192/16384');
    },
  },
  {
    name: 'process.oomScoreAdj: applied',
    run(t) {
      const p = t.probe((c) => (c.process.oomScoreAdj = 345));
      if (!p) return;
      t.equal(p.get('oom'), '345', 'oom_score_adj is 345');
    },
  },
  {
    name: "process: a negative oomScoreAdj and a hard rlimit above the caller's (CAP_SYS_RESOURCE)",
    run(t) {
      // lowering oom_score_adj below 0 and raising a hard rlimit both need CAP_SYS_RESOURCE in the runtime,
      // which has no more capabilities than the suite that runs it
      const eff = ownCapEff();
      if (!((eff >> BigInt(CAP_BITS.CAP_SYS_RESOURCE)) & 1n)) {
        t.skip(`the runtime's caller lacks CAP_SYS_RESOURCE (CapEff ${eff.toString(16).padStart(16, '0')}: bit 24 clear), needed for a negative oom_score_adj and a hard rlimit above the caller's`);
      }
      const nrOpen = Number(readTrim('/proc/sys/fs/nr_open') ?? 1048576);
      const [, hostHard] = ownLimit('Max open files') ?? [0, Infinity];
      if (!(hostHard + 1024 <= nrOpen)) t.skip(`the caller's hard RLIMIT_NOFILE (${hostHard}) leaves no room below fs.nr_open (${nrOpen}) to raise it`);
      const hard = hostHard + 1024;
      const p = t.probe((c) => {
        c.process.oomScoreAdj = -500;
        c.process.rlimits = [{ type: 'RLIMIT_NOFILE', soft: 1024, hard }];
      });
      if (!p) return;
      t.equal(p.get('oom'), '-500', 'oom_score_adj is -500');
      t.equal(limit(p, 'Max open files')?.join(' '), `1024 ${hard}`, `RLIMIT_NOFILE 1024/${hard} (the caller's hard limit is ${hostHard})`);
    },
  },
  {
    name: 'process.noNewPrivileges: true sets no_new_privs',
    run(t) {
      const p = t.probe((c) => (c.process.noNewPrivileges = true));
      if (!p) return;
      t.equal(statusField(p, 'NoNewPrivs'), '1', 'NoNewPrivs: 1');
    },
  },
  {
    name: 'process.noNewPrivileges: false leaves it unset',
    run(t) {
      const p = t.probe((c) => (c.process.noNewPrivileges = false));
      if (!p) return;
      t.equal(statusField(p, 'NoNewPrivs'), '0', 'NoNewPrivs: 0');
    },
  },
];

export const security: Case[] = [
  {
    name: 'process.apparmorProfile: the process runs under the profile',
    run(t) {
      const gap = apparmorGap();
      if (gap) t.skip(gap);
      const profile = apparmorProfile(t);
      try {
        const p = t.probe((c) => (c.process.apparmorProfile = profile.name), 'cat /proc/self/attr/apparmor/current 2>/dev/null || cat /proc/self/attr/current');
        if (!p) return;
        t.equal(p.get('extra').replace(/\0/g, ''), `${profile.name} (enforce)`, `/proc/self/attr/current inside is ${profile.name} (enforce)`);
      } finally {
        profile.unload?.();
      }
    },
  },
  {
    name: 'capabilities: the default set',
    run(t) {
      const p = t.probe();
      if (!p) return;
      const m = capMask(DEFAULT_CAPS);
      t.equal(capField(p, 'CapBnd'), m, 'CapBnd is the configured bounding set');
      t.equal(capField(p, 'CapEff'), m, 'CapEff is the configured effective set');
      t.equal(capField(p, 'CapPrm'), m, 'CapPrm is the configured permitted set');
      t.equal(capField(p, 'CapInh'), 0n, 'CapInh is empty');
      t.equal(capField(p, 'CapAmb'), 0n, 'CapAmb is empty');
    },
  },
  {
    name: 'capabilities: each set applied separately',
    run(t) {
      const sets = {
        bounding: ['CAP_CHOWN', 'CAP_NET_RAW', 'CAP_SYS_ADMIN', 'CAP_KILL', 'CAP_SETPCAP'],
        permitted: ['CAP_CHOWN', 'CAP_NET_RAW', 'CAP_KILL'],
        // the kernel sets effective = permitted when root execs (no SECBIT_NOROOT), so both are the same here
        effective: ['CAP_CHOWN', 'CAP_NET_RAW', 'CAP_KILL'],
        inheritable: ['CAP_CHOWN', 'CAP_NET_RAW'],
        ambient: ['CAP_CHOWN'],
      };
      const p = t.probe((c) => (c.process.capabilities = sets));
      if (!p) return;
      t.equal(capField(p, 'CapBnd'), capMask(sets.bounding), 'CapBnd');
      t.equal(capField(p, 'CapPrm'), capMask(sets.permitted), 'CapPrm');
      t.equal(capField(p, 'CapEff'), capMask(sets.effective), 'CapEff');
      t.equal(capField(p, 'CapInh'), capMask(sets.inheritable), 'CapInh');
      t.equal(capField(p, 'CapAmb'), capMask(sets.ambient), 'CapAmb');
    },
  },
  {
    name: 'capabilities: a non-root user keeps the configured capabilities',
    run(t) {
      const caps = ['CAP_KILL', 'CAP_NET_BIND_SERVICE'];
      const p = t.probe((c) => {
        c.process.user = { uid: 1000, gid: 1000 };
        c.process.capabilities = { bounding: caps, permitted: caps, effective: caps, inheritable: caps, ambient: caps };
      });
      if (!p) return;
      t.equal(p.get('uid'), '1000', 'runs as uid 1000');
      t.equal(capField(p, 'CapEff'), capMask(caps), 'CapEff kept after the uid change');
      t.equal(capField(p, 'CapBnd'), capMask(caps), 'CapBnd');
    },
  },
  {
    name: 'capabilities: empty sets drop everything',
    run(t) {
      const p = t.probe((c) => (c.process.capabilities = { bounding: [], permitted: [], effective: [], inheritable: [], ambient: [] }), 'chown 1:1 /dev/shm 2>/dev/null; echo $?');
      if (!p) return;
      for (const f of ['CapBnd', 'CapPrm', 'CapEff', 'CapInh', 'CapAmb']) t.equal(capField(p, f), 0n, `${f} is empty`);
      t.ok(p.get('extra') !== '0', 'root cannot chown without CAP_CHOWN');
    },
  },
  {
    name: 'seccomp: a syscall rule returns errnoRet',
    run(t) {
      const p = t.probe(
        (c) => (c.linux.seccomp = { defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ names: ['mkdir', 'mkdirat'], action: 'SCMP_ACT_ERRNO', errnoRet: 13 }] }),
        'mkdir /dev/shm/d 2>&1; echo rc=$?; touch /dev/shm/f; echo touch=$?',
      );
      if (!p) return;
      t.equal(statusField(p, 'Seccomp'), '2', 'Seccomp: 2 (filter mode)');
      t.match(p.get('extra'), /Permission denied/, 'mkdir fails with EACCES (errnoRet 13)');
      t.match(p.get('extra'), /rc=1/, 'mkdir exits non-zero');
      t.match(p.get('extra'), /touch=0/, 'other syscalls are allowed (defaultAction)');
    },
  },
  {
    name: 'seccomp: a rule with argument conditions',
    run(t) {
      const p = t.probe(
        (c) =>
          (c.linux.seccomp = {
            defaultAction: 'SCMP_ACT_ALLOW',
            syscalls: [{ names: ['kill'], action: 'SCMP_ACT_ERRNO', errnoRet: 1, args: [{ index: 1, value: 10, op: 'SCMP_CMP_EQ' }] }],
          }),
        'trap "echo caught" USR1; kill -USR1 $$ 2>/dev/null; echo usr1=$?; kill -0 $$; echo zero=$?',
      );
      if (!p) return;
      t.match(p.get('extra'), /usr1=1/, 'kill(pid, SIGUSR1) is refused (arg 1 == 10)');
      t.ok(!p.get('extra').includes('caught'), 'the signal was not delivered');
      t.match(p.get('extra'), /zero=0/, 'kill(pid, 0) is allowed (arg 1 != 10)');
    },
  },
  ...([undefined, 30] as const).map(
    (errno): Case => ({
      name: `seccomp: defaultAction SCMP_ACT_ERRNO ${errno === undefined ? 'returns EPERM' : 'with defaultErrnoRet'} for unlisted syscalls`,
      run(t) {
        // allow every syscall this host's headers name except mkdir/mkdirat (names libseccomp does not know are ignored by every runtime)
        let names: string[] = [];
        try {
          names = [...readFileSync('/usr/include/x86_64-linux-gnu/asm/unistd_64.h', 'utf8').matchAll(/^#define __NR_(\w+)\s+\d+/gm)].map((m) => m[1]);
        } catch {
          t.skip('no x86_64 syscall table (linux-libc-dev) to build the allow list from');
        }
        names = names.filter((n) => n !== 'mkdir' && n !== 'mkdirat');
        const p = t.probe(
          (c) =>
            (c.linux.seccomp = {
              defaultAction: 'SCMP_ACT_ERRNO',
              ...(errno === undefined ? {} : { defaultErrnoRet: errno }),
              architectures: ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86', 'SCMP_ARCH_X32'],
              syscalls: [{ names, action: 'SCMP_ACT_ALLOW' }],
            }),
          'mkdir /dev/shm/d 2>&1; echo rc=$?; touch /dev/shm/f; echo touch=$?; [ -e /dev/shm/d ]; echo exists=$?',
        );
        if (!p) return;
        t.equal(statusField(p, 'Seccomp'), '2', 'Seccomp: 2 (filter mode)');
        t.match(p.get('extra'), errno === undefined ? /Operation not permitted/ : /Read-only file system/, `an unlisted syscall (mkdir) fails with ${errno === undefined ? 'EPERM (the default errno)' : 'EROFS (defaultErrnoRet 30)'}`);
        t.match(p.get('extra'), /rc=1/, 'mkdir exits non-zero');
        t.match(p.get('extra'), /exists=1/, 'the directory was not created');
        t.match(p.get('extra'), /touch=0/, 'listed syscalls are allowed');
      },
    }),
  ),
  {
    name: 'seccomp: no seccomp in the config means no filter',
    run(t) {
      const p = t.probe((c) => delete c.linux.seccomp);
      if (!p) return;
      t.equal(statusField(p, 'Seccomp'), '0', 'Seccomp: 0');
    },
  },
  {
    name: 'sysctl: namespaced kernel and net parameters are set in the container only',
    run(t) {
      const hostFwd = readFileSync('/proc/sys/net/ipv4/ip_forward', 'utf8').trim();
      const p = t.probe(
        (c) => (c.linux.sysctl = { 'net.ipv4.ip_forward': hostFwd === '1' ? '0' : '1', 'kernel.shmmax': '123456789', 'kernel.msgmax': '4321' }),
        'echo fwd=$(cat /proc/sys/net/ipv4/ip_forward); echo shmmax=$(cat /proc/sys/kernel/shmmax); echo msgmax=$(cat /proc/sys/kernel/msgmax)',
      );
      if (!p) return;
      const e = Object.fromEntries(p.lines('extra').map((l) => l.split('=')));
      t.equal(e.fwd, hostFwd === '1' ? '0' : '1', 'net.ipv4.ip_forward set');
      t.equal(e.shmmax, '123456789', 'kernel.shmmax set');
      t.equal(e.msgmax, '4321', 'kernel.msgmax set');
      t.equal(readFileSync('/proc/sys/net/ipv4/ip_forward', 'utf8').trim(), hostFwd, 'host ip_forward unchanged');
    },
  },
  {
    name: 'sysctl: a parameter outside the container namespaces is refused',
    run(t) {
      const b = t.bundle((c) => (c.linux.sysctl = { 'kernel.panic': '7' }));
      const before = readFileSync('/proc/sys/kernel/panic', 'utf8').trim();
      const { id, res } = t.create(b);
      t.fails(res, 'create fails');
      t.fails(t.cli(['state', id]), 'no container left');
      t.equal(readFileSync('/proc/sys/kernel/panic', 'utf8').trim(), before, 'host kernel.panic unchanged');
    },
  },
];
