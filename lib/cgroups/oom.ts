/**
 * OOM notification from a container's memory cgroup, event-driven as runc
 * does it (libcontainer notify_linux.go, notify_v2_linux.go):
 *
 * - v1: an eventfd registered through `cgroup.event_control` with an fd of
 *   `memory.oom_control`. The kernel signals it when the cgroup goes under
 *   OOM, which is before the kill, so oom_kill may not have moved yet: each
 *   wake-up is one event, as in runc. The kernel also signals it when the
 *   cgroup is removed; then cgroup.event_control is gone.
 * - v2: inotify IN_MODIFY on `memory.events`; each wake-up compares its
 *   oom_kill count with the last one (runc reports any change while
 *   oom_kill > 0, which repeats old kills when only `high` moves).
 */
import { closeSync, existsSync, openSync, readFileSync, readSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { EFD_NONBLOCK, IN_MODIFY, IN_NONBLOCK } from '../../bindings/constants';
import { eventfd, inotifyAddWatch, inotifyInit } from '../../bindings/notify';
import * as libc from '../../bindings/libc';
import { type FdWatch, watchFd } from '../fd-watch';

export interface OomWatch extends FdWatch {
  readonly version: 1 | 2;
  /** report what happened since the last wake-up without waiting (the last look before ending) */
  check(): void;
}

/** oom_kill of a cgroup v2 memory.events, undefined when it cannot be read (cgroup removed) */
export function oomKillsV2(file: string): number | undefined {
  try {
    const m = /^oom_kill (\d+)$/m.exec(readFileSync(file, 'utf8'));
    return m ? Number(m[1]) : 0;
  } catch {
    return undefined;
  }
}

/**
 * Watch the memory cgroup among leaves (v1 first, as the stats do): onOom(n)
 * for n new OOM events, onGone once when the notification ends (the cgroup
 * was removed). Undefined when the host has no memory cgroup with
 * notifications or this Node cannot watch fds; the caller polls then.
 */
export function watchOom(leaves: readonly string[], onOom: (n: number) => void, onGone: () => void): OomWatch | undefined {
  const v1 = leaves.find((d) => existsSync(join(d, 'memory.oom_control')));
  if (v1 !== undefined) return watchV1(v1, onOom, onGone);
  const v2 = leaves.find((d) => existsSync(join(d, 'memory.events')));
  if (v2 !== undefined) return watchV2(join(v2, 'memory.events'), onOom, onGone);
  return undefined;
}

function closeQuietly(fd: number): void {
  try {
    libc.close(fd);
  } catch {
    /* nothing more to do with it */
  }
}

function watchV1(leaf: string, onOom: (n: number) => void, onGone: () => void): OomWatch | undefined {
  const control = join(leaf, 'cgroup.event_control');
  if (!existsSync(control)) return undefined;
  const efd = eventfd(0, EFD_NONBLOCK);
  try {
    const ofd = openSync(join(leaf, 'memory.oom_control'), 'r');
    try {
      // the kernel takes its references at registration: the oom_control fd can go right after
      writeFileSync(control, `${efd} ${ofd}`);
    } finally {
      closeSync(ofd);
    }
  } catch {
    closeQuietly(efd);
    return undefined;
  }
  let gone = false;
  const end = () => {
    if (gone) return;
    gone = true;
    onGone();
  };
  // an eventfd notification also comes when the cgroup is removed: its control file is gone then
  const notified = () => {
    if (gone) return;
    if (existsSync(control)) return onOom(1);
    end();
  };
  const w = watchFd(efd, notified, end);
  if (!w) {
    closeQuietly(efd);
    return undefined;
  }
  const counter = Buffer.alloc(8);
  return {
    ...w,
    version: 1,
    check: () => {
      try {
        // non-blocking (EFD_NONBLOCK, and libuv sets O_NONBLOCK too): EAGAIN when nothing is pending
        if (!gone && readSync(efd, counter, 0, 8, null) === 8) notified();
      } catch {
        /* EAGAIN */
      }
    },
    close: () => {
      gone = true;
      w.close();
    },
  };
}

function watchV2(file: string, onOom: (n: number) => void, onGone: () => void): OomWatch | undefined {
  const ifd = inotifyInit(IN_NONBLOCK);
  try {
    inotifyAddWatch(ifd, file, IN_MODIFY);
  } catch {
    closeQuietly(ifd);
    return undefined;
  }
  // read after the watch is in place, so no kill lands between the two unseen
  let last = oomKillsV2(file) ?? 0;
  let gone = false;
  const end = () => {
    if (gone) return;
    gone = true;
    onGone();
  };
  const changed = () => {
    if (gone) return;
    const n = oomKillsV2(file);
    if (n === undefined) return end();
    if (n > last) onOom(n - last);
    last = n;
  };
  // the events themselves do not matter: IN_MODIFY re-reads the count, IN_IGNORED (rmdir) finds it gone
  const w = watchFd(ifd, changed, end);
  if (!w) {
    closeQuietly(ifd);
    return undefined;
  }
  return {
    ...w,
    version: 2,
    check: changed,
    close: () => {
      gone = true;
      w.close();
    },
  };
}
