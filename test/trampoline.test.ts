/**
 * The exec trampoline (lib/process/trampoline.ts): the ELF images run as
 * documented — natively for this machine's architecture, under qemu-user for
 * the other one when qemu is installed — and the memfd holding it is sealed.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { trampolineImage, TRAMPOLINE_ARGV0 } from '../dist/lib/process/trampoline';

const dir = mkdtempSync(join(tmpdir(), 'koci-trampoline-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

const QEMU: Record<string, string> = { x64: 'qemu-x86_64-static', arm64: 'qemu-aarch64-static' };
const qemuPath = (arch: string) => ['/usr/bin', '/usr/local/bin'].map((d) => join(d, QEMU[arch])).find(existsSync);

for (const arch of ['x64', 'arm64']) {
  const native = arch === process.arch;
  const qemu = native ? undefined : qemuPath(arch);
  const skip = native || qemu ? false : `${QEMU[arch]} is not installed (Debian: qemu-user-static) to run the ${arch} image on ${process.arch}`;
  if (skip) t.comment(`skipping the ${arch} trampoline: ${skip}`);
  t.test(`${arch} trampoline`, { skip }, async (t) => {
    const file = join(dir, `trampoline-${arch}`);
    writeFileSync(file, trampolineImage(arch), { mode: 0o755 });
    // run it with argv[0] = argv0 (qemu takes argv[0] from -0)
    const run = (argv0: string, args: string[], env: NodeJS.ProcessEnv = {}) =>
      qemu
        ? spawnSync(qemu, ['-0', argv0, file, ...args], { encoding: 'utf8', env })
        : spawnSync(file, args, { argv0, encoding: 'utf8', env });

    // the program is /bin/sh; its argv[0] is "the-name" (seen in its cmdline), then -c SCRIPT zero one
    const ok = run(TRAMPOLINE_ARGV0, ['/bin/sh', 'the-name', '-c', 'tr "\\0" " " < /proc/$$/cmdline; echo "|$0|$1|$FOO"', 'zero', 'one'], { FOO: 'bar' });
    t.equal(ok.status, 0, 'the program ran');
    t.match(ok.stdout, /^the-name -c /, 'with its own argv[0]');
    t.match(ok.stdout, /\|zero\|one\|bar\n$/, 'its arguments and the environment');

    const missing = run(TRAMPOLINE_ARGV0, ['/no/such/program', 'p']);
    t.equal(missing.status, 127, 'a failed execve exits 127');
    t.equal(missing.stderr, 'koci: exec failed\n', 'and says so on stderr');

    const asInterpreter = run('/proc/self/exe', ['/bin/sh', 'sh', '-c', 'echo ran']);
    t.equal(asInterpreter.status, 127, 'without koci\'s argv[0] (a script\'s interpreter) it execs nothing');
    t.equal(asInterpreter.stdout, '');
  });
}

t.test('the memfd is sealed against writes', async (t) => {
  // in a child: the bindings load koffi, and the fd is inspected through /proc
  const probe = `
    const { sealedTrampoline } = require(${JSON.stringify(join(__dirname, '..', 'dist', 'lib', 'process', 'trampoline.js'))});
    const fs = require('fs');
    const fd = sealedTrampoline();
    let write = 'ok';
    try { fs.writeSync(fd, Buffer.from('x'), 0, 1, 0); } catch (e) { write = e.code; }
    let reopen = 'ok';
    try { fs.writeFileSync('/proc/self/fd/' + fd, 'x'); } catch (e) { reopen = e.code; }
    console.log(JSON.stringify({ link: fs.readlinkSync('/proc/self/fd/' + fd), write, reopen, size: fs.fstatSync(fd).size }));`;
  const r = spawnSync(process.execPath, ['-e', probe], { encoding: 'utf8' });
  t.equal(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout);
  t.match(out.link, /^\/memfd:koci-exec/, 'a memfd');
  t.equal(out.write, 'EPERM', 'writing it is refused (F_SEAL_WRITE)');
  t.equal(out.reopen, 'EPERM', 'also through a new open of /proc/self/fd/N');
  t.equal(out.size, trampolineImage().length, 'it holds the image');
});
