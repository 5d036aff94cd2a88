/**
 * koci's modules from two files instead of ~100: dist/koci.js holds the
 * modules every command needs and those of state, start, kill, delete and
 * list (what an orchestrator calls around each create), dist/koci-more.js
 * the rest (create, run, exec: validation, rootfs, seccomp, the fork stages;
 * pause, ps, events, update, spec, features). Each is one script whose V8
 * code for every function sits next to it (koci.cache, koci-more.cache);
 * both are built by scripts/build-bundle.js. A CLI start then reads a file
 * or two instead of resolving, reading and compiling modules one by one —
 * most of what koci cost above Node's own start (issue 7) — and those five
 * verbs never touch the second part.
 *
 * A small CommonJS loader runs the modules: relative requires between
 * bundled modules stay inside the bundle, anything else (node:*, koffi, ajv's
 * runtime, package.json) goes to Node's require from the module's real path,
 * and __filename/__dirname are the module's real ones, so code behaves as if
 * loaded from dist/. Without a bundle, with one older than the compiled
 * modules (a bare `tsc`), or with KOCI_NO_BUNDLE=1, the caller loads the
 * modules as usual. A code cache V8 rejects (another Node, other V8 flags)
 * only costs the compile it would have saved.
 */
import { readFileSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { Script } from 'node:vm';

type ModuleFn = (exports: unknown, require: NodeRequire, module: BundledModule, filename: string, dirname: string) => void;
interface BundledModule {
  exports: unknown;
  id: string;
  filename: string;
  loaded: boolean;
}
/** what a part's script evaluates to: its modules, and (first part) the keys the second part holds */
interface Part {
  modules: Record<string, ModuleFn>;
  more?: string[];
  /** (first part) packages required by name, as the build resolved them: paths relative to dist/ */
  resolved?: Record<string, string>;
}

/** dist/: this file is dist/lib/bundle.js once compiled */
const DIST = join(__dirname, '..');
/** the parts, in load order: [script, code cache] */
export const BUNDLE_PARTS: ReadonlyArray<readonly [string, string]> = [
  [join(DIST, 'koci.js'), join(DIST, 'koci.cache')],
  [join(DIST, 'koci-more.js'), join(DIST, 'koci-more.cache')],
];

/** the V8 script for a part; scripts/build-bundle.js compiles it the same way to make the cache. Parts are ASCII. */
export function bundleScript(file: string, cachedData?: Buffer): Script {
  return new Script(readFileSync(file, 'latin1'), { filename: file, cachedData });
}

const parts: Array<Part | null | undefined> = [];
const codeCache: Array<'none' | 'accepted' | 'rejected'> = [];
const loaded = new Map<string, BundledModule>();

function loadPart(i: number): Part | null {
  if (parts[i] !== undefined) return parts[i]!;
  parts[i] = null;
  if (process.env.KOCI_NO_BUNDLE) return null;
  const [file, cacheFile] = BUNDLE_PARTS[i];
  try {
    // tsc rewrites every module: a bundle older than this file is stale
    if (statSync(file).mtimeMs < statSync(__filename).mtimeMs) return null;
    let cache: Buffer | undefined;
    try {
      cache = readFileSync(cacheFile);
    } catch {
      /* no cache: V8 compiles lazily */
    }
    const script = bundleScript(file, cache);
    codeCache[i] = !cache ? 'none' : script.cachedDataRejected ? 'rejected' : 'accepted';
    parts[i] = (script.runInThisContext() as () => Part)();
  } catch {
    parts[i] = null;
  }
  return parts[i]!;
}

/** the module function for a key of dist/ (e.g. 'lib/cli/cli'), with the key as bundled, or undefined */
function find(key: string): [string, ModuleFn] | undefined {
  const first = loadPart(0);
  if (!first) return undefined;
  for (const k of [key, `${key}.js`, `${key}/index.js`]) {
    if (Object.hasOwn(first.modules, k)) return [k, first.modules[k]];
    if (first.more?.includes(k)) {
      const fn = loadPart(1)?.modules[k];
      return fn ? [k, fn] : undefined;
    }
  }
  return undefined;
}

/** a path under dist/ as a bundle key, or undefined for paths outside it */
function keyOfPath(path: string): string | undefined {
  return path.startsWith(DIST + '/') ? path.slice(DIST.length + 1) : undefined;
}

function load(key: string, fn: ModuleFn): unknown {
  const done = loaded.get(key);
  if (done) return done.exports;
  const filename = join(DIST, key);
  const dir = dirname(filename);
  const module: BundledModule = { exports: {}, id: filename, filename, loaded: false };
  loaded.set(key, module); // before running it: cycles see the partial exports, as in CommonJS
  let nodeRequire: NodeRequire | undefined;
  const require = ((spec: string) => {
    if (spec[0] === '.' || spec[0] === '/') {
      const key = keyOfPath(spec[0] === '/' ? spec : join(dir, spec));
      const found = key === undefined ? undefined : find(key);
      if (found) return load(found[0], found[1]);
    }
    nodeRequire ??= createRequire(filename);
    const known = parts[0]?.resolved?.[spec];
    if (known !== undefined) {
      try {
        return nodeRequire(join(DIST, known)); // no search through node_modules
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'MODULE_NOT_FOUND') throw e;
        // installed elsewhere since the build: search as usual
      }
    }
    return nodeRequire(spec);
  }) as NodeRequire;
  fn.call(module.exports, module.exports, require, module, filename, dir);
  module.loaded = true;
  return module.exports;
}

/** the exports of dist/<key> (e.g. 'lib/cli/cli.js') from the bundle, or undefined when there is no usable bundle */
export function bundledModule<T>(key: string): T | undefined {
  const found = find(key);
  return found ? (load(found[0], found[1]) as T) : undefined;
}

/** how this process loaded koci: which parts of the bundle, and whether V8 took their code caches (for tests and `--debug`) */
export function bundleStatus(): { bundle: boolean; parts: Array<{ file: string; codeCache: string }> } {
  return {
    bundle: !!parts[0],
    parts: parts.flatMap((p, i) => (p ? [{ file: BUNDLE_PARTS[i][0].slice(DIST.length + 1), codeCache: codeCache[i] }] : [])),
  };
}
