/**
 * Read and check an OCI bundle: its directory, config.json and rootfs.
 * Synchronous on purpose: it runs on every CLI start, where one short
 * sequence of sync calls is faster than promise plumbing.
 */
import { readFileSync, realpathSync, statSync } from 'node:fs';
import { isAbsolute, join, resolve } from 'node:path';
import { BundleError, InvalidSpecError } from '../errors';
import type { Spec } from './types';
import { validateConfig } from './validate';

export interface Bundle {
  /** absolute, symlinks resolved */
  bundle: string;
  config: Spec;
  /** absolute path of root.path (relative paths are taken from the bundle) */
  rootfs: string;
}

function errnoCode(e: unknown): string | undefined {
  return (e as NodeJS.ErrnoException | undefined)?.code;
}

function readConfig(configPath: string): string {
  try {
    return readFileSync(configPath, 'utf8');
  } catch (e) {
    if (errnoCode(e) === 'ENOENT') throw new BundleError(configPath, 'config.json does not exist');
    if (errnoCode(e) === 'EISDIR') throw new BundleError(configPath, 'config.json is not a file');
    throw new BundleError(configPath, `cannot read config.json (${errnoCode(e) ?? (e as Error).message})`);
  }
}

export function loadBundle(bundleDir: string): Bundle {
  let bundle: string;
  try {
    bundle = realpathSync(resolve(bundleDir));
  } catch {
    throw new BundleError(resolve(bundleDir), 'bundle directory does not exist');
  }
  if (!statSync(bundle).isDirectory()) throw new BundleError(bundle, 'bundle is not a directory');

  const configPath = join(bundle, 'config.json');
  const text = readConfig(configPath);

  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (e) {
    // V8's message carries the position ("... at position 12").
    throw new InvalidSpecError('config.json', [{ pointer: '', rule: 'json', message: `malformed JSON: ${(e as Error).message}` }]);
  }

  const issues = validateConfig(parsed);
  if (issues.length > 0) throw new InvalidSpecError('config.json', issues);
  const config = parsed as Spec;

  // validateConfig guarantees root on Linux.
  const rootPath = config.root!.path;
  const rootfs = isAbsolute(rootPath) ? resolve(rootPath) : resolve(bundle, rootPath);
  let isDir: boolean;
  try {
    isDir = statSync(rootfs).isDirectory();
  } catch {
    throw new BundleError(rootfs, 'rootfs does not exist');
  }
  if (!isDir) throw new BundleError(rootfs, 'rootfs is not a directory');

  return { bundle, config, rootfs };
}
