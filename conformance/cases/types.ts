import type { Ctx } from '../harness';

export interface Case {
  name: string;
  /** when run against koci: TAP `# TODO issue N` (a later open issue delivers the feature) */
  todo?: number;
  /** where the reference runtimes disagree: which one the case follows, and the runtime-spec text it rests on */
  note?: string;
  run(t: Ctx): void;
}
