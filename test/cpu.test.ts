/**
 * The cpu controller, measured rather than read back: shares split one
 * contended CPU in their ratio, and a CFS quota caps what a busy loop gets.
 * The assertions are on CPU time the kernel accounted to each container
 * (cpuacct.usage on v1, cpu.stat usage_usec on v2) over a window of wall
 * time, not on how fast koci is.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { type Koci, kociCli, makeBundle, rootSkipReason, stateOf, uniqueId } from './helpers/fixtures';
import type { LinuxCPU } from '../lib/spec/types';

const skip = rootSkipReason();
const V1 = existsSync('/sys/fs/cgroup/cpu/cpu.shares');
const PURE_V2 = existsSync('/sys/fs/cgroup/cgroup.controllers');
const realSkip = skip ?? (V1 || PURE_V2 ? undefined : 'no cpu cgroup controller found');
if (realSkip) t.comment(`skipping cpu measurements: ${realSkip}`);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** a cgroup file of a live process: its v1 controller hierarchy, or its cgroup2 directory */
function cgFile(pid: number, controller: string, file: string): string {
  const lines = readFileSync(`/proc/${pid}/cgroup`, 'utf8').split('\n');
  if (PURE_V2) return join('/sys/fs/cgroup', lines.find((l) => l.startsWith('0::'))!.slice(3), file);
  const line = lines.find((l) => l.split(':')[1]?.split(',').includes(controller));
  if (!line) throw new Error(`no ${controller} hierarchy for pid ${pid}`);
  return join('/sys/fs/cgroup', controller, line.split(':')[2], file);
}

function cpuStat(pid: number): Record<string, number> {
  const out: Record<string, number> = {};
  for (const l of readFileSync(cgFile(pid, 'cpu', 'cpu.stat'), 'utf8').trim().split('\n')) {
    const [k, v] = l.split(' ');
    out[k] = Number(v);
  }
  return out;
}

/** CPU time the container's cgroup has used, in ns */
function usageNs(pid: number): number {
  if (PURE_V2) return cpuStat(pid).usage_usec * 1000;
  return Number(readFileSync(cgFile(pid, 'cpuacct', 'cpuacct.usage'), 'utf8').trim());
}

/** a running container spinning a busy loop in its init (no child: the init's cgroup is all of it) */
function burner(t: Test, koci: Koci, cpu: LinuxCPU): { id: string; pid: number } {
  const b = makeBundle(t, ['sh', '-c', 'while :; do :; done'], (s) => (s.linux!.resources = { ...s.linux!.resources, cpu }));
  const id = uniqueId('cpu');
  const r = koci(['run', '--detach', '--bundle', b.dir, id]);
  if (r.status !== 0) throw new Error(`run failed: ${r.stderr}`);
  return { id, pid: stateOf(koci, id).pid as number };
}

t.test('cpu shares 1024 vs 256 on one CPU: the usage follows the shares', { skip: realSkip }, async (t) => {
  const koci = kociCli(t);
  const hi = burner(t, koci, { shares: 1024, cpus: '0' });
  const lo = burner(t, koci, { shares: 256, cpus: '0' });
  t.teardown(() => [hi, lo].forEach((c) => koci(['delete', '--force', c.id])));
  for (const c of [hi, lo]) t.match(readFileSync(`/proc/${c.pid}/status`, 'utf8'), /^Cpus_allowed_list:\s+0$/m, 'pinned to CPU 0');
  // the window opens once both spin, so neither has the CPU to itself in it
  const a0 = usageNs(hi.pid);
  const b0 = usageNs(lo.pid);
  await sleep(2000);
  const a = usageNs(hi.pid) - a0;
  const b = usageNs(lo.pid) - b0;
  const ratio = a / b;
  t.comment(`2 s on CPU 0: shares 1024 used ${(a / 1e6).toFixed(0)} ms, shares 256 used ${(b / 1e6).toFixed(0)} ms: ${ratio.toFixed(2)}x (ideal 4x)`);
  t.ok(b > 0, 'the 256 one still runs');
  // Ideal 4x (v2: weights 39 vs 10, 3.9x); shares ignored would give 1x. 2x is the geometric middle:
  // other load on CPU 0 competes with the two groups as a whole and leaves their ratio alone, and
  // over 2 s of CFS slices (a few ms each) the ratio is within a few percent of ideal.
  t.ok(ratio > 2, `the 1024 container got clearly more CPU (${ratio.toFixed(2)}x > 2x)`);
});

t.test('cpu quota 20000/period 100000 caps a busy loop near 20% of a CPU', { skip: realSkip }, async (t) => {
  const koci = kociCli(t);
  const capped = burner(t, koci, { quota: 20000, period: 100000 });
  const free = burner(t, koci, {});
  t.teardown(() => [capped, free].forEach((c) => koci(['delete', '--force', c.id])));
  const throttled0 = cpuStat(capped.pid).nr_throttled;
  const c0 = usageNs(capped.pid);
  const f0 = usageNs(free.pid);
  const w0 = process.hrtime.bigint();
  await sleep(1500);
  const c = usageNs(capped.pid) - c0;
  const f = usageNs(free.pid) - f0;
  const wall = Number(process.hrtime.bigint() - w0);
  const throttled = cpuStat(capped.pid).nr_throttled - throttled0;
  t.comment(
    `over ${(wall / 1e6).toFixed(0)} ms: quota 20% used ${((100 * c) / wall).toFixed(1)}% of a CPU (throttled in ${throttled} periods); ` +
      `the same loop without a quota ${((100 * f) / wall).toFixed(1)}%`,
  );
  t.ok(c > 0, 'the capped loop runs');
  // 20% is the cap (plus at most one period's slack at each end of the window); an unthrottled
  // loop gets ~100% of a CPU. 50% leaves room for the slack and still fails if the quota is ignored
  // on an idle CPU; on a busy one, nr_throttled below says whether the quota acted.
  t.ok(c / wall < 0.5, `well below 50% of a CPU (${((100 * c) / wall).toFixed(1)}%)`);
  t.ok(throttled > 0, `cpu.stat nr_throttled grew (${throttled})`);
});
