/** Invalid configs are rejected by create, and nothing is left behind. */
import { existsSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Bundle, Ctx } from '../harness';
import type { Config } from '../spec';
import type { Case } from './types';

/**
 * create must fail for the config `edit` makes; nothing may run or remain. `marker` is a file
 * that only exists if something of the container ran (the process, or a hook that edit adds).
 * With `fromBundle`, the runtime is called from the bundle directory, so a relative path there resolves.
 */
function rejected(name: string, edit: (c: Config, b: Bundle, marker: string) => void, opts: { todo?: number; fromBundle?: boolean } = {}): Case {
  return {
    name: `invalid config: ${name}`,
    todo: opts.todo,
    run(t: Ctx) {
      const marker = join(t.tmp(), 'ran');
      const b = t.bundle((c, bb) => {
        c.process.args = ['sh', '-c', `touch ${marker}`];
        edit(c, bb, marker);
      });
      const cwd = process.cwd();
      if (opts.fromBundle) process.chdir(b.dir);
      let r: ReturnType<Ctx['create']>;
      try {
        r = t.create(b);
      } finally {
        process.chdir(cwd);
      }
      const { id, res, pidFile } = r;
      t.fails(res, 'create fails');
      t.ok(res.stderr.trim().length > 0, 'an error message is printed on stderr');
      t.fails(t.cli(['state', id]), 'no container with that ID exists afterwards');
      const l = t.cli(['list', '-q']);
      t.ok(!l.stdout.split('\n').includes(id), 'list does not show it');
      t.ok(!existsSync(pidFile), 'no pid file is written');
      t.ok(!existsSync(marker), 'nothing of the container ran');
    },
  };
}

export const invalid: Case[] = [
  rejected('ociVersion missing', (c) => delete c.ociVersion),
  rejected('ociVersion not SemVer', (c) => (c.ociVersion = 'banana')),
  rejected('process.args missing', (c) => delete c.process.args),
  rejected('process.args empty', (c) => (c.process.args = [])),
  rejected('process.cwd relative', (c) => (c.process.cwd = 'tmp')),
  // config.md: hooks' path MUST be absolute. The hook is there, executable, in the bundle directory (and the
  // runtime is called from it), so a runtime that resolves the relative path runs it instead of refusing
  rejected(
    'hook path relative',
    (c, b, marker) => {
      writeFileSync(join(b.dir, 'conf-hook.sh'), `#!/bin/sh\ntouch ${marker}\n`, { mode: 0o755 });
      c.hooks = { createRuntime: [{ path: 'conf-hook.sh' }] };
    },
    { fromBundle: true },
  ),
  rejected('hostname of the wrong type', (c) => (c.hostname = 42)),
  rejected('process.user.uid of the wrong type', (c) => (c.process.user.uid = 'root')),
  rejected('unknown namespace type', (c) => c.linux.namespaces.push({ type: 'bogus' })),
  rejected('hostname without a uts namespace', (c) => (c.linux.namespaces = c.linux.namespaces.filter((n: { type: string }) => n.type !== 'uts'))),
  rejected('root.path does not exist', (c) => (c.root.path = 'no-such-rootfs')),
  rejected('a namespace type listed twice', (c) => c.linux.namespaces.push({ type: 'ipc' })),
  rejected('unknown rlimit type', (c) => c.process.rlimits.push({ type: 'RLIMIT_BOGUS', soft: 1, hard: 1 })),
  rejected('rlimit soft above hard', (c) => (c.process.rlimits = [{ type: 'RLIMIT_NOFILE', soft: 2048, hard: 1024 }])),
  rejected('unknown seccomp action', (c) => (c.linux.seccomp = { defaultAction: 'SCMP_ACT_BOGUS' })),
  rejected('config.json is not JSON', (_c, b) => {
    b.save = () => writeFileSync(join(b.dir, 'config.json'), '{"ociVersion": "1.2.0", ');
  }),
  rejected('config.json missing', (_c, b) => {
    b.save = () => rmSync(join(b.dir, 'config.json'), { force: true });
  }),
];
