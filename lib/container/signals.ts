/** Signal names and numbers as runc accepts them: KILL, SIGKILL, 9. */
import { constants } from 'node:os';
import { KociError } from '../errors';

const signals = constants.signals as Record<string, number>;

export class InvalidSignalError extends KociError {
  override name = 'InvalidSignalError';
  override code = 'EKOCI_SIGNAL';
  constructor(readonly signal: string) {
    super(`invalid signal ${JSON.stringify(signal)}`);
  }
}

export function parseSignal(s: string | number): number {
  if (typeof s === 'number' || /^\d+$/.test(s)) {
    const n = Number(s);
    if (n >= 1 && n <= 64) return n;
    throw new InvalidSignalError(String(s));
  }
  const up = s.toUpperCase();
  const name = up.startsWith('SIG') ? up : `SIG${up}`;
  const m = /^SIGRTMIN(?:\+(\d+))?$/.exec(name) ?? /^SIGRTMAX(?:-(\d+))?$/.exec(name);
  if (m) return name.startsWith('SIGRTMIN') ? 34 + Number(m[1] ?? 0) : 64 - Number(m[1] ?? 0);
  const n = signals[name];
  if (n === undefined) throw new InvalidSignalError(s);
  return n;
}
