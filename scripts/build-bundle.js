#!/usr/bin/env node
'use strict';
/**
 * Build step (after tsc and the validators): put the compiled modules of
 * dist/ into two scripts — dist/koci.js (what every command and the verbs of
 * every container's life but create need) and dist/koci-more.js (the rest) —
 * and V8's code for all of their functions next to them (koci.cache,
 * koci-more.cache). lib/bundle.ts loads them; see there why.
 *
 * - The first part is the require closure of the CLI and of state, start,
 *   kill, delete and list (what an orchestrator's shim calls around each
 *   create), without the CLI's edges to the other verbs and the seccomp
 *   cache: about half of koci's light code, so those verbs deserialize half
 *   the code they did. The other verbs (create, run, exec, pause, ps,
 *   events, update, spec, features) load both parts.
 * - Sources are reprinted without comments by TypeScript's printer and made
 *   ASCII (\u escapes), so the loader reads them as latin1: no UTF-8 decode.
 * - The code caches are made by Node children started with koci's own flags
 *   (NODE_FLAGS in lib/process/node-env.ts: V8 refuses a cache made under
 *   other flags) that compile with --no-lazy, so the functions the forked
 *   container init runs — which the CLI's own process never calls — are
 *   compiled too, then restore --lazy so the flag hash matches a normal start.
 */
const fs = require('node:fs');
const path = require('node:path');
const { spawnSync } = require('node:child_process');

const dist = path.resolve(__dirname, '..', 'dist');

/** the cache maker, in a --single-threaded child: node build-bundle.js --code-cache SCRIPT CACHE */
if (process.argv[2] === '--code-cache') {
  const v8 = require('node:v8');
  const { bundleScript } = require(path.join(dist, 'lib', 'bundle.js'));
  v8.setFlagsFromString('--no-lazy');
  const script = bundleScript(process.argv[3]);
  v8.setFlagsFromString('--lazy');
  fs.writeFileSync(process.argv[4], script.createCachedData());
  process.exit(0);
}

const ts = require('typescript');
const started = Date.now();
const { BUNDLE_PARTS } = require(path.join(dist, 'lib', 'bundle.js'));
// the flags koci's Node processes run with: V8 takes a code cache only under the flags it was made with
const { NODE_FLAGS } = require(path.join(dist, 'lib', 'process', 'node-env.js'));

// The programs that run the bundle (the executable, the zygote) and the loader itself stay outside it.
const OUTSIDE = new Set(['lib/cli/main.js', 'lib/process/zygote-main.js', 'lib/bundle.js']);
const FIRST_ROOTS = ['cli', 'state', 'start', 'kill', 'delete', 'list'].map((v) => `lib/cli/${v}.js`);
// what the CLI requires only for the other verbs (and for those that fork, the seccomp cache)
const SECOND_FROM_CLI = new Set([...['create', 'run', 'exec', 'pause', 'ps', 'events', 'update', 'spec', 'features'].map((v) => `lib/cli/${v}.js`), 'lib/security/seccomp-cache.js', 'lib/security/seccomp.js']);

const files = [];
(function walk(dir) {
  for (const e of fs.readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) walk(p);
    else if (e.name.endsWith('.js')) files.push(path.relative(dist, p));
  }
})(dist);
const keys = files.filter((k) => /^(lib|bindings|validators)\//.test(k) && !OUTSIDE.has(k));
if (!keys.includes('lib/cli/cli.js')) throw new Error('build-bundle: dist/lib/cli/cli.js is missing: run tsc first');
const known = new Set(keys);
/** each module's compiled text, read once */
const texts = new Map(keys.map((k) => [k, fs.readFileSync(path.join(dist, k), 'utf8')]));

/** the bundled modules a module requires by a relative path */
function requires(key) {
  const out = [];
  for (const m of texts.get(key).matchAll(/require\((["'])(\.{1,2}\/[^"']+)\1\)/g)) {
    const p = path.join(path.dirname(key), m[2]);
    const k = [p, `${p}.js`, `${p}/index.js`].find((c) => known.has(c));
    if (k) out.push(k);
  }
  return out;
}

const first = new Set();
const todo = [...FIRST_ROOTS];
while (todo.length) {
  const k = todo.pop();
  if (first.has(k) || !known.has(k)) continue;
  first.add(k);
  for (const d of requires(k)) if (!(k === 'lib/cli/cli.js' && SECOND_FROM_CLI.has(d))) todo.push(d);
}
const more = keys.filter((k) => !first.has(k));

const printer = ts.createPrinter({ removeComments: true });
/** a module's source without comments, ASCII only */
function source(key) {
  const text = texts.get(key).replace(/^#!.*\n/, '');
  const printed = printer.printFile(ts.createSourceFile(key, text, ts.ScriptTarget.Latest, false, ts.ScriptKind.JS));
  // outside comments, non-ASCII is only in string and template literals, where \uXXXX means the same
  return printed.replace(/[^\x00-\x7f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

function writePart([file, cache], members, extra) {
  let out = '(function () {\nreturn {\nmodules: {\n';
  for (const k of members) out += `${JSON.stringify(k)}: function (exports, require, module, __filename, __dirname) {\n${source(k)}\n},\n`;
  out += `},\n${extra}};\n})`;
  fs.rmSync(cache, { force: true });
  fs.writeFileSync(file, out, 'latin1');
  const r = spawnSync(process.execPath, [...NODE_FLAGS, __filename, '--code-cache', file, cache], { stdio: 'inherit' });
  if (r.status !== 0) throw new Error(`build-bundle: making the code cache of ${file} failed (${r.status ?? r.signal})`);
}

// packages the modules require by name (koffi, ajv's runtime), resolved now: Node's search for
// them costs a start a few ms; the loader checks the file is still there (lib/bundle.ts)
const resolved = {};
for (const k of keys) {
  for (const m of texts.get(k).matchAll(/require\((["'])([^."'/][^"']*)\1\)/g)) {
    const spec = m[2];
    if (spec.startsWith('node:') || spec in resolved) continue;
    try {
      resolved[spec] = path.relative(dist, require.resolve(spec, { paths: [path.join(dist, path.dirname(k))] }));
    } catch {
      /* not installed here: resolved at run time, as usual */
    }
  }
}

// koffi's own loader spends ~4 ms of every start finding its native module (it reads node's ELF
// header to tell glibc from musl) and wrapping deprecated calls koci never makes: point 'koffi' at the
// native module it picks on this machine, when that module is koffi's whole API at the same version
if (resolved.koffi) {
  const pkg = require(path.join(dist, resolved.koffi));
  const native = Object.keys(require.cache).find((f) => f.endsWith('.node') && /koffi/.test(f));
  const api = native && require(native);
  if (api && api.version === pkg.version && Object.keys(pkg).every((k) => k === 'default' || typeof api[k] === typeof pkg[k])) {
    resolved.koffi = path.relative(dist, native);
  }
}

writePart(BUNDLE_PARTS[0], [...first].sort(), `more: ${JSON.stringify(more)},\nresolved: ${JSON.stringify(resolved)},\n`);
writePart(BUNDLE_PARTS[1], more, '');
const kib = (f) => `${Math.round(fs.statSync(f).size / 1024)} KiB`;
const describe = ([file, cache], n) => `${path.relative(dist, file)} (${n} modules, ${kib(file)}, code cache ${kib(cache)})`;
console.log(`bundle: dist/${describe(BUNDLE_PARTS[0], first.size)} and dist/${describe(BUNDLE_PARTS[1], more.length)} in ${Date.now() - started} ms`);
