/** The last steps before the user's program runs: find it, hand over exactly the right fds, exec. */
import { statSync } from 'node:fs';
import * as C from '../../bindings/constants';
import * as libc from '../../bindings/libc';
import { SetupError } from '../errors';

const X_OK = 1;

function isExecutableFile(p: string): boolean {
  try {
    return statSync(p).isFile() && libc.access(p, X_OK);
  } catch {
    return false;
  }
}

/** args[0] as the container will run it: a path as given, or the first match in the container's PATH */
export function lookPath(file: string, env: readonly string[]): string {
  if (file.includes('/')) {
    if (!isExecutableFile(file)) throw new SetupError('exec', `${file}: no such executable file`, file);
    return file;
  }
  const path = env.find((e) => e.startsWith('PATH='))?.slice(5) ?? '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
  for (const dir of path.split(':')) {
    const p = `${dir || '.'}/${file}`;
    if (isExecutableFile(p)) return p;
  }
  throw new SetupError('exec', `executable file ${JSON.stringify(file)} not found in $PATH`, file);
}

/**
 * Only stdio and the preserved fds (3 .. 3+preserve-1) cross execve. Node
 * marks its fds close-on-exec and leaves stdio non-blocking when they are
 * pipes; undo both for the fds that pass, mark every other fd close-on-exec.
 */
export function prepareFds(preserveFds: number): void {
  const last = 2 + preserveFds;
  for (let fd = 0; fd <= last; fd++) {
    try {
      libc.fcntl(fd, C.F_SETFD, 0);
      const fl = libc.fcntl(fd, C.F_GETFL);
      if (fd <= 2 && fl & C.O_NONBLOCK) libc.fcntl(fd, C.F_SETFL, fl & ~C.O_NONBLOCK);
    } catch {
      /* not open: nothing to pass */
    }
  }
  libc.closeRange(last + 1, 0xffffffff, C.CLOSE_RANGE_CLOEXEC);
}
