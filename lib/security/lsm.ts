/**
 * LSM labels: process.apparmorProfile, process.selinuxLabel, linux.mountLabel.
 * Refused before anything is created when the host's LSM is not active (as
 * runc's validator does); otherwise the exec label is written just before
 * execve, so it applies to the user's program and not to koci's init.
 * linux.mountLabel becomes the context= of the filesystems koci mounts (rootfs/mounts.ts).
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { UnsupportedError } from '../errors';
import type { Spec } from '../spec/types';

export function apparmorEnabled(): boolean {
  try {
    return readFileSync('/sys/module/apparmor/parameters/enabled', 'utf8').trim() === 'Y';
  } catch {
    return false;
  }
}

export function selinuxEnabled(): boolean {
  return existsSync('/sys/fs/selinux/enforce');
}

/** throws when the config asks for a label this host cannot apply */
export function checkLsm(config: Spec): void {
  if (config.process?.apparmorProfile && !apparmorEnabled()) {
    throw new UnsupportedError(`process.apparmorProfile is ${JSON.stringify(config.process.apparmorProfile)} but AppArmor is not enabled on this host`);
  }
  for (const [what, label] of [
    ['process.selinuxLabel', config.process?.selinuxLabel],
    ['linux.mountLabel', config.linux?.mountLabel],
  ] as const) {
    if (label && !selinuxEnabled()) throw new UnsupportedError(`${what} is ${JSON.stringify(label)} but SELinux is not enabled on this host`);
  }

}

/** in the init, just before execve: the label the user's program runs under */
export function setExecLabel(config: Spec): void {
  const profile = config.process?.apparmorProfile;
  if (profile) {
    const attr = existsSync('/proc/self/attr/apparmor/exec') ? '/proc/self/attr/apparmor/exec' : '/proc/self/attr/exec';
    writeFileSync(attr, `exec ${profile}`);
  }
  const label = config.process?.selinuxLabel;
  if (label) writeFileSync('/proc/self/attr/exec', label);
}
