/**
 * Test fixtures: a fresh bundle per test (a copy of the busybox rootfs made
 * by scripts/test-setup.js), unique container IDs, a private state root, and
 * teardown that force-deletes whatever the test created, even when it fails.
 */
import { spawnSync, type SpawnSyncOptions } from 'node:child_process';
import { closeSync, cpSync, existsSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { defaultSpec } from '../../lib/spec/default';
import type { Spec } from '../../lib/spec/types';

export const repo = resolve(__dirname, '..', '..');
export const KOCI = join(repo, 'dist', 'lib', 'cli', 'main.js');
export const ROOTFS = join(repo, '.cache', 'busybox-rootfs');

interface Teardown {
  teardown(fn: () => void | Promise<void>): void;
  skip?: unknown;
}

let counter = 0;
export function uniqueId(prefix = 't'): string {
  return `${prefix}-${process.pid}-${Date.now().toString(36)}-${counter++}`;
}

/** why privileged tests cannot run here, or undefined when they can */
export function rootSkipReason(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root (real namespaces, mounts and cgroups)';
  if (!existsSync(join(ROOTFS, 'bin', 'sh'))) return `no busybox rootfs at ${ROOTFS}: run node scripts/test-setup.js`;
  if (!existsSync(KOCI)) return `koci is not built (${KOCI}): run npm run build`;
  return undefined;
}

export interface Bundle {
  dir: string;
  rootfs: string;
  spec: Spec;
  /** rewrite config.json after changing spec */
  save(): void;
}

/** a bundle whose container runs `args` (busybox sh by default), terminal off */
export function makeBundle(t: Teardown, args: string[] = ['sh', '-c', 'true'], edit?: (s: Spec) => void): Bundle {
  const dir = mkdtempSync(join(tmpdir(), 'koci-bundle-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const rootfs = join(dir, 'rootfs');
  cpSync(ROOTFS, rootfs, { recursive: true, verbatimSymlinks: true });
  const spec = defaultSpec();
  spec.process!.terminal = false;
  spec.process!.args = args;
  edit?.(spec);
  const b: Bundle = { dir, rootfs, spec, save: () => writeFileSync(join(dir, 'config.json'), JSON.stringify(b.spec, null, 2)) };
  b.save();
  return b;
}

export interface Result {
  status: number | null;
  stdout: string;
  stderr: string;
}

export interface Koci {
  root: string;
  /** run the koci CLI with this test's state root */
  (args: string[], opts?: SpawnSyncOptions): Result;
}

/** a koci CLI bound to a private state root; teardown force-deletes every container left in it */
export function kociCli(t: Teardown): Koci {
  const root = mkdtempSync(join(tmpdir(), 'koci-root-'));
  // stdout/stderr go to files, not pipes: a created container keeps the
  // caller's stdio open, and spawnSync would wait for a pipe's EOF until the
  // container exits
  const io = mkdtempSync(join(tmpdir(), 'koci-io-'));
  t.teardown(() => rmSync(io, { recursive: true, force: true }));
  let n = 0;
  const run = ((args: string[], opts: SpawnSyncOptions = {}) => {
    const out = join(io, `${n}.out`);
    const err = join(io, `${n++}.err`);
    const fds = [openSync(out, 'w'), openSync(err, 'w')];
    try {
      const r = spawnSync(KOCI, ['--root', root, ...args], { timeout: 60_000, stdio: ['ignore', fds[0], fds[1]], ...opts });
      return { status: r.status, stdout: readFileSync(out, 'utf8'), stderr: readFileSync(err, 'utf8') };
    } finally {
      fds.forEach((fd) => closeSync(fd));
    }
  }) as Koci;
  run.root = root;
  t.teardown(() => {
    for (const id of existsSync(root) ? readdirSync(root) : []) {
      spawnSync(KOCI, ['--root', root, 'delete', '--force', id], { encoding: 'utf8' });
    }
    rmSync(root, { recursive: true, force: true });
  });
  return run;
}

/** state JSON of a container */
export function stateOf(koci: Koci, id: string): Record<string, unknown> {
  const r = koci(['state', id]);
  if (r.status !== 0) throw new Error(`state ${id} failed: ${r.stderr}`);
  return JSON.parse(r.stdout) as Record<string, unknown>;
}
