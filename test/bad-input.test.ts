/**
 * Every class of bad input is refused with its own one-line message, a
 * non-zero exit, and nothing left behind: no state entry, cgroup, mount or
 * process (see helpers/leftovers.ts).
 */
import { existsSync, mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import t, { type Test } from 'tap';
import type { Spec } from '../lib/spec/types';
import { kociCli, makeBundle, rootSkipReason, stateOf, uniqueId, type Koci, type Result } from './helpers/fixtures';
import { leftovers } from './helpers/leftovers';

const skip = rootSkipReason();
if (skip) t.comment(`skipping bad-input tests: ${skip}`);

type T = Test;

/** run a koci command that must fail; check the message and that nothing changed */
function refused(t: T, koci: Koci, bundles: string[], args: string[], msg: RegExp, what: string): Result {
  const before = leftovers(koci.root, bundles);
  const r = koci(args);
  t.equal(r.status, 1, `${what}: exit status 1`);
  t.match(r.stderr, msg, `${what}: message`);
  t.equal(r.stderr.trim().split('\n').length, 1, `${what}: one line (${r.stderr.trim()})`);
  t.equal(r.stdout, '', `${what}: nothing on stdout`);
  t.same(leftovers(koci.root, bundles), before, `${what}: nothing left behind`);
  return r;
}

function badSpec(t: T, koci: Koci, edit: (s: Spec) => void, msg: RegExp, what: string): void {
  const b = makeBundle(t, ['true'], edit);
  const id = uniqueId('bad');
  refused(t, koci, [b.dir], ['create', '--bundle', b.dir, id], msg, what);
  t.notOk(existsSync(join(koci.root, id)), `${what}: no state dir`);
}

t.test('config.json: missing, malformed, not a file; bundle missing', { skip }, async (t) => {
  const koci = kociCli(t);
  const b = makeBundle(t);
  rmSync(join(b.dir, 'config.json'));
  refused(t, koci, [b.dir], ['create', '--bundle', b.dir, uniqueId('bad')], /config\.json does not exist/, 'missing config.json');
  writeFileSync(join(b.dir, 'config.json'), '{"ociVersion": "1.0.2", "process": ');
  refused(t, koci, [b.dir], ['create', '--bundle', b.dir, uniqueId('bad')], /invalid config\.json: malformed JSON/, 'truncated JSON');
  writeFileSync(join(b.dir, 'config.json'), '');
  refused(t, koci, [b.dir], ['create', '--bundle', b.dir, uniqueId('bad')], /malformed JSON/, 'empty config.json');
  writeFileSync(join(b.dir, 'config.json'), '[1, 2]');
  refused(t, koci, [b.dir], ['create', '--bundle', b.dir, uniqueId('bad')], /invalid config\.json: must be object/, 'a JSON array');
  rmSync(join(b.dir, 'config.json'));
  mkdirSync(join(b.dir, 'config.json'));
  refused(t, koci, [b.dir], ['create', '--bundle', b.dir, uniqueId('bad')], /config\.json is not a file/, 'config.json is a directory');
  const gone = join(tmpdir(), `koci-no-bundle-${process.pid}`);
  refused(t, koci, [], ['create', '--bundle', gone, uniqueId('bad')], /bundle directory does not exist/, 'missing bundle');
});

t.test('schema violations report the JSON pointer and the rule', { skip }, async (t) => {
  const koci = kociCli(t);
  badSpec(t, koci, (s) => ((s.process as unknown as Record<string, unknown>).args = 'sh -c true'), /\/process\/args must be array \(rule: type\)/, 'args a string');
  badSpec(t, koci, (s) => (s.mounts![1].destination = 5 as unknown as string), /\/mounts\/1\/destination must be string \(rule: type\)/, 'destination a number');
  badSpec(t, koci, (s) => delete (s as Partial<Spec>).ociVersion, /must have required property 'ociVersion' \(rule: required\)/, 'ociVersion missing');
  badSpec(t, koci, (s) => (s.process!.user.uid = -1), /\/process\/user\/uid must be >= 0 \(rule: minimum\)/, 'negative uid');
  badSpec(t, koci, (s) => (s.linux!.namespaces![0].type = 'bogus' as 'pid'), /\/linux\/namespaces\/0\/type must be one of .* \(rule: enum\)/, 'unknown namespace type');
  badSpec(t, koci, (s) => (s.process!.args = []), /\/process\/args.*(at least one|fewer than 1).* \(rule: [a-zA-Z-]+\)/, 'empty args');
  badSpec(t, koci, (s) => (s.process!.cwd = 'relative/dir'), /\/process\/cwd.*must be absolute \(rule: absolute-path\)/, 'relative cwd');
});

t.test('several violations: one line naming each pointer and rule', { skip }, async (t) => {
  const koci = kociCli(t);
  badSpec(
    t,
    koci,
    (s) => {
      s.process!.cwd = 'relative/dir';
      s.linux!.namespaces!.push({ type: 'pid' });
    },
    /^koci: invalid config\.json: (?=.*\/process\/cwd [^;]*must be absolute \(rule: absolute-path\))(?=.*\/linux\/namespaces\/6\/type [^;]*listed more than once \(rule: duplicate-namespace\)).*; .*\n$/,
    'relative cwd and a duplicate namespace',
  );
});

t.test('unsupported ociVersion', { skip }, async (t) => {
  const koci = kociCli(t);
  for (const v of ['2.0.0', '0.9.0', '1.0.0-rc5', '0.9', 'one']) {
    badSpec(t, koci, (s) => (s.ociVersion = v), new RegExp(`/ociVersion.*"${v.replace(/\./g, '\\.')}" is not (supported|a SemVer version)`), `ociVersion ${v}`);
  }
});

t.test('missing rootfs', { skip }, async (t) => {
  const koci = kociCli(t);
  badSpec(t, koci, (s) => (s.root!.path = 'no-such-rootfs'), /rootfs does not exist: .*no-such-rootfs/, 'missing rootfs');
  const b = makeBundle(t);
  rmSync(b.rootfs, { recursive: true, force: true });
  writeFileSync(b.rootfs, 'a file');
  refused(t, koci, [b.dir], ['create', '--bundle', b.dir, uniqueId('bad')], /rootfs is not a directory/, 'rootfs a file');
});

t.test('invalid container IDs', { skip }, async (t) => {
  const koci = kociCli(t);
  const b = makeBundle(t);
  const escape = `koci-escape-${process.pid}`;
  const ids: Array<[string, RegExp]> = [
    [`../${escape}`, /invalid container id/],
    ['a/b', /invalid container id "a\/b"/],
    ['..', /invalid container id "\.\."/],
    ['.', /invalid container id "\."/],
    ['x'.repeat(2000), /invalid container id .*longer than/],
    ['a b', /invalid container id/],
  ];
  for (const [id, msg] of ids) {
    for (const verb of ['create', 'state', 'delete']) {
      const args = verb === 'create' ? ['create', '--bundle', b.dir, id] : [verb, id];
      refused(t, koci, [b.dir], args, msg, `${verb} ${id.slice(0, 20)}`);
    }
  }
  t.notOk(existsSync(join(koci.root, '..', escape)), 'nothing made outside the state root');
  // an empty ID is a usage error
  refused(t, koci, [b.dir], ['create', '--bundle', b.dir, ''], /container id|container-id|empty/i, 'empty id');
});

t.test('duplicate ID', { skip }, async (t) => {
  const koci = kociCli(t);
  const b = makeBundle(t, ['sleep', '30']);
  const id = uniqueId('dup');
  t.equal(koci(['create', '--bundle', b.dir, id]).status, 0, 'first create');
  const pid = stateOf(koci, id).pid;
  refused(t, koci, [b.dir], ['create', '--bundle', b.dir, id], new RegExp(`container "${id}" already exists`), 'second create');
  const st = stateOf(koci, id);
  t.equal(st.status, 'created', 'the first container is untouched');
  t.equal(st.pid, pid);
  t.equal(koci(['delete', id]).status, 0);
});

t.test('unknown ID for state, start, kill, delete', { skip }, async (t) => {
  const koci = kociCli(t);
  const id = uniqueId('ghost');
  for (const args of [['state', id], ['start', id], ['kill', id], ['kill', id, 'KILL'], ['delete', id]]) {
    refused(t, koci, [], args, new RegExp(`^koci: container "${id}" does not exist$`, 'm'), args.join(' ').replace(id, 'ID'));
  }
  t.match(koci(['delete', '--force', id]), { status: 0, stderr: '' }, 'as runc: a forced delete of what is not there is done');
  t.notOk(existsSync(join(koci.root, id)), 'no state dir made by looking');
});

t.test('namespaces: duplicates, user namespace without mappings', { skip }, async (t) => {
  const koci = kociCli(t);
  badSpec(t, koci, (s) => s.linux!.namespaces!.push({ type: 'pid' }), /\/linux\/namespaces\/6\/type namespace type pid is listed more than once \(rule: duplicate-namespace\)/, 'duplicate pid namespace');
  badSpec(t, koci, (s) => s.linux!.namespaces!.push({ type: 'user' }), /a new user namespace needs both linux\.uidMappings and linux\.gidMappings/, 'user namespace without mappings');
  badSpec(
    t,
    koci,
    (s) => {
      s.linux!.namespaces!.push({ type: 'user' });
      s.linux!.uidMappings = [{ containerID: 0, hostID: 100000, size: 65536 }];
    },
    /\/linux\/gidMappings/,
    'user namespace without gidMappings',
  );
  badSpec(t, koci, (s) => (s.linux!.uidMappings = [{ containerID: 0, hostID: 100000, size: 1 }]), /uidMappings.*no user namespace/, 'mappings without a user namespace');
  badSpec(t, koci, (s) => (s.linux!.namespaces = s.linux!.namespaces!.filter((n) => n.type !== 'uts')), /\/hostname.*no uts namespace/, 'hostname without uts');
  badSpec(t, koci, (s) => (s.linux!.namespaces![0].path = 'proc/1/ns/pid'), /\/linux\/namespaces\/0\/path.*must be absolute/, 'relative namespace path');
  badSpec(t, koci, (s) => (s.linux!.namespaces![0].path = `/proc/no-such-${process.pid}/ns/pid`), /no-such-.*ENOENT|does not exist|no such file/i, 'namespace path that does not exist');
});

t.test('mounts: missing bind source, destination escaping through a symlink', { skip }, async (t) => {
  const koci = kociCli(t);
  badSpec(
    t,
    koci,
    (s) => s.mounts!.push({ destination: '/data', type: 'bind', source: `/no/such/source-${process.pid}`, options: ['rbind'] }),
    /no\/such\/source.*ENOENT|no such file/,
    'bind source missing',
  );
  // (a relative destination is accepted: runtime-spec 1.2+ reads it as relative to "/", as runc does)

  // a symlink in the image pointing at a host directory: the mount must stay inside the rootfs (or be refused)
  const hostDir = join(tmpdir(), `koci-host-target-${process.pid}`);
  mkdirSync(hostDir, { recursive: true });
  t.teardown(() => rmSync(hostDir, { recursive: true, force: true }));
  writeFileSync(join(hostDir, 'canary'), 'host');
  for (const target of [hostDir, `../../../../../../..${hostDir}`]) {
    const b = makeBundle(t, ['sh', '-c', 'ls /escape'], (s) => s.mounts!.push({ destination: '/escape', type: 'tmpfs', source: 'tmpfs' }));
    symlinkSync(target, join(b.rootfs, 'escape'));
    const id = uniqueId('esc');
    const before = leftovers(koci.root, [b.dir, hostDir]);
    const hostMounts = readFileSync('/proc/self/mountinfo', 'utf8');
    const r = koci(['run', '--bundle', b.dir, id]);
    if (r.status === 0) {
      t.notMatch(r.stdout, /canary/, `symlink to ${basename(target)}: the tmpfs did not cover the host directory`);
    } else {
      t.match(r.stderr, /escape|symlink/, `symlink to ${target}: refused: ${r.stderr.trim()}`);
      t.equal(r.stderr.trim().split('\n').length, 1, 'one line');
    }
    t.equal(readFileSync(join(hostDir, 'canary'), 'utf8'), 'host', 'the host directory is untouched');
    t.equal(readFileSync('/proc/self/mountinfo', 'utf8').split('\n').filter((l) => l.includes(hostDir)).length, hostMounts.split('\n').filter((l) => l.includes(hostDir)).length, 'no mount on the host directory');
    t.same(leftovers(koci.root, [b.dir, hostDir]), before, 'nothing left behind');
  }
});

t.test('operations in the wrong status', { skip }, async (t) => {
  const koci = kociCli(t);
  const b = makeBundle(t, ['true']);
  const id = uniqueId('stopped');
  t.equal(koci(['run', '-d', '--bundle', b.dir, id]).status, 0);
  for (let i = 0; i < 250 && stateOf(koci, id).status !== 'stopped'; i++) await new Promise((r) => setTimeout(r, 20));
  t.equal(stateOf(koci, id).status, 'stopped');
  refused(t, koci, [b.dir], ['start', id], new RegExp(`cannot start container "${id}" in status stopped`), 'start of a stopped container');
  refused(t, koci, [b.dir], ['kill', id, 'TERM'], /not running/, 'kill of a stopped container');
  t.equal(stateOf(koci, id).status, 'stopped', 'still there, still stopped');
  t.equal(koci(['delete', id]).status, 0);

  const id2 = uniqueId('created');
  t.equal(koci(['create', '--bundle', b.dir, id2]).status, 0);
  refused(t, koci, [b.dir], ['kill', id2, 'NOSUCHSIG'], /invalid signal "NOSUCHSIG"/, 'unknown signal');
  t.equal(stateOf(koci, id2).status, 'created', 'a bad kill leaves it created');
  t.equal(koci(['delete', id2]).status, 0, 'delete of a created container');
});
