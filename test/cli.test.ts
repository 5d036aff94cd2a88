import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { validateConfig } from '../lib/spec/validate';
import { kociCli, makeBundle, rootSkipReason, stateOf, uniqueId } from './helpers/fixtures';

const skip = rootSkipReason();
if (skip) t.comment(`skipping CLI tests: ${skip}`);

t.test('--version, help and unknown commands', async (t) => {
  const koci = kociCli(t);
  const v = koci(['--version']);
  t.equal(v.status, 0);
  t.match(v.stdout, /^koci version \d+\.\d+\.\d+\nspec: 1\.3\.0\n/);
  const h = koci(['--help']);
  t.equal(h.status, 0);
  t.match(h.stdout, /create .*--bundle/);
  const u = koci(['frobnicate']);
  t.equal(u.status, 1);
  t.equal(u.stderr, 'koci: unknown command "frobnicate"\n', 'one clear line');
});

t.test('spec writes a valid default config.json and never overwrites one', async (t) => {
  const koci = kociCli(t);
  const dir = mkdtempSync(join(tmpdir(), 'koci-spec-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  t.equal(koci(['spec', '--bundle', dir]).status, 0);
  const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
  t.same(validateConfig(config), [], 'passes the official schemas');
  t.equal(config.ociVersion, '1.3.0');
  t.same(config.process.args, ['sh']);
  t.match(config.linux.namespaces, [{ type: 'pid' }, { type: 'network' }, { type: 'ipc' }, { type: 'uts' }, { type: 'mount' }]);
  const again = koci(['spec', '--bundle', dir]);
  t.equal(again.status, 1, 'refuses to overwrite');
  t.match(again.stderr, /exists/);
  const rl = mkdtempSync(join(tmpdir(), 'koci-spec-'));
  t.teardown(() => rmSync(rl, { recursive: true, force: true }));
  t.equal(koci(['spec', '--rootless', '--bundle', rl]).status, 0);
  const rootless = JSON.parse(readFileSync(join(rl, 'config.json'), 'utf8'));
  t.ok(rootless.linux.namespaces.some((n: { type: string }) => n.type === 'user'), '--rootless adds a user namespace');
  t.equal(rootless.linux.uidMappings.length, 1);
});

t.test('state, list and kill --all', { skip }, async (t) => {
  const koci = kociCli(t);
  // a child process besides PID 1, to see kill --all reach it
  const b = makeBundle(t, ['sh', '-c', 'sleep 100 & wait']);
  const id = uniqueId('cli');
  t.equal(koci(['run', '-d', '--pid-file', join(b.dir, 'pid'), '--bundle', b.dir, id]).status, 0);
  const s = stateOf(koci, id);
  t.same(Object.keys(s).sort(), ['bundle', 'id', 'ociVersion', 'pid', 'status'].concat('annotations' in s ? ['annotations'] : []).sort());
  t.equal(readFileSync(join(b.dir, 'pid'), 'utf8'), String(s.pid));

  const json = koci(['list', '--format', 'json']);
  t.equal(json.status, 0);
  t.match(JSON.parse(json.stdout), [{ id, status: 'running', pid: s.pid, bundle: b.dir }]);
  const table = koci(['list']);
  t.match(table.stdout, /^ID +PID +STATUS +BUNDLE +CREATED\n/);
  t.match(table.stdout, new RegExp(`\\n${id} +${s.pid} +running +${b.dir} +\\d{4}-`));
  t.equal(koci(['list', '-q']).stdout, `${id}\n`);

  // the container's processes, from its cgroup
  const procs = readFileSync(`/proc/${s.pid}/task/${s.pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean);
  t.equal(procs.length, 1, 'sh has one child, the sleep');
  t.equal(koci(['kill', '--all', id, 'KILL']).status, 0);
  for (let i = 0; i < 200 && stateOf(koci, id).status !== 'stopped'; i++) await new Promise((r) => setTimeout(r, 10));
  t.equal(stateOf(koci, id).status, 'stopped');
  t.notOk(existsSync(`/proc/${procs[0]}/stat`) && readFileSync(`/proc/${procs[0]}/stat`, 'utf8').includes('(sleep)'), 'the sleep got the signal too');
  const k = koci(['kill', id]);
  t.equal(k.status, 1);
  t.match(k.stderr, /container not running/, 'containerd matches "container not running" literally');
  t.equal(koci(['delete', id]).status, 0);
  t.equal(koci(['list', '--format', 'json']).stdout, '[]\n');
});

t.test('--log-format json writes errors as JSON lines', { skip }, async (t) => {
  const koci = kociCli(t);
  const dir = mkdtempSync(join(tmpdir(), 'koci-log-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const log = join(dir, 'log.json');
  const r = koci(['--log', log, '--log-format', 'json', 'delete', 'no-such-id']);
  t.equal(r.status, 1);
  const lines = readFileSync(log, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  const last = lines[lines.length - 1];
  t.equal(last.level, 'error');
  t.equal(last.msg, 'container "no-such-id" does not exist', 'containerd matches "does not exist"');
  t.ok(!Number.isNaN(Date.parse(last.time)), 'time is a date');
  t.equal(r.stderr, 'koci: container "no-such-id" does not exist\n');
});

t.test('--log-format json without --log: stderr is the JSON log; text stays `koci: msg`', { skip }, async (t) => {
  const koci = kociCli(t);
  const r = koci(['--log-format', 'json', 'delete', 'no-such-id']);
  t.equal(r.status, 1);
  const lines = r.stderr.split('\n').filter(Boolean);
  t.equal(lines.length, 1, `one line on stderr (${r.stderr.trim()})`);
  let entry: Record<string, unknown> = {};
  t.doesNotThrow(() => (entry = JSON.parse(lines[0]) as Record<string, unknown>), 'the line is JSON');
  t.same(Object.keys(entry).sort(), ['level', 'msg', 'time'], '{"level","msg","time"} as runc writes it');
  t.equal(entry.level, 'error');
  t.equal(entry.msg, 'container "no-such-id" does not exist');
  t.ok(!Number.isNaN(Date.parse(String(entry.time))), 'time is a date');

  const text = koci(['--log-format', 'text', 'delete', 'no-such-id']);
  t.equal(text.status, 1);
  t.equal(text.stderr, 'koci: container "no-such-id" does not exist\n', 'text format: the plain line, unchanged');
  t.equal(koci(['delete', 'no-such-id']).stderr, 'koci: container "no-such-id" does not exist\n', 'and so without --log-format');
});

t.test('--debug prints debug lines on stderr (text and JSON); without it there are none', { skip }, async (t) => {
  const koci = kociCli(t);
  const b = makeBundle(t, ['true']);
  const r = koci(['--debug', 'run', '--bundle', b.dir, uniqueId('dbg')]);
  t.equal(r.status, 0, r.stderr);
  t.match(r.stderr, /^koci: debug: run .*$/m, 'a debug line naming the command');
  const quiet = koci(['run', '--bundle', b.dir, uniqueId('dbg')]);
  t.equal(quiet.status, 0, quiet.stderr);
  t.equal(quiet.stderr, '', 'no debug output without --debug');
  const json = koci(['--debug', '--log-format', 'json', 'list', '-q']);
  t.equal(json.status, 0, json.stderr);
  const entries = json.stderr.split('\n').filter(Boolean).map((l) => JSON.parse(l) as { level: string; msg: string });
  t.ok(entries.length > 0 && entries.every((e) => e.level === 'debug'), `debug entries as JSON lines (${json.stderr.trim()})`);
  t.match(entries[0]?.msg, /^list /, 'naming the command');
});

t.test('kill with a SIG-prefixed name, and plain kill sending SIGTERM', { skip }, async (t) => {
  const koci = kociCli(t);
  // PID 1 of a pid namespace gets only signals it handles: the traps record what arrives
  const script = [
    "trap 'echo USR1 >> /got' USR1",
    "trap 'echo TERM >> /got; exit 143' TERM",
    'touch /ready',
    'while :; do sleep 0.05; done',
  ].join('; ');
  const b = makeBundle(t, ['sh', '-c', script], (s) => (s.root!.readonly = false));
  const got = join(b.rootfs, 'got');
  const read = () => (existsSync(got) ? readFileSync(got, 'utf8') : '');
  const waitFor = async (cond: () => boolean) => {
    for (let i = 0; i < 500 && !cond(); i++) await new Promise((r) => setTimeout(r, 10));
  };
  const id = uniqueId('sig');
  t.equal(koci(['run', '-d', '--bundle', b.dir, id]).status, 0, 'run -d');
  await waitFor(() => existsSync(join(b.rootfs, 'ready')));
  t.ok(existsSync(join(b.rootfs, 'ready')), 'the traps are set');

  const k = koci(['kill', id, 'SIGUSR1']);
  t.equal(k.status, 0, `kill ${id} SIGUSR1: ${k.stderr}`);
  await waitFor(() => read() !== '');
  t.equal(read(), 'USR1\n', 'the container got SIGUSR1 (and nothing else)');
  t.equal(stateOf(koci, id).status, 'running', 'and goes on running');

  const plain = koci(['kill', id]);
  t.equal(plain.status, 0, `kill ${id}: ${plain.stderr}`);
  for (let i = 0; i < 500 && stateOf(koci, id).status !== 'stopped'; i++) await new Promise((r) => setTimeout(r, 10));
  t.equal(stateOf(koci, id).status, 'stopped', 'it exited');
  t.equal(read(), 'USR1\nTERM\n', 'plain kill delivered SIGTERM');
  t.equal(koci(['delete', id]).status, 0);
});

t.test('an error in the container setup names the step, syscall, errno and path', { skip }, async (t) => {
  const koci = kociCli(t);
  const b = makeBundle(t, ['true'], (s) => {
    s.mounts!.push({ destination: '/mnt/x', type: 'nosuchfs', source: 'none' });
  });
  const id = uniqueId('cli');
  const r = koci(['create', '--bundle', b.dir, id]);
  t.equal(r.status, 1);
  t.equal(r.stderr.split('\n').length, 2, 'one line');
  t.match(r.stderr, /mount \/mnt\/x/, 'the step');
  t.match(r.stderr, /ENODEV/, 'the errno name');
  t.match(r.stderr, /\/mnt\/x/, 'the path');
  t.notOk(existsSync(join(koci.root, id)), 'no state left');
  t.notMatch(readFileSync('/proc/self/mountinfo', 'utf8'), b.dir, 'no mount left');
});

t.test('a cgroup in use by another container is refused, not shared', { skip }, async (t) => {
  // the same ID under two state roots maps to the same default cgroup path
  const a = kociCli(t);
  const b2 = kociCli(t);
  const b = makeBundle(t, ['sleep', '100']);
  const id = uniqueId('cg');
  t.equal(a(['run', '-d', '--bundle', b.dir, id]).status, 0);
  const r = b2(['create', '--bundle', b.dir, id]);
  t.equal(r.status, 1);
  t.match(r.stderr, /cgroup: .*is in use by pid \d+/);
  t.notOk(existsSync(join(b2.root, id)), 'nothing left by the refused create');
  t.equal(stateOf(a, id).status, 'running', 'the first container is untouched');
});
