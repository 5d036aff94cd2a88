/** What the library and its zygote (zygote.ts) share; kept apart so the library does not load the zygote's code. */
import type { Request } from './helper';

/** the zygote's control socket */
export const ZYGOTE_CTL = 3;
/** fds 3..ZYGOTE_FDS+2 of the zygote are held (control socket, then /dev/null) for placing preserved fds; more go to the per-call helper */
export const ZYGOTE_FDS = 32;
/** a stdio map entry that is not an index into the request's fds: the worker opens /dev/null */
export const FD_DEV_NULL = -1;

export type ZygoteRequest = Request & {
  /**
   * what the container gets as fd i (0-2, then the preserved fds): an index
   * into the fds sent with the request (0 is the reply pipe), or FD_DEV_NULL
   */
  stdio: number[];
};
