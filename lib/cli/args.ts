/**
 * A small runc-style argument parser: global options before the command,
 * command options after it; `--flag value`, `--flag=value`, and Go's
 * single-dash `-flag value` spellings are all accepted, as orchestrators use them.
 */
export interface OptionSpec {
  /** canonical name -> aliases (without dashes) */
  names: readonly string[];
  /** takes a value */
  value: boolean;
  /** may be repeated: every value lands in `lists` (`--env A=1 --env B=2`) */
  multi?: boolean;
}

export class UsageError extends Error {
  override name = 'UsageError';
  readonly code = 'EKOCI_USAGE';
}

export interface Parsed {
  options: Record<string, string | boolean>;
  /** values of the repeatable options, in order */
  lists: Record<string, string[]>;
  rest: string[];
}

/**
 * Parse options until the first positional argument when stopAtPositional
 * (global options), else anywhere (command options may follow the ID).
 */
export function parseArgs(argv: string[], specs: Readonly<Record<string, OptionSpec>>, stopAtPositional: boolean): Parsed {
  const byName = new Map<string, [string, OptionSpec]>();
  for (const [canon, s] of Object.entries(specs)) for (const n of s.names) byName.set(n, [canon, s]);
  const options: Record<string, string | boolean> = {};
  const lists: Record<string, string[]> = {};
  const rest: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--') {
      rest.push(...argv.slice(i + 1));
      break;
    }
    if (!a.startsWith('-') || a === '-') {
      if (stopAtPositional) {
        rest.push(...argv.slice(i));
        break;
      }
      rest.push(a);
      continue;
    }
    const body = a.replace(/^--?/, '');
    const eq = body.indexOf('=');
    const name = eq >= 0 ? body.slice(0, eq) : body;
    const found = byName.get(name);
    if (!found) throw new UsageError(`unknown option ${a}`);
    const [canon, spec] = found;
    if (spec.value) {
      let value: string;
      if (eq >= 0) value = body.slice(eq + 1);
      else if (i + 1 < argv.length) value = argv[++i];
      else throw new UsageError(`option ${a} needs a value`);
      if (spec.multi) (lists[canon] ??= []).push(value);
      else options[canon] = value;
    } else {
      options[canon] = eq >= 0 ? body.slice(eq + 1) !== 'false' : true;
    }
  }
  return { options, lists, rest };
}
