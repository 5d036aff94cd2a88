import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { kociCli, makeBundle, rootSkipReason, stateOf, uniqueId } from './helpers/fixtures';

const skip = rootSkipReason();
if (skip) t.comment(`skipping lifecycle tests: ${skip}`);

t.test('create -> created -> running -> stopped -> deleted', { skip }, async (t) => {
  const koci = kociCli(t);
  // the process writes a marker: proof that nothing runs before start
  // it runs until the test drops /tmp/go in the rootfs, so "running" is not a race
  const b = makeBundle(t, ['sh', '-c', 'echo ran > /tmp/marker; while [ ! -e /tmp/go ]; do sleep 0.02; done']);
  b.spec.root!.readonly = false;
  b.save();
  const id = uniqueId('life');
  const pidFile = join(b.dir, 'pid');
  const c = koci(['create', '--bundle', b.dir, '--pid-file', pidFile, id]);
  t.equal(c.status, 0, `create succeeds: ${c.stderr}`);
  const s1 = stateOf(koci, id);
  t.equal(s1.status, 'created');
  t.equal(s1.id, id);
  t.equal(s1.bundle, b.dir);
  t.equal(s1.ociVersion, b.spec.ociVersion);
  t.type(s1.pid, 'number');
  t.equal(readFileSync(pidFile, 'utf8'), String(s1.pid), '--pid-file holds the init pid');
  t.ok(existsSync(`/proc/${s1.pid}`), 'init process exists');
  await new Promise((r) => setTimeout(r, 200));
  t.notOk(existsSync(join(b.rootfs, 'tmp', 'marker')), 'user process has not run before start');
  t.equal(stateOf(koci, id).status, 'created', 'still created after waiting');

  const st = koci(['start', id]);
  t.equal(st.status, 0, `start succeeds: ${st.stderr}`);
  t.equal(stateOf(koci, id).status, 'running');
  const again = koci(['start', id]);
  t.not(again.status, 0, 'start twice fails');
  t.match(again.stderr, /cannot start container .* in status running/);

  const del = koci(['delete', id]);
  t.not(del.status, 0, 'delete of a running container without --force fails');
  t.match(del.stderr, /cannot delete .* running/);
  writeFileSync(join(b.rootfs, 'tmp', 'go'), '');

  for (let i = 0; i < 100 && stateOf(koci, id).status !== 'stopped'; i++) await new Promise((r) => setTimeout(r, 20));
  const s3 = stateOf(koci, id);
  t.equal(s3.status, 'stopped');
  t.notOk('pid' in s3, 'a stopped container has no pid');
  t.equal(readFileSync(join(b.rootfs, 'tmp', 'marker'), 'utf8'), 'ran\n', 'the process ran after start');
  t.equal(koci(['delete', id]).status, 0, 'delete of a stopped container succeeds');
  t.not(koci(['state', id]).status, 0, 'state after delete fails');
  t.notOk(existsSync(join(koci.root, id)), 'state dir removed');
});

t.test('kill by name and by number; delete --force', { skip }, async (t) => {
  const koci = kociCli(t);
  const b = makeBundle(t, ['sh', '-c', 'trap "exit 42" USR1; while true; do sleep 0.05; done']);
  const id = uniqueId('kill');
  t.equal(koci(['run', '--detach', '--bundle', b.dir, id]).status, 0);
  t.equal(stateOf(koci, id).status, 'running');
  t.equal(koci(['kill', id, 'USR1']).status, 0, 'kill USR1 (name without SIG)');
  for (let i = 0; i < 100 && stateOf(koci, id).status !== 'stopped'; i++) await new Promise((r) => setTimeout(r, 20));
  t.equal(stateOf(koci, id).status, 'stopped', 'trap made it exit');
  const k = koci(['kill', id, 'KILL']);
  t.not(k.status, 0, 'kill of a stopped container fails');
  t.equal(koci(['delete', id]).status, 0);

  const id2 = uniqueId('kill');
  t.equal(koci(['run', '-d', '--bundle', b.dir, id2]).status, 0);
  t.equal(koci(['kill', id2, '9']).status, 0, 'kill by number');
  for (let i = 0; i < 100 && stateOf(koci, id2).status !== 'stopped'; i++) await new Promise((r) => setTimeout(r, 20));
  t.equal(stateOf(koci, id2).status, 'stopped');
  t.equal(koci(['delete', id2]).status, 0);

  const id3 = uniqueId('kill');
  t.equal(koci(['run', '-d', '--bundle', b.dir, id3]).status, 0);
  t.equal(koci(['kill', id3, 'SIGBOGUS']).status, 1, 'unknown signal refused');
  t.equal(koci(['delete', '--force', id3]).status, 0, 'delete --force of a running container');
  t.not(koci(['state', id3]).status, 0);
});

t.test('run exits with the container status', { skip }, async (t) => {
  const koci = kociCli(t);
  const b = makeBundle(t, ['sh', '-c', 'echo out; echo err >&2; exit 7']);
  const id = uniqueId('run');
  const r = koci(['run', '--bundle', b.dir, id]);
  t.equal(r.status, 7);
  t.equal(r.stdout, 'out\n', 'container stdout is the caller stdout');
  t.equal(r.stderr, 'err\n');
  t.not(koci(['state', id]).status, 0, 'run removed the container');
});

t.test('a new session keyring per container, unless --no-new-keyring', { skip }, async (t) => {
  const koci = kociCli(t);
  // /proc/keys is in the default maskedPaths (as with runc): unmask it to read it
  const b = makeBundle(t, ['sh', '-c', 'grep -o "keyring *_ses[^:]*" /proc/keys || true'], (s) => {
    s.linux!.maskedPaths = s.linux!.maskedPaths!.filter((p) => p !== '/proc/keys');
  });
  const id = uniqueId('key');
  const r = koci(['run', '--bundle', b.dir, id]);
  t.equal(r.status, 0, r.stderr);
  t.match(r.stdout, new RegExp(`keyring +_ses\\.${id}\\b`), 'the container joined _ses.<id>');
  const id2 = uniqueId('key');
  const r2 = koci(['run', '--no-new-keyring', '--bundle', b.dir, id2]);
  t.equal(r2.status, 0, r2.stderr);
  t.notMatch(r2.stdout, `_ses.${id2}`, 'no keyring of its own with --no-new-keyring');
});
