/** Waiting on processes from tests. */
import { existsSync, readdirSync, readFileSync } from 'node:fs';

/** the process exists and is not a zombie */
export const alive = (pid: number): boolean => existsSync(`/proc/${pid}`) && !/^State:\s+Z/m.test(readFileSync(`/proc/${pid}/status`, 'utf8'));

/** poll `what` every 20 ms until it holds or `ms` pass; its last answer */
export async function until(what: () => boolean | Promise<boolean>, ms = 10_000): Promise<boolean> {
  for (const end = Date.now() + ms; Date.now() < end; await new Promise((r) => setTimeout(r, 20))) if (await what()) return true;
  return what();
}

/** the children of a process, by /proc (one gone meanwhile is skipped) */
export function childrenOf(ppid: number): number[] {
  const out: number[] = [];
  for (const p of readdirSync('/proc').filter((x) => /^\d+$/.test(x))) {
    try {
      const stat = readFileSync(`/proc/${p}/stat`, 'utf8');
      if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === ppid) out.push(Number(p));
    } catch {
      /* gone meanwhile */
    }
  }
  return out;
}
