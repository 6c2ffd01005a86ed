// Reads a relay config file: YAML → zod → a RelayConfig whose file references are absolute.
// Errors name the field path so a person (or the operator's status) can fix the exact line.
import fs from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import { relayConfigSchema, type RelayConfig } from './schema.ts';
import { formatIssues } from '../util/zod-issues.ts';

export class ConfigError extends Error {
  readonly issues: string[];
  constructor(source: string, issues: string[]) {
    super(`invalid config ${source}:\n  ${issues.join('\n  ')}`);
    this.name = 'ConfigError';
    this.issues = issues;
  }
}

// Every key named *File or *Dir holds a path; relative ones are taken from the config
// file's directory, so `mailfleet relay --config x/relay.yaml` works from anywhere.
function resolvePaths(value: unknown, baseDir: string): unknown {
  if (Array.isArray(value)) return value.map((v) => resolvePaths(v, baseDir));
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [
      k,
      typeof v === 'string' && /(File|Dir)$/.test(k) ? path.resolve(baseDir, v) : resolvePaths(v, baseDir),
    ]));
  }
  return value;
}

export function parseConfig(raw: unknown, source = 'config', baseDir = process.cwd()): RelayConfig {
  const result = relayConfigSchema.safeParse(raw);
  if (!result.success) throw new ConfigError(source, formatIssues(result.error));
  return resolvePaths(result.data, baseDir) as RelayConfig;
}

export function parseConfigText(text: string, source: string, baseDir: string): RelayConfig {
  let raw: unknown;
  try {
    raw = YAML.parse(text, { prettyErrors: true });
  } catch (err) {
    throw new ConfigError(source, [`YAML: ${(err as Error).message}`]);
  }
  return parseConfig(raw ?? {}, source, baseDir);
}

export function loadConfigFile(file: string): RelayConfig {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(file, [`cannot read: ${(err as Error).message}`]);
  }
  return parseConfigText(text, file, path.dirname(path.resolve(file)));
}

/** Every file a config refers to (certificates, hashes, keys): the reloader watches them. */
export function referencedFiles(config: RelayConfig): string[] {
  const files = new Set<string>();
  const walk = (v: unknown, key = ''): void => {
    if (Array.isArray(v)) v.forEach((x) => walk(x));
    else if (v && typeof v === 'object') Object.entries(v).forEach(([k, x]) => walk(x, k));
    else if (typeof v === 'string' && key.endsWith('File')) files.add(v);
  };
  walk(config);
  return [...files];
}
