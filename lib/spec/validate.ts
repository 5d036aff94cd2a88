/**
 * Validate config.json (and the state and features documents) against the
 * precompiled schema validators in dist/validators/ (built by
 * scripts/build-validators.js), then against koci's semantic rules.
 * Validators are required lazily and once: nothing is compiled at run time.
 */
import { join } from 'node:path';
import type { ValidationIssue } from '../errors';
import { distDir } from '../paths';
import { semanticIssues } from './semantic';
import type { Spec } from './types';

/** the parts of an ajv ErrorObject koci reads */
interface SchemaError {
  instancePath: string;
  keyword: string;
  params: Record<string, unknown>;
  message?: string;
}

type CompiledValidator = ((data: unknown) => boolean) & { errors?: SchemaError[] | null };

const cache = new Map<string, Record<string, CompiledValidator>>();

/** require one generated module from dist/validators/, once */
function validators(file: 'config' | 'state' | 'features'): Record<string, CompiledValidator> {
  let mod = cache.get(file);
  if (!mod) {
    const path = join(distDir, 'validators', `${file}.js`);
    try {
      mod = require(path) as Record<string, CompiledValidator>;
    } catch (e) {
      throw new Error(`koci: precompiled validator ${path} cannot be loaded (run the build): ${(e as Error).message}`);
    }
    cache.set(file, mod);
  }
  return mod;
}

function describe(e: SchemaError): string {
  const p = e.params;
  switch (e.keyword) {
    case 'enum':
      return `must be one of ${(p.allowedValues as unknown[]).map((v) => JSON.stringify(v)).join(', ')}`;
    case 'additionalProperties':
      return `must not have property ${JSON.stringify(p.additionalProperty)}`;
    case 'required':
      return `must have required property '${String(p.missingProperty)}'`;
    default:
      return e.message ?? `fails ${e.keyword}`;
  }
}

/** combinators only say "some branch failed"; the branch errors say why */
const WRAPPERS = new Set(['anyOf', 'oneOf', 'allOf', 'if', 'not']);

function toIssues(errors: SchemaError[]): ValidationIssue[] {
  const explained = (e: SchemaError) =>
    errors.some((o) => o !== e && !WRAPPERS.has(o.keyword) && (o.instancePath === e.instancePath || o.instancePath.startsWith(e.instancePath + '/')));
  return errors
    .filter((e) => !(WRAPPERS.has(e.keyword) && explained(e)))
    .map((e) => ({ pointer: e.instancePath, rule: e.keyword, message: describe(e) }));
}

function dedupe(issues: ValidationIssue[]): ValidationIssue[] {
  const seen = new Set<string>();
  return issues.filter((i) => {
    const k = `${i.pointer}\0${i.rule}\0${i.message}`;
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}

function run(v: CompiledValidator, doc: unknown): ValidationIssue[] {
  return v(doc) ? [] : toIssues(v.errors ?? []);
}

/**
 * Problems with a parsed config.json: schema issues (official runtime-spec
 * schema plus koci's 1.1-1.3 extension schema), or, when the schemas pass,
 * semantic issues. [] means the config is usable.
 */
export function validateConfig(config: unknown): ValidationIssue[] {
  const v = validators('config');
  const issues = dedupe([...run(v.officialConfig, config), ...run(v.kociExtensions, config)]);
  if (issues.length > 0) return issues;
  return semanticIssues(config as Spec);
}

/** Problems with a state document (runtime-spec state schema only). */
export function validateState(state: unknown): ValidationIssue[] {
  return dedupe(run(validators('state').state, state));
}

/** Problems with a features document (koci's features schema). */
export function validateFeatures(features: unknown): ValidationIssue[] {
  return dedupe(run(validators('features').features, features));
}
