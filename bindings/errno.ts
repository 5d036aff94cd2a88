/** errno numbers <-> names and messages, from Node's own libuv table for this platform. */
import { getSystemErrorMap } from 'node:util';

const map = getSystemErrorMap(); // key: -errno, value: [name, message]

export function errnoName(errno: number): string {
  return map.get(-Math.abs(errno))?.[0] ?? `E${errno}`;
}

export function errnoMessage(errno: number): string {
  return map.get(-Math.abs(errno))?.[1] ?? `errno ${errno}`;
}

/** errno number for a name such as 'ENOENT' (undefined when unknown). */
export function errnoNumber(name: string): number | undefined {
  for (const [neg, [n]] of map) if (n === name) return -neg;
  return undefined;
}
