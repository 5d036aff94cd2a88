/** mount(8)-style option strings -> mount(2) flags, propagation and fs data. */
import * as C from '../../bindings/constants';

export interface ParsedOptions {
  /** flags for the mount call itself */
  flags: number;
  /** propagation changes applied after mounting, in order */
  propagation: number[];
  /** options passed to the filesystem (tmpfs size=, mode=, ...) */
  data: string[];
  bind: boolean;
  recursive: boolean;
}

const SET: Record<string, number> = {
  ro: C.MS_RDONLY, nosuid: C.MS_NOSUID, nodev: C.MS_NODEV, noexec: C.MS_NOEXEC,
  sync: C.MS_SYNCHRONOUS, remount: C.MS_REMOUNT, mand: C.MS_MANDLOCK, dirsync: C.MS_DIRSYNC,
  noatime: C.MS_NOATIME, nodiratime: C.MS_NODIRATIME, relatime: C.MS_RELATIME,
  strictatime: C.MS_STRICTATIME, lazytime: C.MS_LAZYTIME, nosymfollow: C.MS_NOSYMFOLLOW,
  silent: C.MS_SILENT,
};
const CLEAR: Record<string, number> = {
  rw: C.MS_RDONLY, suid: C.MS_NOSUID, dev: C.MS_NODEV, exec: C.MS_NOEXEC, async: C.MS_SYNCHRONOUS,
  nomand: C.MS_MANDLOCK, atime: C.MS_NOATIME, diratime: C.MS_NODIRATIME, norelatime: C.MS_RELATIME,
  nostrictatime: C.MS_STRICTATIME, nolazytime: C.MS_LAZYTIME, symfollow: C.MS_NOSYMFOLLOW, loud: C.MS_SILENT,
};
export const PROPAGATION: Record<string, number> = {
  private: C.MS_PRIVATE, rprivate: C.MS_PRIVATE | C.MS_REC,
  shared: C.MS_SHARED, rshared: C.MS_SHARED | C.MS_REC,
  slave: C.MS_SLAVE, rslave: C.MS_SLAVE | C.MS_REC,
  unbindable: C.MS_UNBINDABLE, runbindable: C.MS_UNBINDABLE | C.MS_REC,
};

/** every option string parseMountOptions understands as a flag or propagation (others go to the filesystem) */
export const MOUNT_OPTIONS: readonly string[] = ['bind', 'rbind', 'defaults', ...Object.keys(SET), ...Object.keys(CLEAR), ...Object.keys(PROPAGATION)];

export function parseMountOptions(options: readonly string[] = []): ParsedOptions {
  const out: ParsedOptions = { flags: 0, propagation: [], data: [], bind: false, recursive: false };
  for (const o of options) {
    if (o === 'bind') out.bind = true;
    else if (o === 'rbind') out.bind = out.recursive = true;
    else if (o === 'defaults') continue;
    else if (o in SET) out.flags |= SET[o];
    else if (o in CLEAR) out.flags &= ~CLEAR[o];
    else if (o in PROPAGATION) out.propagation.push(PROPAGATION[o]);
    else out.data.push(o);
  }
  return out;
}
