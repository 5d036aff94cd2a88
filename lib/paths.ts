/** Where koci's own files are, whether running from dist/ or from TypeScript sources. */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';

function findPackageRoot(start: string): string {
  let dir = start;
  for (;;) {
    if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'schemas'))) return dir;
    const up = dirname(dir);
    if (up === dir) throw new Error(`koci: cannot find the package root above ${start}`);
    dir = up;
  }
}

export const packageRoot = findPackageRoot(__dirname);
/** compiled output (the helper process and precompiled validators live here) */
export const distDir = join(packageRoot, 'dist');
export const DEFAULT_STATE_ROOT = '/run/koci';
