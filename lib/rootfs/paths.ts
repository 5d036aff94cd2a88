/**
 * Resolving container paths inside the rootfs the way the container will see
 * them: symlinks are followed relative to the rootfs, and `..` never climbs
 * above it, so a hostile symlink in an image cannot point a mount at the host.
 */
import { lstatSync, mkdirSync, readlinkSync, writeFileSync } from 'node:fs';
import { SetupError } from '../errors';

const MAX_LINKS = 255;

/** host path of `unsafe` (a path inside the container) under `root`, symlinks resolved in root */
export function secureJoin(root: string, unsafe: string): string {
  const parts: string[] = [];
  let pending = unsafe.split('/');
  let links = 0;
  while (pending.length) {
    const c = pending.shift() as string;
    if (c === '' || c === '.') continue;
    if (c === '..') {
      parts.pop();
      continue;
    }
    const candidate = root + '/' + [...parts, c].join('/');
    let isLink = false;
    try {
      isLink = lstatSync(candidate).isSymbolicLink();
    } catch {
      // missing: the rest is taken literally (it will be created)
    }
    if (!isLink) {
      parts.push(c);
      continue;
    }
    if (++links > MAX_LINKS) throw new SetupError('resolve path', 'too many levels of symbolic links', unsafe);
    const target = readlinkSync(candidate);
    if (target.startsWith('/')) parts.length = 0;
    pending = [...target.split('/'), ...pending];
  }
  return parts.length ? root + '/' + parts.join('/') : root;
}

/** create the directories of a container path (each step re-resolved inside root); returns the host path */
export function mkdirInRoot(root: string, unsafe: string, mode = 0o755): string {
  let sofar = '';
  for (const c of unsafe.split('/')) {
    if (c === '' || c === '.') continue;
    sofar += '/' + c;
    const p = secureJoin(root, sofar);
    try {
      if (!lstatSync(p).isDirectory()) throw new SetupError('create mount point', 'not a directory', sofar);
    } catch (e) {
      if (e instanceof SetupError) throw e;
      mkdirSync(p, { mode });
    }
  }
  return secureJoin(root, unsafe);
}

/** make sure a file exists at a container path (for bind mounts of files); returns the host path */
export function touchInRoot(root: string, unsafe: string): string {
  const dir = unsafe.slice(0, unsafe.lastIndexOf('/')) || '/';
  mkdirInRoot(root, dir);
  const p = secureJoin(root, unsafe);
  try {
    lstatSync(p);
  } catch {
    writeFileSync(p, '', { mode: 0o644, flag: 'wx' });
  }
  return p;
}
