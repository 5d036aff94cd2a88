/**
 * Is the container's init still the process we started? A PID alone can be
 * recycled, so a process counts as ours only when its start time (field 22
 * of /proc/<pid>/stat) matches the one recorded at create.
 */
import { existsSync, readFileSync } from 'node:fs';

export interface ProcStat {
  state: string;
  startTime: string;
  ppid: number;
}

export function procStat(pid: number): ProcStat | undefined {
  let s: string;
  const file = `/proc/${pid}/stat`;
  if (!existsSync(file)) return undefined; // gone: no exception to make
  try {
    s = readFileSync(file, 'latin1');
  } catch {
    return undefined;
  }
  // comm (field 2) may contain spaces and parentheses: fields resume after the last ')'
  const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
  return { state: f[0], ppid: Number(f[1]), startTime: f[19] };
}

/** alive and not a zombie, and the same process (start time) when one is given */
export function isAlive(pid: number, startTime?: string): boolean {
  const st = procStat(pid);
  if (!st || st.state === 'Z' || st.state === 'X') return false;
  return startTime === undefined || st.startTime === startTime;
}
