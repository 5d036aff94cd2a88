/**
 * The freezer, through plain cgroup files: the v1 freezer controller
 * (freezer.state THAWED / FREEZING / FROZEN) where the host has one, else the
 * cgroup2 core files (cgroup.freeze, with cgroup.events `frozen 0|1` telling
 * when the freeze has taken hold). On a hybrid host the v1 freezer is used,
 * as runc does; either one being frozen counts as frozen.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { KociError } from '../errors';
import { sleepSync } from '../sleep';


function read(path: string): string | undefined {
  if (!existsSync(path)) return undefined; // most leaves lack most of these files: no exception for each
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}

/** the leaf holding the v1 freezer controller, if any */
export function v1FreezerDir(leaves: readonly string[]): string | undefined {
  return leaves.find((d) => read(join(d, 'freezer.state')) !== undefined);
}

/** the leaf in a cgroup2 hierarchy (it has cgroup.freeze), if any */
export function v2FreezerDir(leaves: readonly string[]): string | undefined {
  return leaves.find((d) => read(join(d, 'cgroup.freeze')) !== undefined);
}

/** v1: does freezer.state read FROZEN */
export function v1Frozen(dir: string): boolean {
  return read(join(dir, 'freezer.state'))?.trim() === 'FROZEN';
}

/** v2: does cgroup.events say `frozen 1` */
export function v2Frozen(dir: string): boolean {
  return /^frozen 1$/m.test(read(join(dir, 'cgroup.events')) ?? '');
}

/**
 * Is the container frozen? Cheap enough for every `state`: a read of
 * freezer.state per leaf until the v1 freezer is found, then cgroup.events.
 */
export function isFrozen(leaves: readonly string[]): boolean {
  for (const d of leaves) {
    const s = read(join(d, 'freezer.state'));
    if (s?.trim() === 'FROZEN') return true;
    const ev = read(join(d, 'cgroup.events'));
    if (ev !== undefined && /^frozen 1$/m.test(ev)) return true;
  }
  return false;
}

/** freeze a v1 freezer cgroup and wait until it reads FROZEN (runc retries the write while FREEZING) */
export function freezeV1(dir: string, timeoutMs = 10_000): void {
  const file = join(dir, 'freezer.state');
  const deadline = Date.now() + timeoutMs;
  for (let i = 0; ; i++) {
    // rewriting FROZEN nudges tasks that were forking when the freeze began
    if (i % 25 === 0) writeFileSync(file, 'FROZEN');
    if (v1Frozen(dir)) return;
    if (Date.now() > deadline) {
      writeFileSync(file, 'THAWED');
      throw new KociError(`freezing ${dir} timed out (freezer.state ${read(file)?.trim()})`);
    }
    sleepSync(i < 10 ? 1 : 10);
  }
}

export function thawV1(dir: string): void {
  writeFileSync(join(dir, 'freezer.state'), 'THAWED');
  for (let i = 0; i < 1000 && read(join(dir, 'freezer.state'))?.trim() !== 'THAWED'; i++) sleepSync(2);
}

/** freeze through cgroup.freeze and wait for cgroup.events to report `frozen 1` */
export function freezeV2(dir: string, timeoutMs = 10_000): void {
  writeFileSync(join(dir, 'cgroup.freeze'), '1');
  const deadline = Date.now() + timeoutMs;
  for (let i = 0; !v2Frozen(dir); i++) {
    if (Date.now() > deadline) {
      writeFileSync(join(dir, 'cgroup.freeze'), '0');
      throw new KociError(`freezing ${dir} timed out (cgroup.events does not say frozen 1)`);
    }
    sleepSync(i < 10 ? 1 : 10);
  }
}

export function thawV2(dir: string): void {
  writeFileSync(join(dir, 'cgroup.freeze'), '0');
  for (let i = 0; i < 1000 && v2Frozen(dir); i++) sleepSync(2);
}

/** freeze the container's processes: the v1 freezer when the host has one, else cgroup.freeze */
export function freeze(leaves: readonly string[]): void {
  const v1 = v1FreezerDir(leaves);
  if (v1) return freezeV1(v1);
  const v2 = v2FreezerDir(leaves);
  if (v2) return freezeV2(v2);
  throw new KociError('no freezer: neither a v1 freezer hierarchy nor cgroup.freeze in the container cgroups');
}

/** thaw whatever is frozen (both the v1 freezer and cgroup.freeze on a hybrid host); errors only when nothing could be thawed */
export function thaw(leaves: readonly string[]): void {
  const v1 = v1FreezerDir(leaves);
  const v2 = v2FreezerDir(leaves);
  if (!v1 && !v2) throw new KociError('no freezer: neither a v1 freezer hierarchy nor cgroup.freeze in the container cgroups');
  if (v1) thawV1(v1);
  if (v2 && read(join(v2, 'cgroup.freeze'))?.trim() === '1') thawV2(v2);
}
