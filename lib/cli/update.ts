/**
 * koci update [flags] ID: runc's flags, or -r/--resources FILE ('-' for
 * stdin) holding a LinuxResources document; flags override the file.
 */
import { readFileSync } from 'node:fs';
import { updateContainer } from '../container/update';
import type { LinuxResources } from '../spec/types';
import { parseArgs, UsageError } from './args';
import { type CliContext, positional } from './context';

const FLAGS = {
  resources: { names: ['resources', 'r'], value: true },
  memory: { names: ['memory', 'm'], value: true },
  memoryReservation: { names: ['memory-reservation'], value: true },
  memorySwap: { names: ['memory-swap'], value: true },
  kernelMemory: { names: ['kernel-memory'], value: true },
  kernelMemoryTCP: { names: ['kernel-memory-tcp'], value: true },
  cpuShares: { names: ['cpu-shares'], value: true },
  cpuQuota: { names: ['cpu-quota'], value: true },
  cpuPeriod: { names: ['cpu-period'], value: true },
  cpuBurst: { names: ['cpu-burst'], value: true },
  cpuRtRuntime: { names: ['cpu-rt-runtime'], value: true },
  cpuRtPeriod: { names: ['cpu-rt-period'], value: true },
  cpusetCpus: { names: ['cpuset-cpus'], value: true },
  cpusetMems: { names: ['cpuset-mems'], value: true },
  pidsLimit: { names: ['pids-limit'], value: true },
  blkioWeight: { names: ['blkio-weight'], value: true },
} as const;

/** a byte size as runc takes it: 1048576, 512k, 32m, 1g (binary units), or -1 */
export function parseBytes(s: string, flag: string): number {
  const m = /^(-1|\d+(?:\.\d+)?)\s*([kmgtp]?)i?b?$/i.exec(s.trim());
  if (!m) throw new UsageError(`--${flag}: not a size: ${JSON.stringify(s)}`);
  const n = Number(m[1]) * 1024 ** ' kmgtp'.indexOf((m[2] || ' ').toLowerCase());
  return Math.floor(n);
}

function parseInt10(s: string, flag: string): number {
  if (!/^-?\d+$/.test(s.trim())) throw new UsageError(`--${flag}: not an integer: ${JSON.stringify(s)}`);
  return Number(s);
}

export function resourcesFromFlags(o: Record<string, string | boolean>, read: (file: string) => string = (f) => readFileSync(f === '-' ? 0 : f, 'utf8')): LinuxResources {
  let r: LinuxResources = {};
  if (typeof o.resources === 'string') {
    try {
      r = JSON.parse(read(o.resources)) as LinuxResources;
    } catch (e) {
      throw new UsageError(`--resources ${o.resources}: ${(e as Error).message}`);
    }
    if (!r || typeof r !== 'object' || Array.isArray(r)) throw new UsageError(`--resources ${o.resources}: not a LinuxResources object`);
  }
  const str = (k: keyof typeof FLAGS) => (typeof o[k] === 'string' ? (o[k] as string) : undefined);
  const bytes = (k: keyof typeof FLAGS) => (str(k) !== undefined ? parseBytes(str(k)!, FLAGS[k].names[0]) : undefined);
  const num = (k: keyof typeof FLAGS) => (str(k) !== undefined ? parseInt10(str(k)!, FLAGS[k].names[0]) : undefined);
  const set = <T extends object>(obj: T, k: keyof T, v: unknown) => {
    if (v !== undefined) (obj as Record<keyof T, unknown>)[k] = v;
  };
  const memory = { ...(r.memory ?? {}) };
  set(memory, 'limit', bytes('memory'));
  set(memory, 'reservation', bytes('memoryReservation'));
  set(memory, 'swap', bytes('memorySwap'));
  set(memory, 'kernel', bytes('kernelMemory'));
  set(memory, 'kernelTCP', bytes('kernelMemoryTCP'));
  if (Object.keys(memory).length) r.memory = memory;
  const cpu = { ...(r.cpu ?? {}) };
  set(cpu, 'shares', num('cpuShares'));
  set(cpu, 'quota', num('cpuQuota'));
  set(cpu, 'period', num('cpuPeriod'));
  set(cpu, 'burst', num('cpuBurst'));
  set(cpu, 'realtimeRuntime', num('cpuRtRuntime'));
  set(cpu, 'realtimePeriod', num('cpuRtPeriod'));
  set(cpu, 'cpus', str('cpusetCpus'));
  set(cpu, 'mems', str('cpusetMems'));
  if (Object.keys(cpu).length) r.cpu = cpu;
  if (str('pidsLimit') !== undefined) r.pids = { limit: num('pidsLimit') };
  if (str('blkioWeight') !== undefined) r.blockIO = { ...(r.blockIO ?? {}), weight: num('blkioWeight') };
  return r;
}

export function update(ctx: CliContext, argv: string[]): number {
  const { options, rest } = parseArgs(argv, FLAGS, false);
  const [id] = positional(rest, ['container-id']);
  const r = resourcesFromFlags(options);
  if (!Object.keys(r).length) throw new UsageError('update: nothing to change (give --memory, --cpu-quota, ... or --resources FILE)');
  updateContainer(ctx.store(), id, r);
  return 0;
}
