/**
 * Kernel notification fds: eventfd (what cgroup v1's cgroup.event_control
 * signals, e.g. on a memory cgroup OOM) and inotify (cgroup v2 files such as
 * memory.events report changes as IN_MODIFY). The fds are plain numbers; the
 * caller waits on them (lib/fd-watch.ts) and closes them.
 */
import { EFD_CLOEXEC, IN_CLOEXEC } from './constants';
import { check, fn } from './libc';


/** eventfd2(2) through glibc's eventfd(); close-on-exec always */
export function eventfd(initval = 0, flags = 0): number {
  return check(fn('int eventfd(unsigned int initval, int flags)')(initval, flags | EFD_CLOEXEC) as number, 'eventfd2');
}

/** inotify_init1(2); close-on-exec always */
export function inotifyInit(flags = 0): number {
  return check(fn('int inotify_init1(int flags)')(flags | IN_CLOEXEC) as number, 'inotify_init1');
}

/** inotify_add_watch(2): the watch descriptor */
export function inotifyAddWatch(fd: number, path: string, mask: number): number {
  return check(fn('int inotify_add_watch(int fd, const char *path, uint32_t mask)')(fd, path, mask) as number, 'inotify_add_watch', path);
}
