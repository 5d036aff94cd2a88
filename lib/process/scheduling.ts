/**
 * How the kernel treats the container process: process.scheduler
 * (sched_setattr), process.ioPriority (ioprio_set), linux.personality and
 * linux.memoryPolicy (set_mempolicy). Applied by the process to itself
 * before it gives up root: real-time policies, negative nice and the RT I/O
 * class need CAP_SYS_NICE / CAP_SYS_ADMIN, and personality goes in before a
 * seccomp profile that may deny it (as runc). Children and execve inherit all
 * four. Also process.execCPUAffinity for `exec` (sched_setaffinity). The
 * conversions are pure, so bad values are refused before anything exists.
 */
import * as C from '../../bindings/constants';
import * as sched from '../../bindings/sched';
import { UnsupportedError } from '../errors';
import type { Linux, LinuxIOPriority, LinuxMemoryPolicy, LinuxPersonality, Process, Scheduler } from '../spec/types';
import type { Step } from './become';

function lookup(table: Readonly<Record<string, number>>, name: string, field: string): number {
  const v = table[name];
  if (v === undefined) throw new UnsupportedError(`${field}: ${JSON.stringify(name)} is not supported (have: ${Object.keys(table).join(', ')})`, field);
  return v;
}

/** struct sched_attr for process.scheduler (little-endian: koci's architectures, x86_64 and aarch64, both are) */
export function schedAttr(s: Scheduler): Buffer {
  const b = Buffer.alloc(C.SCHED_ATTR_SIZE);
  let flags = 0;
  for (const f of s.flags ?? []) flags |= lookup(C.SCHED_FLAGS, f, 'process.scheduler.flags');
  b.writeUInt32LE(C.SCHED_ATTR_SIZE, 0);
  b.writeUInt32LE(lookup(C.SCHED_POLICIES, s.policy, 'process.scheduler.policy'), 4);
  b.writeBigUInt64LE(BigInt(flags), 8);
  b.writeInt32LE(s.nice ?? 0, 16);
  b.writeUInt32LE(s.priority ?? 0, 20);
  b.writeBigUInt64LE(BigInt(s.runtime ?? 0), 24);
  b.writeBigUInt64LE(BigInt(s.deadline ?? 0), 32);
  b.writeBigUInt64LE(BigInt(s.period ?? 0), 40);
  // sched_util_min/max stay 0: the spec has no fields for them
  return b;
}

/** the ioprio_set value: class << 13 | priority */
export function ioprioValue(p: LinuxIOPriority): number {
  return (lookup(C.IOPRIO_CLASSES, p.class, 'process.ioPriority.class') << C.IOPRIO_CLASS_SHIFT) | p.priority;
}

/** the persona for personality(2); the spec defines no flags yet, so any flag is one koci cannot honour */
export function personaOf(p: LinuxPersonality): number {
  if (p.flags?.length) throw new UnsupportedError(`linux.personality.flags: no personality flags are supported (got ${p.flags.join(', ')})`, 'linux.personality.flags');
  return lookup(C.PERSONALITIES, p.domain, 'linux.personality.domain');
}

/**
 * A cpuset-style list ("0-3,7") as a kernel bitmask of `bits` bits: an array
 * of unsigned longs, whose bit n is bit n%8 of byte n/8 on a little-endian machine
 */
export function listMask(list: string, bits: number, field: string): Buffer {
  const mask = Buffer.alloc(bits / 8);
  for (const part of list.split(',')) {
    const m = /^(\d+)(?:-(\d+))?$/.exec(part.trim());
    if (!m) throw new UnsupportedError(`${field}: ${JSON.stringify(list)} is not a list like "0-3,7"`, field);
    const first = Number(m[1]);
    const last = m[2] === undefined ? first : Number(m[2]);
    if (last < first) throw new UnsupportedError(`${field}: range ${part} ends before it starts`, field);
    if (last >= bits) throw new UnsupportedError(`${field}: ${last} is past the ${bits} koci can name`, field);
    for (let n = first; n <= last; n++) mask[n >> 3] |= 1 << (n & 7);
  }
  return mask;
}

/** set_mempolicy's mode (with its flags) and nodemask; the kernel judges which modes need nodes */
export function mempolicyArgs(p: LinuxMemoryPolicy): { mode: number; mask: Buffer | null } {
  let mode = lookup(C.MPOL_MODES, p.mode, 'linux.memoryPolicy.mode');
  for (const f of p.flags ?? []) mode |= lookup(C.MPOL_FLAGS, f, 'linux.memoryPolicy.flags');
  if (p.nodes === undefined || p.nodes === '') return { mode, mask: null };
  return { mode, mask: listMask(p.nodes, C.MPOL_MAX_NODES, 'linux.memoryPolicy.nodes') };
}

/** the CPU mask for one of process.execCPUAffinity's lists */
export function affinityMask(list: string, which: 'initial' | 'final'): Buffer {
  return listMask(list, C.CPU_SETSIZE, `process.execCPUAffinity.${which}`);
}

/**
 * Check every field now (a config koci cannot honour is refused before
 * anything exists): the same conversions the process runs later.
 */
export function checkScheduling(proc: Process | undefined, linux: Linux | undefined): void {
  if (proc?.scheduler) schedAttr(proc.scheduler);
  if (proc?.ioPriority) ioprioValue(proc.ioPriority);
  if (linux?.personality) personaOf(linux.personality);
  if (linux?.memoryPolicy) mempolicyArgs(linux.memoryPolicy);
  if (proc?.execCPUAffinity?.initial) affinityMask(proc.execCPUAffinity.initial, 'initial');
  if (proc?.execCPUAffinity?.final) affinityMask(proc.execCPUAffinity.final, 'final');
}

/**
 * process.execCPUAffinity, for `exec` only (the spec leaves the init out):
 * `initial` before the process joins the container's cgroups, `final` after
 * (joining a cpuset may reset the affinity)
 */
export function applyExecAffinity(proc: Process, which: 'initial' | 'final', run: Step): void {
  const list = proc.execCPUAffinity?.[which];
  if (list) run(`execCPUAffinity.${which}`, () => sched.schedSetaffinity(affinityMask(list, which)));
}

/** apply the four to the calling process, each as its own step */
export function applyScheduling(proc: Process, linux: Linux | undefined, run: Step): void {
  if (proc.scheduler) run('scheduler', () => sched.schedSetattr(schedAttr(proc.scheduler!)));
  if (proc.ioPriority) run('ioPriority', () => sched.ioprioSet(ioprioValue(proc.ioPriority!)));
  if (linux?.personality) run('personality', () => sched.personality(personaOf(linux.personality!)));
  if (linux?.memoryPolicy) {
    run('memoryPolicy', () => {
      const { mode, mask } = mempolicyArgs(linux.memoryPolicy!);
      sched.setMempolicy(mode, mask);
    });
  }
}
