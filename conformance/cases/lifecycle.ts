/** Lifecycle, state, CLI error paths, --pid-file, annotations, hooks. */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { alive, readPid, sleep, type Ctx } from '../harness';
import type { Case } from './types';

const LONG = ['sh', '-c', 'echo started; exec sleep 60'];

function stateFields(t: Ctx, id: string, status: string, bundle: string): Record<string, any> | undefined {
  const s = t.state(id);
  if (!t.ok(s, `state ${status}: state succeeds and prints JSON`)) return undefined;
  t.equal(s!.status, status, `state ${status}: status is ${status}`);
  t.equal(s!.id, id, `state ${status}: id`);
  t.equal(s!.bundle, bundle, `state ${status}: bundle is the absolute bundle path`);
  t.match(s!.ociVersion, /^\d+\.\d+\.\d+/, `state ${status}: ociVersion is a SemVer string`);
  return s;
}

/** is `id` absent from the runtime: state fails and `list -q` does not name it */
function gone(t: Ctx, id: string, what: string): void {
  t.fails(t.cli(['state', id]), `${what}: state ${id} fails`);
  const l = t.cli(['list', '-q']);
  t.ok(l.status === 0 && !l.stdout.split('\n').includes(id), `${what}: list does not show the container`, l.stdout + l.stderr);
}

export const lifecycle: Case[] = [
  {
    name: 'lifecycle: create, state, start, kill, delete',
    run(t) {
      const b = t.bundle((c) => (c.process.args = LONG));
      const { id, res, pidFile } = t.create(b);
      if (!t.succeeds(res, 'create succeeds')) return;
      const s = stateFields(t, id, 'created', b.dir);
      t.ok(Number.isInteger(s?.pid) && s!.pid > 0, 'state created: pid is a positive integer', s?.pid);
      t.equal(readPid(pidFile), s?.pid, 'pid file holds the state pid');
      sleep(150);
      t.ok(!readFileSync(b.stdout, 'utf8').includes('started'), 'the user process has not run after create');
      t.succeeds(t.cli(['start', id]), 'start succeeds');
      t.ok(t.waitFor(b.stdout, /started/), 'the user process runs after start');
      const r = stateFields(t, id, 'running', b.dir);
      t.equal(r?.pid, s?.pid, 'state running: same pid as created');
      t.succeeds(t.cli(['kill', id, 'KILL']), 'kill KILL succeeds');
      t.ok(t.waitExit(id, s?.pid), 'container stops after SIGKILL');
      stateFields(t, id, 'stopped', b.dir);
      t.succeeds(t.cli(['delete', id]), 'delete of the stopped container succeeds');
      gone(t, id, 'after delete');
    },
  },
  {
    name: 'lifecycle: a process that exits on its own leaves the container stopped',
    run(t) {
      const b = t.bundle((c) => (c.process.args = ['sh', '-c', 'echo done; exit 7']));
      const { id, res } = t.create(b);
      if (!t.succeeds(res, 'create succeeds')) return;
      const pid = t.state(id)?.pid;
      t.succeeds(t.cli(['start', id]), 'start succeeds');
      t.ok(t.waitExit(id, pid), 'container reaches stopped');
      t.equal(t.state(id)?.status, 'stopped', 'state says stopped');
      t.match(readFileSync(b.stdout, 'utf8'), /done/, 'the process ran');
      t.succeeds(t.cli(['delete', id]), 'delete succeeds');
    },
  },
  {
    name: 'state: annotations are reported',
    run(t) {
      const ann = { 'org.example.conformance': 'yes', 'com.example/with space': 'a b = c' };
      const b = t.bundle((c) => {
        c.process.args = LONG;
        c.annotations = ann;
      });
      const { id, res } = t.create(b);
      if (!t.succeeds(res, 'create succeeds')) return;
      const s = t.state(id);
      const sorted = (o: unknown) => JSON.stringify(Object.entries((o ?? {}) as Record<string, string>).sort());
      t.equal(sorted(s?.annotations), sorted(ann), 'state.annotations equals config annotations');
    },
  },
  {
    name: 'create: an existing ID is refused and the first container is untouched',
    run(t) {
      const b1 = t.bundle((c) => (c.process.args = LONG));
      const b2 = t.bundle((c) => (c.process.args = LONG));
      const { id, res } = t.create(b1);
      if (!t.succeeds(res, 'first create succeeds')) return;
      const pid = t.state(id)?.pid;
      t.fails(t.create(b2, id).res, 'second create with the same ID fails');
      const s = t.state(id);
      t.equal(s?.status, 'created', 'first container still created');
      t.equal(s?.bundle, b1.dir, 'first container keeps its bundle');
      t.equal(s?.pid, pid, 'first container keeps its pid');
      t.ok(pid && alive(pid), 'first container init still alive');
    },
  },
  {
    name: 'start: starting a running container fails',
    run(t) {
      const b = t.bundle((c) => (c.process.args = LONG));
      const { id, res } = t.create(b);
      if (!t.succeeds(res, 'create succeeds')) return;
      t.succeeds(t.cli(['start', id]), 'first start succeeds');
      t.fails(t.cli(['start', id]), 'second start fails');
      t.equal(t.state(id)?.status, 'running', 'container still running');
      t.equal((readFileSync(b.stdout, 'utf8').match(/started/g) ?? []).length, 1, 'the process ran once');
    },
  },
  {
    name: 'start: starting a stopped container fails',
    run(t) {
      const b = t.bundle((c) => (c.process.args = ['sh', '-c', 'echo ran']));
      const { id, res } = t.create(b);
      if (!t.succeeds(res, 'create succeeds')) return;
      const pid = t.state(id)?.pid;
      t.succeeds(t.cli(['start', id]), 'first start succeeds');
      t.waitExit(id, pid);
      t.fails(t.cli(['start', id]), 'start of the stopped container fails');
      t.equal(t.state(id)?.status, 'stopped', 'container still stopped');
      t.equal((readFileSync(b.stdout, 'utf8').match(/ran/g) ?? []).length, 1, 'the process ran once');
    },
  },
  {
    name: 'unknown IDs: state, start, kill and delete fail',
    run(t) {
      const id = t.id('unknown');
      t.fails(t.cli(['state', id]), 'state of an unknown ID fails');
      t.fails(t.cli(['start', id]), 'start of an unknown ID fails');
      t.fails(t.cli(['kill', id, 'KILL']), 'kill of an unknown ID fails');
      t.fails(t.cli(['delete', id]), 'delete of an unknown ID fails');
    },
  },
  {
    name: 'delete: a running container is refused without --force, removed with it',
    run(t) {
      const b = t.bundle((c) => (c.process.args = LONG));
      const { id, res } = t.create(b);
      if (!t.succeeds(res, 'create succeeds')) return;
      const pid = t.state(id)?.pid as number;
      t.succeeds(t.cli(['start', id]), 'start succeeds');
      t.fails(t.cli(['delete', id]), 'delete without --force fails');
      t.equal(t.state(id)?.status, 'running', 'container still running after the refused delete');
      t.ok(alive(pid), 'process still alive after the refused delete');
      t.succeeds(t.cli(['delete', '--force', id]), 'delete --force succeeds');
      let end = Date.now() + 5000;
      while (alive(pid) && Date.now() < end) sleep(10);
      t.ok(!alive(pid), 'the process is gone after delete --force');
      gone(t, id, 'after delete --force');
    },
  },
  {
    name: 'kill: a created container can be killed before start; its process never runs',
    run(t) {
      const b = t.bundle((c) => (c.process.args = LONG));
      const { id, res } = t.create(b);
      if (!t.succeeds(res, 'create succeeds')) return;
      const pid = t.state(id)?.pid;
      t.succeeds(t.cli(['kill', id, 'KILL']), 'kill KILL of the created container succeeds');
      t.ok(t.waitExit(id, pid), 'container stops');
      t.equal(t.state(id)?.status, 'stopped', 'state says stopped');
      t.ok(!readFileSync(b.stdout, 'utf8').includes('started'), 'the user process never ran');
      t.succeeds(t.cli(['delete', id]), 'delete succeeds');
    },
  },
  {
    name: 'kill: signals by name and number reach the process',
    run(t) {
      const b = t.bundle((c) => {
        c.process.args = ['sh', '-c', 'trap "echo got-usr1" USR1; trap "echo got-term; exit 0" TERM; echo ready; while :; do sleep 0.05; done'];
      });
      const { id, res } = t.create(b);
      if (!t.succeeds(res, 'create succeeds')) return;
      const pid = t.state(id)?.pid;
      t.succeeds(t.cli(['start', id]), 'start succeeds');
      t.ok(t.waitFor(b.stdout, /ready/), 'container is ready');
      t.succeeds(t.cli(['kill', id, 'SIGUSR1']), 'kill SIGUSR1 succeeds');
      t.ok(t.waitFor(b.stdout, /got-usr1/), 'SIGUSR1 delivered');
      t.equal(t.state(id)?.status, 'running', 'still running after a handled signal');
      t.succeeds(t.cli(['kill', id, '15']), 'kill 15 succeeds');
      t.ok(t.waitFor(b.stdout, /got-term/), 'SIGTERM (15) delivered');
      t.ok(t.waitExit(id, pid), 'container stops after its TERM handler exits');
    },
  },
  {
    name: 'kill: default signal is SIGTERM',
    run(t) {
      const b = t.bundle((c) => (c.process.args = ['sh', '-c', 'trap "echo got-term; exit 0" TERM; echo ready; while :; do sleep 0.05; done']));
      const { id, res } = t.create(b);
      if (!t.succeeds(res, 'create succeeds')) return;
      const pid = t.state(id)?.pid;
      t.succeeds(t.cli(['start', id]), 'start succeeds');
      t.ok(t.waitFor(b.stdout, /ready/), 'container is ready');
      t.succeeds(t.cli(['kill', id]), 'kill without a signal succeeds');
      t.ok(t.waitFor(b.stdout, /got-term/), 'SIGTERM delivered');
      t.ok(t.waitExit(id, pid), 'container stops');
    },
  },
  {
    name: 'delete: an ID can be reused after delete',
    run(t) {
      const b = t.bundle((c) => (c.process.args = LONG));
      const { id, res } = t.create(b);
      if (!t.succeeds(res, 'create succeeds')) return;
      t.succeeds(t.cli(['delete', '--force', id]), 'delete --force of the created container succeeds');
      gone(t, id, 'after delete');
      const b2 = t.bundle((c) => (c.process.args = LONG));
      t.succeeds(t.create(b2, id).res, 'create with the same ID succeeds again');
      t.equal(t.state(id)?.bundle, b2.dir, 'the new container has the new bundle');
    },
  },
  {
    name: 'stdio: the container inherits the caller\'s stdin, stdout and stderr',
    run(t) {
      const b = t.bundle((c) => (c.process.args = ['sh', '-c', 'read line; echo "out:$line"; echo "err:$line" >&2']));
      const input = join(t.tmp(), 'in');
      writeFileSync(input, 'hello-stdin\n');
      const id = t.id();
      const res = t.cli(['create', '--bundle', b.dir, id], 30_000, b.stdout, input);
      if (!t.succeeds(res, 'create succeeds')) return;
      const pid = t.state(id)?.pid;
      t.succeeds(t.cli(['start', id]), 'start succeeds');
      t.waitExit(id, pid);
      t.match(readFileSync(b.stdout, 'utf8'), /^out:hello-stdin$/m, 'stdin read, stdout reaches the caller\'s stdout');
      t.match(readFileSync(b.stderr, 'utf8'), /^err:hello-stdin$/m, 'stderr reaches the caller\'s stderr');
    },
  },
  {
    name: 'list: shows the containers in the root with their status',
    run(t) {
      const b1 = t.bundle((c) => (c.process.args = LONG));
      const b2 = t.bundle((c) => (c.process.args = LONG));
      const a = t.create(b1);
      const b = t.create(b2);
      if (!t.succeeds(a.res, 'first create succeeds') || !t.succeeds(b.res, 'second create succeeds')) return;
      t.succeeds(t.cli(['start', b.id]), 'start of the second succeeds');
      const q = t.cli(['list', '-q']).stdout.split('\n');
      t.ok(q.includes(a.id) && q.includes(b.id), 'list -q names both', q);
      const table = t.cli(['list']).stdout.split('\n');
      t.match(table.find((l) => l.startsWith(a.id + ' ')), /\bcreated\b/, 'list shows the first as created');
      t.match(table.find((l) => l.startsWith(b.id + ' ')), /\brunning\b/, 'list shows the second as running');
    },
  },
  {
    name: '--pid-file: written at create with the container init pid',
    run(t) {
      const b = t.bundle((c) => (c.process.args = ['sh', '-c', 'exec sleep 61']));
      const pidFile = join(t.tmp(), 'sub.pid');
      const id = t.id();
      const res = t.cli(['create', '--bundle', b.dir, '--pid-file', pidFile, id], 30_000, b.stdout);
      if (!t.succeeds(res, 'create succeeds')) return;
      t.ok(existsSync(pidFile), 'pid file exists after create');
      const content = existsSync(pidFile) ? readFileSync(pidFile, 'utf8') : '';
      t.match(content, /^\d+$/, 'pid file holds only a number (no newline)');
      const pid = readPid(pidFile);
      t.equal(pid, t.state(id)?.pid, 'pid file matches state pid');
      t.ok(pid && alive(pid), 'that process is alive');
      t.succeeds(t.cli(['start', id]), 'start succeeds');
      let cmd = '';
      const end = Date.now() + 5000;
      while (Date.now() < end && !cmd.includes('61')) {
        cmd = existsSync(`/proc/${pid}/cmdline`) ? readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ') : '';
        sleep(10);
      }
      t.match(cmd, /sleep 61/, 'the pid is the container process (exec\'d sleep 61)');
    },
  },
];

/** hook that records its name, stdin and env into dir */
function hook(dir: string, name: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    path: '/bin/sh',
    args: ['sh', '-c', `cat > ${dir}/${name}.json; echo "${name} $0 $HOOKVAR" >> ${dir}/order`, 'arg0'],
    env: ['HOOKVAR=v-' + name],
    ...extra,
  };
}
const KINDS = ['prestart', 'createRuntime', 'createContainer', 'startContainer', 'poststart', 'poststop'];

function hookBundle(t: Ctx, edit?: (hooks: Record<string, unknown[]>, dir: string) => void) {
  const dir = t.tmp('conf-hooks-');
  const b = t.bundle((c) => {
    c.process.args = ['sh', '-c', `echo user >> ${dir}/order; exec sleep 60`];
    c.root.readonly = false;
    // the same path inside the container, for hooks run in the container namespace
    c.mounts.push({ destination: dir, type: 'bind', source: dir, options: ['rbind', 'rw'] });
    c.hooks = Object.fromEntries(KINDS.map((k) => [k, [hook(dir, k)]]));
    edit?.(c.hooks, dir);
  });
  return { b, dir, order: () => (existsSync(join(dir, 'order')) ? readFileSync(join(dir, 'order'), 'utf8').trim().split('\n').map((l) => l.split(' ')[0]) : []) };
}

export const hooks: Case[] = [
  {
    name: 'hooks: every kind runs, in lifecycle order',
    run(t) {
      const { b, dir, order } = hookBundle(t);
      const { id, res } = t.create(b);
      if (!t.succeeds(res, 'create succeeds')) return;
      const o1 = order();
      for (const k of ['prestart', 'createRuntime', 'createContainer']) t.ok(o1.includes(k), `${k} ran during create`, o1);
      t.ok(!o1.includes('startContainer') && !o1.includes('poststart'), 'startContainer and poststart not run by create', o1);
      t.ok(o1.indexOf('createRuntime') < o1.indexOf('createContainer'), 'createRuntime before createContainer', o1);
      t.ok(o1.indexOf('prestart') < o1.indexOf('createContainer'), 'prestart before createContainer', o1);
      t.succeeds(t.cli(['start', id]), 'start succeeds');
      t.waitFor(join(dir, 'order'), /user/);
      t.waitFor(join(dir, 'order'), /poststart/);
      const o2 = order();
      t.ok(o2.indexOf('startContainer') >= 0 && o2.indexOf('startContainer') < o2.indexOf('user'), 'startContainer runs before the user process', o2);
      t.ok(o2.includes('poststart'), 'poststart ran', o2);
      t.ok(!o2.includes('poststop'), 'poststop not run before delete', o2);
      t.succeeds(t.cli(['kill', id, 'KILL']), 'kill succeeds');
      t.waitExit(id, t.state(id)?.pid);
      t.succeeds(t.cli(['delete', id]), 'delete succeeds');
      const o3 = order();
      t.equal(o3[o3.length - 1], 'poststop', 'poststop ran last, at delete');
    },
  },
  {
    name: 'hooks: stdin carries the container state; args and env are passed',
    run(t) {
      const { b, dir } = hookBundle(t);
      const { id, res } = t.create(b);
      if (!t.succeeds(res, 'create succeeds')) return;
      const pid = t.state(id)?.pid;
      t.succeeds(t.cli(['start', id]), 'start succeeds');
      t.waitFor(join(dir, 'order'), /poststart/);
      t.succeeds(t.cli(['delete', '--force', id]), 'delete --force succeeds');
      for (const k of KINDS) {
        let s: Record<string, any> | undefined;
        try {
          s = JSON.parse(readFileSync(join(dir, `${k}.json`), 'utf8'));
        } catch {
          s = undefined;
        }
        if (!t.ok(s, `${k}: stdin is state JSON`)) continue;
        t.equal(s!.id, id, `${k}: state id`);
        t.equal(s!.bundle, b.dir, `${k}: state bundle`);
        // runtime.md: for hooks executed in the container namespace, pid is the pid as seen by the container
        // (the init is PID 1 of its new pid namespace); for the others, as seen by the runtime (the host)
        if (['createContainer', 'startContainer'].includes(k)) t.equal(s!.pid, 1, `${k}: state pid is 1, the container init as seen in the container`);
        else if (k !== 'poststop') t.equal(s!.pid, pid, `${k}: state pid is the container init as seen by the host`);
      }
      const lines = readFileSync(join(dir, 'order'), 'utf8').trim().split('\n');
      const pre = lines.find((l) => l.startsWith('prestart '));
      t.equal(pre, 'prestart arg0 v-prestart', 'hook args (argv[0] onwards) and env are passed');
    },
  },
  {
    name: 'hooks: a failing prestart hook fails create and leaves nothing',
    run(t) {
      const { b, dir, order } = hookBundle(t, (h) => {
        h.prestart = [{ path: '/bin/sh', args: ['sh', '-c', 'exit 3'] }];
        delete h.createRuntime;
        delete h.createContainer;
      });
      void dir;
      const { id, res } = t.create(b);
      t.fails(res, 'create fails');
      gone(t, id, 'after the failed create');
      t.ok(!order().includes('user'), 'the user process never ran');
      t.ok(!order().includes('startContainer'), 'startContainer never ran');
    },
  },
  {
    name: 'hooks: a failing createRuntime hook fails create and leaves nothing',
    run(t) {
      const { b, order } = hookBundle(t, (h) => {
        h.createRuntime = [{ path: '/bin/sh', args: ['sh', '-c', 'exit 1'] }];
        delete h.prestart;
      });
      const { id, res } = t.create(b);
      t.fails(res, 'create fails');
      gone(t, id, 'after the failed create');
      t.ok(!order().includes('user'), 'the user process never ran');
    },
  },
  {
    name: 'hooks: a failing poststop hook does not stop delete',
    run(t) {
      const { b, order } = hookBundle(t, (h) => {
        h.poststop = [{ path: '/bin/sh', args: ['sh', '-c', 'exit 1'] }, ...(h.poststop as unknown[])];
      });
      const { id, res } = t.create(b);
      if (!t.succeeds(res, 'create succeeds')) return;
      t.succeeds(t.cli(['kill', id, 'KILL']), 'kill succeeds');
      t.waitExit(id, t.state(id)?.pid);
      t.cli(['delete', id]);
      gone(t, id, 'after delete');
      void order;
    },
  },
  {
    name: 'hooks: a hook exceeding its timeout fails create',
    run(t) {
      const { b } = hookBundle(t, (h) => {
        h.createRuntime = [{ path: '/bin/sh', args: ['sh', '-c', 'exec sleep 10'], timeout: 1 }];
      });
      const t0 = Date.now();
      const { id, res } = t.create(b);
      t.fails(res, 'create fails');
      t.ok(Date.now() - t0 < 8000, 'create returns soon after the 1 s timeout', `${Date.now() - t0} ms`);
      gone(t, id, 'after the timed-out hook');
    },
  },
];

