/**
 * The cache of compiled seccomp programs (lib/security/seccomp-cache.ts), the
 * CLI's and the library's zygote's: written after a successful create only,
 * one entry per profile, used only when its whole key matches, and harmless
 * when damaged.
 */
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { Runtime } from '../dist/lib/index';
import { defaultSpec } from '../dist/lib/spec/default';
import { kociCli, makeBundle, rootSkipReason, uniqueId } from './helpers/fixtures';

const skip = rootSkipReason();
if (skip) t.comment(`skipping seccomp cache tests: ${skip}`);

const denyMkdir = (errnoRet: number) => ({
  defaultAction: 'SCMP_ACT_ALLOW',
  syscalls: [{ names: ['mkdir', 'mkdirat'], action: 'SCMP_ACT_ERRNO', errnoRet }],
});

t.test('entries: written after a create, one per profile, whole key checked, damage ignored', { skip }, async (t) => {
  const koci = kociCli(t);
  const dir = join(koci.root, '@cache', 'seccomp');
  const entries = () => (existsSync(dir) ? readdirSync(dir).sort() : []);
  const b = makeBundle(t, ['sh', '-c', 'mkdir /tmp/x 2>&1; echo rc=$?'], (s) => (s.linux!.seccomp = denyMkdir(1) as never));
  const run = () => koci(['run', '--bundle', b.dir, uniqueId('scc')]);

  const first = run();
  t.equal(first.status, 0, first.stderr);
  t.match(first.stdout, /Operation not permitted\nrc=1/, 'the profile applies');
  t.equal(entries().length, 1, 'one entry after the first create');
  t.equal(statSync(dir).mode & 0o777, 0o700, 'the cache directory is root-only');
  const file = join(dir, entries()[0]);
  t.equal(statSync(file).mode & 0o777, 0o600);
  const entry = JSON.parse(readFileSync(file, 'utf8'));
  t.match(entry.key, /^libseccomp \d+\.\d+\.\d+ \S+ kernel \S+ koci \S+ \S+\n\{/, 'the key names libseccomp, the architecture, the kernel and koci\'s build, then the profile');
  t.ok(Buffer.from(entry.bpf, 'base64').length % 8 === 0, 'a BPF program of whole instructions');

  const again = run();
  t.match(again.stdout, /Operation not permitted\nrc=1/, 'from the cache the profile still applies');
  t.same(entries(), [entries()[0]], 'no second entry for the same profile');
  t.equal(koci(['list', '--format', 'json']).stdout.trim(), '[]', 'list does not take the cache for a container');

  // another profile: another entry, with its own program
  b.spec.linux!.seccomp = denyMkdir(13) as never;
  b.save();
  const other = run();
  t.match(other.stdout, /Permission denied\nrc=1/, 'the other profile applies (EACCES)');
  t.equal(entries().length, 2);

  // the cache is what runs: the EACCES program under the EPERM profile's exact key is used
  const eacces = JSON.parse(readFileSync(join(dir, entries().find((e) => join(dir, e) !== file)!), 'utf8'));
  writeFileSync(file, JSON.stringify({ ...entry, bpf: eacces.bpf }));
  b.spec.linux!.seccomp = denyMkdir(1) as never;
  b.save();
  t.match(run().stdout, /Permission denied\nrc=1/, 'an entry whose key matches in full is used as it is');
  // with a key that differs in one byte it is not, and the entry is written anew
  writeFileSync(file, JSON.stringify({ ...entry, key: entry.key.replace('"errnoRet":1', '"errnoRet":2'), bpf: eacces.bpf }));
  t.match(run().stdout, /Operation not permitted\nrc=1/, 'a key that does not match in full is ignored');
  t.same(JSON.parse(readFileSync(file, 'utf8')), entry, 'and the entry is rewritten');
  // a damaged entry is ignored too
  writeFileSync(file, '{"key": 1');
  t.match(run().stdout, /Operation not permitted\nrc=1/, 'a damaged entry is ignored');
  t.equal(JSON.parse(readFileSync(file, 'utf8')).key, entry.key);
});

t.test('a create that fails leaves no entry', { skip }, async (t) => {
  const koci = kociCli(t);
  const b = makeBundle(t, ['true'], (s) => {
    s.linux!.seccomp = denyMkdir(5) as never;
    s.hooks = { createRuntime: [{ path: '/bin/false' }] };
  });
  const r = koci(['create', '--bundle', b.dir, uniqueId('scc')]);
  t.not(r.status, 0, 'the hook fails the create');
  t.notOk(existsSync(join(koci.root, '@cache')), 'nothing cached');
});

t.test('the library\'s zygote shares the cache: it reads the default profile\'s program, which the first worker to create with it writes once', { skip }, async (t) => {
  const koci = kociCli(t);
  const dir = join(koci.root, '@cache', 'seccomp');
  const entries = () => (existsSync(dir) ? readdirSync(dir).sort() : []);
  const runtimes: Runtime[] = [];
  t.teardown(async () => {
    for (const rt of runtimes) await rt.close();
  });
  const runtime = () => (runtimes.push(new Runtime({ root: koci.root })), runtimes[runtimes.length - 1]);
  // koci's default profile, which every zygote prepares as it starts
  const b = makeBundle(t, ['sh', '-c', 'mkdir /tmp/x 2>&1; echo rc=$?'], (s) => {
    s.root!.readonly = false;
    s.linux!.seccomp = defaultSpec({ seccomp: true }).linux!.seccomp;
  });
  const rt = runtime();
  const first = await rt.run(uniqueId('sccl'), { bundle: b.dir, capture: true });
  t.equal(first.stdout, 'rc=0\n', 'the default profile lets mkdir through');
  t.equal(entries().length, 1, 'the worker that created with it wrote the entry');
  const file = join(dir, entries()[0]);
  const written = statSync(file).mtimeMs;
  await rt.run(uniqueId('sccl'), { bundle: b.dir, stdio: 'ignore' });
  t.equal(statSync(file).mtimeMs, written, 'the next worker does not write it again');

  // the program on disk is what a new zygote uses: an EACCES one under the default profile's key
  const deny = makeBundle(t, ['true'], (s) => (s.linux!.seccomp = denyMkdir(13) as never));
  t.equal(koci(['run', '--bundle', deny.dir, uniqueId('sccl')]).status, 0);
  const eacces = JSON.parse(readFileSync(join(dir, entries().find((e) => join(dir, e) !== file)!), 'utf8'));
  writeFileSync(file, JSON.stringify({ ...JSON.parse(readFileSync(file, 'utf8')), bpf: eacces.bpf }));
  const fresh = await runtime().run(uniqueId('sccl'), { bundle: b.dir, capture: true });
  t.match(fresh.stdout, /Permission denied\nrc=1/, 'a new Runtime\'s zygote took the program from the state root');
});
