import t from 'tap';
import { mkdirSync, mkdtempSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BundleError, InvalidSpecError } from '../lib/errors';
import { defaultSpec } from '../lib/spec/default';
import { loadBundle } from '../lib/spec/load';

/** a fresh empty directory, removed when the test ends (t.testdir gives one dir per test; these need several) */
function tempDir(t: tap.Test): string {
  const dir = mkdtempSync(join(tmpdir(), 'koci-spec-load-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** the error `fn` throws; fails the test if it does not throw */
function thrown(t: tap.Test, fn: () => unknown): unknown {
  try {
    fn();
  } catch (e) {
    return e;
  }
  t.fail('expected a throw');
  return undefined;
}

/** a bundle dir holding `config` (a string is written verbatim, null writes none) and, unless told otherwise, a rootfs dir */
function bundle(t: tap.Test, config: unknown = defaultSpec(), rootfs: 'dir' | 'file' | 'none' = 'dir'): string {
  const dir = tempDir(t);
  if (config !== null) writeFileSync(join(dir, 'config.json'), typeof config === 'string' ? config : JSON.stringify(config));
  if (rootfs === 'dir') mkdirSync(join(dir, 'rootfs'));
  if (rootfs === 'file') writeFileSync(join(dir, 'rootfs'), '');
  return dir;
}

t.test('loads a valid bundle', async (t) => {
  const dir = bundle(t);
  const b = loadBundle(dir);
  t.equal(b.bundle, realpathSync(dir));
  t.equal(b.rootfs, join(realpathSync(dir), 'rootfs'));
  t.equal(b.config.ociVersion, '1.3.0');
  t.same(b.config.process?.args, ['sh']);
});

t.test('bundle path is made absolute and symlinks resolved', async (t) => {
  const dir = bundle(t);
  const link = join(tempDir(t), 'link');
  symlinkSync(dir, link);
  t.equal(loadBundle(link).bundle, realpathSync(dir));
  const rel = loadBundle(join(link, '.', '..', 'link'));
  t.equal(rel.bundle, realpathSync(dir));
});

t.test('absolute root.path is used as is', async (t) => {
  const rootDir = tempDir(t);
  mkdirSync(join(rootDir, 'rfs'));
  const spec = defaultSpec();
  spec.root = { path: join(rootDir, 'rfs') };
  const b = loadBundle(bundle(t, spec, 'none'));
  t.equal(b.rootfs, join(rootDir, 'rfs'));
});

t.test('missing bundle directory', async (t) => {
  const missing = join(tempDir(t), 'nope');
  const e = thrown(t, () => loadBundle(missing));
  t.ok(e instanceof BundleError, 'BundleError');
  t.match((e as Error).message, /bundle directory does not exist/);
  t.equal((e as BundleError).path, missing);
});

t.test('missing config.json', async (t) => {
  const dir = bundle(t, null);
  const e = thrown(t, () => loadBundle(dir));
  t.ok(e instanceof BundleError, 'BundleError');
  t.match((e as Error).message, /config\.json does not exist/);
});

t.test('malformed JSON', async (t) => {
  const dir = bundle(t, '{"ociVersion": "1.3.0",, }');
  try {
    loadBundle(dir);
    t.fail('should throw');
  } catch (e) {
    t.ok(e instanceof InvalidSpecError, 'InvalidSpecError');
    const err = e as InvalidSpecError;
    t.equal(err.file, 'config.json');
    t.equal(err.issues.length, 1);
    t.equal(err.issues[0].pointer, '');
    t.equal(err.issues[0].rule, 'json');
    t.match(err.issues[0].message, /^malformed JSON: .*position \d+/);
  }
});

t.test('invalid config carries the validation issues', async (t) => {
  const spec = defaultSpec();
  spec.ociVersion = '2.0.0';
  spec.process!.cwd = 'relative/dir';
  try {
    loadBundle(bundle(t, spec));
    t.fail('should throw');
  } catch (e) {
    t.ok(e instanceof InvalidSpecError);
    const issues = (e as InvalidSpecError).issues;
    t.ok(issues.some((i) => i.pointer === '/ociVersion' && i.rule === 'oci-version'));
    t.ok(issues.some((i) => i.pointer === '/process/cwd' && i.rule === 'absolute-path'));
    t.match((e as Error).message, /\/ociVersion .*not supported/);
  }
});

t.test('rootfs missing or not a directory', async (t) => {
  const missing = thrown(t, () => loadBundle(bundle(t, defaultSpec(), 'none')));
  t.ok(missing instanceof BundleError, 'BundleError');
  t.match((missing as Error).message, /rootfs does not exist/);
  const file = thrown(t, () => loadBundle(bundle(t, defaultSpec(), 'file')));
  t.ok(file instanceof BundleError, 'BundleError');
  t.match((file as Error).message, /rootfs is not a directory/);
});
