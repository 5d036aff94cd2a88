/**
 * ps: the container's processes, from its cgroup (host PIDs, nested cgroups
 * included). runc pipes `ps -ef` through a filter; koci runs no programs, so
 * the table's columns (those of `ps -ef`) are built from /proc.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { IncorrectStatusError } from '../errors';
import { StateStore } from '../state/store';

/** every PID in the first readable leaf and the cgroups below it, sorted */
export function containerPids(leaves: readonly string[]): number[] {
  const walk = (dir: string, out: Set<number>): boolean => {
    let procs: string;
    try {
      procs = readFileSync(join(dir, 'cgroup.procs'), 'utf8');
    } catch {
      return false;
    }
    for (const p of procs.split('\n')) if (p) out.add(Number(p));
    try {
      for (const e of readdirSync(dir, { withFileTypes: true })) if (e.isDirectory()) walk(join(dir, e.name), out);
    } catch {
      /* removed meanwhile */
    }
    return true;
  };
  for (const d of leaves) {
    const out = new Set<number>();
    if (walk(d, out)) return [...out].sort((a, b) => a - b);
  }
  return [];
}

export interface ProcessInfo {
  uid: number;
  user: string;
  pid: number;
  ppid: number;
  /** integer percent of one CPU over the process's lifetime, as ps's C */
  c: number;
  /** start time, seconds since the epoch */
  startTime: number;
  tty: string;
  /** user + system CPU time, seconds */
  cpuSeconds: number;
  cmd: string;
}

const HZ = 100; // USER_HZ: fixed at 100 in the Linux ABI for /proc

let bootTime: number | undefined;
function btime(): number {
  if (bootTime === undefined) {
    const m = /^btime (\d+)$/m.exec(readFileSync('/proc/stat', 'utf8'));
    bootTime = m ? Number(m[1]) : 0;
  }
  return bootTime;
}

function uptime(): number {
  return Number(readFileSync('/proc/uptime', 'utf8').split(' ')[0]);
}

function userNames(): Map<number, string> {
  const out = new Map<number, string>();
  try {
    for (const line of readFileSync('/etc/passwd', 'utf8').split('\n')) {
      const f = line.split(':');
      if (f.length >= 3 && !out.has(Number(f[2]))) out.set(Number(f[2]), f[0]);
    }
  } catch {
    /* numeric UIDs then */
  }
  return out;
}

function ttyName(nr: number): string {
  if (nr === 0) return '?';
  const major = (nr >> 8) & 0xfff;
  const minor = (nr & 0xff) | ((nr >> 12) & 0xfff00);
  if (major === 136) return `pts/${minor}`;
  if (major === 4 && minor < 64) return `tty${minor}`;
  if (major === 4) return `ttyS${minor - 64}`;
  return `${major}:${minor}`;
}

/** /proc facts about one process, or undefined when it is gone */
export function processInfo(pid: number, names = userNames()): ProcessInfo | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    const comm = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
    // fields from 3 (state) on, so field n is f[n - 3]
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const uid = Number(/^Uid:\s+(\d+)/m.exec(status)?.[1] ?? 0);
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'latin1').replace(/\0+$/, '').split('\0').join(' ');
    const cpuSeconds = (Number(f[14 - 3]) + Number(f[15 - 3])) / HZ;
    const startedAfterBoot = Number(f[22 - 3]) / HZ;
    const elapsed = Math.max(uptime() - startedAfterBoot, 0);
    return {
      uid,
      user: names.get(uid) ?? String(uid),
      pid,
      ppid: Number(f[4 - 3]),
      c: elapsed > 0 ? Math.floor((cpuSeconds / elapsed) * 100) : 0,
      startTime: btime() + Math.floor(startedAfterBoot),
      tty: ttyName(Number(f[7 - 3])),
      cpuSeconds,
      cmd: cmdline || `[${comm}]`,
    };
  } catch {
    return undefined;
  }
}

function clock(sec: number): string {
  const s = Math.floor(sec);
  const days = Math.floor(s / 86400);
  const hms = [Math.floor((s % 86400) / 3600), Math.floor((s % 3600) / 60), s % 60].map((n) => String(n).padStart(2, '0')).join(':');
  return days ? `${days}-${hms}` : hms;
}

function stime(epoch: number): string {
  const d = new Date(epoch * 1000);
  const now = new Date();
  if (now.getTime() - d.getTime() < 24 * 3600 * 1000) return `${String(d.getHours()).padStart(2, '0')}:${String(d.getMinutes()).padStart(2, '0')}`;
  return `${d.toLocaleString('en-US', { month: 'short' })}${String(d.getDate()).padStart(2, '0')}`;
}

/** `ps -ef`-like table: UID PID PPID C STIME TTY TIME CMD */
export function psTable(infos: readonly ProcessInfo[]): string {
  const rows = [['UID', 'PID', 'PPID', 'C', 'STIME', 'TTY', 'TIME', 'CMD'], ...infos.map((p) => [p.user, String(p.pid), String(p.ppid), String(p.c), stime(p.startTime), p.tty, clock(p.cpuSeconds), p.cmd])];
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  const right = new Set([1, 2, 3]);
  return rows.map((r) => r.map((v, i) => (i === r.length - 1 ? v : right.has(i) ? v.padStart(widths[i]) : v.padEnd(widths[i]))).join(' ')).join('\n') + '\n';
}

/** the host PIDs of a container's processes (created, running or paused) */
export function psContainer(store: StateStore, id: string): number[] {
  const rec = store.read(id);
  const status = store.status(rec);
  if (status === 'stopped' || status === 'creating') throw new IncorrectStatusError(id, 'ps', status, 'container not running');
  return containerPids(rec.cgroupLeaves ?? []);
}

export function psInfo(pids: readonly number[]): ProcessInfo[] {
  const names = userNames();
  return pids.map((p) => processInfo(p, names)).filter((p): p is ProcessInfo => p !== undefined);
}
