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
