/**
 * Ten containers created, started and deleted at the same time, each with its
 * own hostname: no lost state, no crossed wires, nothing left after.
 * Commands run as async child processes with stdio to files (a created
 * container holds the caller's stdio open, so pipes would never see EOF).
 */
import { spawn } from 'node:child_process';
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { KOCI, kociCli, makeBundle, rootSkipReason, stateOf, uniqueId, type Bundle } from './helpers/fixtures';
import { leftovers } from './helpers/leftovers';

const skip = rootSkipReason();
if (skip) t.comment(`skipping parallel tests: ${skip}`);

const N = 10;

interface Box {
  id: string;
  b: Bundle;
  out: string;
}

t.test(`${N} containers in parallel`, { skip }, async (t) => {
  const koci = kociCli(t);
  const io = mkdtempSync(join(tmpdir(), 'koci-par-'));
  t.teardown(() => rmSync(io, { recursive: true, force: true }));
  let n = 0;
  /** one koci command, async; stdout to `out` (the container's stdout too), stderr to a file */
  const kociAsync = (args: string[], out?: string) =>
    new Promise<{ status: number | null; stderr: string }>((resolve) => {
      const err = join(io, `${n++}.err`);
      const fds = [openSync(out ?? join(io, `${n}.out`), 'a'), openSync(err, 'w')];
      const child = spawn(KOCI, ['--root', koci.root, ...args], { stdio: ['ignore', fds[0], fds[1]] });
      const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
      child.on('exit', (status) => {
        clearTimeout(timer);
        fds.forEach((fd) => closeSync(fd));
        resolve({ status, stderr: readFileSync(err, 'utf8') });
      });
    });

  /** id -> status of every container, in one koci call */
  const statuses = (): Record<string, string> =>
    Object.fromEntries((JSON.parse(koci(['list', '--format', 'json']).stdout || '[]') as Array<{ id: string; status: string }>).map((c) => [c.id, c.status]));
  const boxes: Box[] = [];
  for (let i = 0; i < N; i++) {
    const b = makeBundle(t, ['sh', '-c', 'hostname; while [ ! -e /tmp/go ]; do sleep 0.02; done; echo bye'], (s) => {
      s.hostname = `par-${i}`;
      s.root!.readonly = false;
    });
    boxes.push({ id: uniqueId('par'), b, out: join(io, `c${i}.out`) });
  }
  const marker = `-${process.pid}-`;
  const before = leftovers(koci.root, boxes.map((x) => x.b.dir), marker);

  const created = await Promise.all(boxes.map((x) => kociAsync(['create', '--bundle', x.b.dir, x.id], x.out)));
  created.forEach((r, i) => t.equal(r.status, 0, `create ${i}: ${r.stderr}`));
  const pids = new Set<number>();
  for (const x of boxes) {
    const st = stateOf(koci, x.id);
    t.equal(st.status, 'created', `${x.id} created`);
    pids.add(st.pid as number);
  }
  t.equal(pids.size, N, 'every container has its own init');
  t.same(Object.keys(statuses()).sort(), boxes.map((x) => x.id).sort(), 'list shows all of them');

  const started = await Promise.all(boxes.map((x) => kociAsync(['start', x.id])));
  started.forEach((r, i) => t.equal(r.status, 0, `start ${i}: ${r.stderr}`));
  const running = statuses();
  for (const x of boxes) t.equal(running[x.id], 'running', `${x.id} running`);

  // each printed its own hostname
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline && !boxes.every((x) => readFileSync(x.out, 'utf8').includes('\n'))) await new Promise((r) => setTimeout(r, 20));
  boxes.forEach((x, i) => t.equal(readFileSync(x.out, 'utf8'), `par-${i}\n`, `container ${i} has hostname par-${i}`));

  for (const x of boxes) writeFileSync(join(x.b.rootfs, 'tmp', 'go'), '');
  const stopDeadline = Date.now() + 10_000;
  let st = statuses();
  while (Date.now() < stopDeadline && !boxes.every((x) => st[x.id] === 'stopped')) {
    await new Promise((r) => setTimeout(r, 25));
    st = statuses();
  }
  for (const x of boxes) t.equal(st[x.id], 'stopped', `${x.id} stopped`);
  boxes.forEach((x, i) => t.equal(readFileSync(x.out, 'utf8'), `par-${i}\nbye\n`, `container ${i} ran to its end`));

  const deleted = await Promise.all(boxes.map((x) => kociAsync(['delete', x.id])));
  deleted.forEach((r, i) => t.equal(r.status, 0, `delete ${i}: ${r.stderr}`));
  for (const x of boxes) t.notOk(existsSync(join(koci.root, x.id)), `${x.id} state removed`);
  t.same(leftovers(koci.root, boxes.map((x) => x.b.dir), marker), before, 'nothing left: state, cgroups, mounts, processes');
});

t.test(`${N} parallel runs and a parallel force-delete of running containers`, { skip }, async (t) => {
  const koci = kociCli(t);
  const io = mkdtempSync(join(tmpdir(), 'koci-par-'));
  t.teardown(() => rmSync(io, { recursive: true, force: true }));
  const run = (args: string[], out: string) =>
    new Promise<number | null>((resolve) => {
      const fd = openSync(out, 'w');
      const child = spawn(KOCI, ['--root', koci.root, ...args], { stdio: ['ignore', fd, fd] });
      const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
      child.on('exit', (status) => {
        clearTimeout(timer);
        closeSync(fd);
        resolve(status);
      });
    });
  const boxes = Array.from({ length: N }, (_, i) => ({
    id: uniqueId('prun'),
    b: makeBundle(t, ['sh', '-c', 'hostname; exec sleep 60'], (s) => (s.hostname = `prun-${i}`)),
    out: join(io, `${i}.out`),
  }));
  const marker = `-${process.pid}-`;
  const before = leftovers(koci.root, boxes.map((x) => x.b.dir), marker);
  const codes = await Promise.all(boxes.map((x) => run(['run', '--detach', '--bundle', x.b.dir, x.id], x.out)));
  codes.forEach((c, i) => t.equal(c, 0, `run -d ${i}: ${readFileSync(boxes[i].out, 'utf8')}`));
  for (const x of boxes) t.equal(stateOf(koci, x.id).status, 'running');
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline && !boxes.every((x) => readFileSync(x.out, 'utf8').includes('\n'))) await new Promise((r) => setTimeout(r, 20));
  boxes.forEach((x, i) => t.equal(readFileSync(x.out, 'utf8'), `prun-${i}\n`, `hostname prun-${i}`));
  const del = await Promise.all(boxes.map((x) => run(['delete', '--force', x.id], join(io, `${x.id}.del`))));
  del.forEach((c, i) => t.equal(c, 0, `delete --force ${i}`));
  t.same(leftovers(koci.root, boxes.map((x) => x.b.dir), marker), before, 'nothing left');
});
