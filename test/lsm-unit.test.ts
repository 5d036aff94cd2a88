/**
 * LSM labels with a fake /proc (this host's kernel has neither AppArmor nor
 * SELinux, so their kernel effect cannot be shown here; the refusal that
 * applies on such a host is tested in capabilities.test.ts and exec.test.ts):
 * what koci writes, where, and when it refuses.
 */
import t from 'tap';

type Lsm = typeof import('../dist/lib/security/lsm');

/** lsm.js with node:fs replaced: `files` answer existsSync/readFileSync, writes are recorded */
function withFakeProc(t: Tap.Test, files: Record<string, string>): { lsm: Lsm; writes: Array<[string, string]> } {
  const writes: Array<[string, string]> = [];
  const fs = {
    existsSync: (p: string) => Object.hasOwn(files, p),
    readFileSync: (p: string) => {
      if (!Object.hasOwn(files, p)) throw Object.assign(new Error(`ENOENT: ${p}`), { code: 'ENOENT' });
      return files[p];
    },
    writeFileSync: (p: string, data: string) => void writes.push([p, String(data)]),
  };
  const lsm = t.mockRequire('../dist/lib/security/lsm', { 'node:fs': fs }) as Lsm;
  return { lsm, writes };
}

t.test('AppArmor: the profile goes to attr/apparmor/exec (attr/exec on older kernels) as "exec <profile>"', async (t) => {
  const spec = { ociVersion: '1.2.0', process: { apparmorProfile: 'koci-test', cwd: '/', user: { uid: 0, gid: 0 } } } as never;
  const modern = withFakeProc(t, { '/sys/module/apparmor/parameters/enabled': 'Y\n', '/proc/self/attr/apparmor/exec': '' });
  t.doesNotThrow(() => modern.lsm.checkLsm(spec), 'accepted where AppArmor is enabled');
  modern.lsm.setExecLabel(spec);
  t.same(modern.writes, [['/proc/self/attr/apparmor/exec', 'exec koci-test']]);
  const older = withFakeProc(t, { '/sys/module/apparmor/parameters/enabled': 'Y\n' });
  older.lsm.setExecLabel(spec);
  t.same(older.writes, [['/proc/self/attr/exec', 'exec koci-test']]);
  const off = withFakeProc(t, { '/sys/module/apparmor/parameters/enabled': 'N\n' });
  t.throws(() => off.lsm.checkLsm(spec), /AppArmor is not enabled on this host/, 'refused where it is not');
});

t.test('SELinux: process.selinuxLabel goes to attr/exec; mountLabel needs SELinux', async (t) => {
  const spec = { ociVersion: '1.2.0', process: { selinuxLabel: 'system_u:system_r:container_t:s0:c1,c2', cwd: '/', user: { uid: 0, gid: 0 } }, linux: { mountLabel: 'system_u:object_r:container_file_t:s0:c1,c2' } } as never;
  const on = withFakeProc(t, { '/sys/fs/selinux/enforce': '1' });
  t.doesNotThrow(() => on.lsm.checkLsm(spec));
  on.lsm.setExecLabel(spec);
  t.same(on.writes, [['/proc/self/attr/exec', 'system_u:system_r:container_t:s0:c1,c2']]);
  const off = withFakeProc(t, {});
  t.throws(() => off.lsm.checkLsm(spec), /process\.selinuxLabel is .* but SELinux is not enabled/);
  const mountOnly = { ociVersion: '1.2.0', linux: { mountLabel: 'x' } } as never;
  t.throws(() => off.lsm.checkLsm(mountOnly), /linux\.mountLabel is "x" but SELinux is not enabled/);
  const none = withFakeProc(t, {});
  none.lsm.setExecLabel({ ociVersion: '1.2.0', process: { cwd: '/', user: { uid: 0, gid: 0 } } } as never);
  t.same(none.writes, [], 'no label asked: nothing written');
});
