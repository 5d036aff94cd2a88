/**
 * linux.sysctl, written under the container's /proc/sys after pivot_root.
 * Which keys a container may set (namespaced ones, with their namespace) is
 * checked before anything is created, in spec/semantic.ts.
 */
import { writeFileSync } from 'node:fs';
import { SetupError } from '../errors';

export function applySysctl(sysctl: Readonly<Record<string, string>>): void {
  for (const [key, value] of Object.entries(sysctl)) {
    // net.ipv4.ip_forward, or net/ipv4/conf/eth0.100/forwarding where a part holds a dot;
    // ".." never reaches here (semantic check)
    const path = `/proc/sys/${key.includes('/') ? key : key.replace(/\./g, '/')}`;
    try {
      writeFileSync(path, value);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code ?? 'error';
      throw new SetupError('sysctl', `${key}=${value}: write ${path}: ${code}`, path);
    }
  }
}
