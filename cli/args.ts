// Argument parsing shared by every command: `-h`/`--help` anywhere before `--` asks for the
// command's usage, and anything node:util's parser refuses becomes a one-line UsageError
// (exit 2) instead of its multi-line TypeError.
import { parseArgs, type ParseArgsOptionsConfig } from 'node:util';

/** A wrong invocation: shown as one line, exit code 2. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

export function wantsHelp(args: string[]): boolean {
  const end = args.indexOf('--');
  return (end === -1 ? args : args.slice(0, end)).some((a) => a === '--help' || a === '-h');
}

/** node:util parse errors carry a code; their messages run to several sentences. */
export function usageErrorFrom(err: unknown): UsageError | undefined {
  const e = err as { code?: unknown; message?: unknown };
  if (typeof e?.code !== 'string' || !e.code.startsWith('ERR_PARSE_ARGS_')) return undefined;
  const message = String(e.message);
  const quoted = /'([^']+)'/.exec(message)?.[1];
  switch (e.code) {
    case 'ERR_PARSE_ARGS_UNKNOWN_OPTION': return new UsageError(`unknown option '${quoted}'`);
    case 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL': return new UsageError(`unexpected argument '${quoted}'`);
    default: {
      const first = message.split(/\.\s/)[0]!.replace(/\.$/, ''); // e.g. "Option '--config <value>' argument missing"
      return new UsageError(first.charAt(0).toLowerCase() + first.slice(1));
    }
  }
}

export function parseCommand<T extends ParseArgsOptionsConfig>(args: string[], options: T, allowPositionals = false) {
  try {
    return parseArgs({ args, options, allowPositionals, strict: true });
  } catch (err) {
    throw usageErrorFrom(err) ?? err;
  }
}
