/** A library Runtime for one test, on a private state root. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Runtime } from '../../dist/lib/index';

/** a Runtime on a private root; teardown force-deletes what is left in it and ends its zygote */
export function testRuntime(t: { teardown(fn: () => Promise<void>): void }, prefix = 'koci-lib-root-'): Runtime {
  const root = mkdtempSync(join(tmpdir(), prefix));
  const rt = new Runtime({ root });
  t.teardown(async () => {
    for (const c of await rt.list()) await rt.delete(c.id, { force: true }).catch(() => {});
    await rt.close();
    rmSync(root, { recursive: true, force: true });
  });
  return rt;
}
