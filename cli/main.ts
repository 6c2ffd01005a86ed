// Command-line entry: parses the subcommand and hands off. Exit codes: 0 ok, 1 a check or
// the command failed (e.g. invalid config), 2 usage error. Nothing reaches the terminal as
// a stack trace: errors print as `mailfleet COMMAND: message`.
import { parseCommand, usageErrorFrom, UsageError, wantsHelp } from './args.ts';
import { USAGE } from './usage.ts';
import { packageVersion } from './version.ts';

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8').replace(/\r?\n$/, '');
}

async function relay(args: string[]): Promise<number> {
  const { values } = parseCommand(args, { config: { type: 'string', short: 'c' }, dev: { type: 'boolean' }, deliver: { type: 'boolean' } });
  if (values.config && values.dev) throw new UsageError('give --config FILE or --dev, not both');
  if (!values.config && !values.dev) throw new UsageError('give --config FILE (or --dev for the loopback dev relay)');
  if (values.deliver && !values.dev) throw new UsageError('--deliver goes with --dev (a config file sets delivery.mode)');
  const { runRelay } = await import('./relay.ts');
  return values.dev ? runRelay({ dev: { deliver: values.deliver ?? false } }) : runRelay({ configFile: values.config! });
}

async function config(args: string[]): Promise<number> {
  const { values, positionals } = parseCommand(args, { 'schema-only': { type: 'boolean' } }, true);
  const [sub, file, ...extra] = positionals;
  if (extra.length) throw new UsageError(`unexpected argument '${extra[0]}'`);
  if (sub === 'schema') {
    if (file) throw new UsageError(`unexpected argument '${file}'`);
    const { z } = await import('zod');
    const { relayConfigSchema } = await import('../relay/config/schema.ts');
    process.stdout.write(`${JSON.stringify(z.toJSONSchema(relayConfigSchema, { io: 'input', unrepresentable: 'any' }), null, 2)}\n`);
    return 0;
  }
  if (sub !== 'check') throw new UsageError(sub ? `unknown subcommand '${sub}'` : 'give a subcommand: check FILE or schema');
  if (!file) throw new UsageError('give the config FILE to check');
  const { loadConfigFile } = await import('../relay/config/load.ts');
  const { buildRuntime } = await import('../relay/config/runtime.ts');
  // A full check also reads every referenced file (hashes, keys); --schema-only validates a
  // config written for another machine. Errors (ConfigError) print by field, exit 1.
  const cfg = loadConfigFile(file);
  if (!values['schema-only']) buildRuntime(cfg);
  process.stdout.write(`${file}: ok\n`);
  return 0;
}

async function hashPasswordCommand(args: string[]): Promise<number> {
  parseCommand(args, {});
  const pw = process.stdin.isTTY ? '' : await readStdin();
  if (!pw) throw new UsageError("give the password on stdin: echo -n 'the password' | mailfleet hash-password");
  const { hashPassword } = await import('../relay/auth/password.ts');
  process.stdout.write(`${await hashPassword(pw)}\n`);
  return 0;
}

async function suppression(args: string[]): Promise<number> {
  const { runSuppression } = await import('./suppression.ts');
  return runSuppression(args);
}

async function operator(args: string[]): Promise<number> {
  const { runOperator } = await import('../operator/main.ts');
  return runOperator(args);
}

async function queue(args: string[]): Promise<number> {
  const { queueCommand } = await import('./queue.ts');
  return queueCommand(args);
}

async function dns(args: string[]): Promise<number> {
  const { dnsCommand } = await import('./dns.ts');
  return dnsCommand(args);
}

const COMMANDS: Record<string, (args: string[]) => Promise<number>> = {
  relay, operator, config, 'hash-password': hashPasswordCommand, suppression, queue, dns,
};

async function dispatch(cmd: string | undefined, rest: string[]): Promise<number> {
  if (cmd === '--version') {
    process.stdout.write(`mailfleet ${packageVersion()}\n`);
    return 0;
  }
  if (cmd === undefined || cmd === '--help' || cmd === '-h' || cmd === 'help') {
    const topic = cmd === 'help' && rest[0] && rest[0] in USAGE ? rest[0] : 'mailfleet';
    process.stdout.write(USAGE[topic]!);
    return 0;
  }
  const command = COMMANDS[cmd];
  if (!command) {
    throw new UsageError(cmd.startsWith('-') ? `unknown option '${cmd}'` : `unknown command '${cmd}'`);
  }
  if (wantsHelp(rest)) {
    process.stdout.write(USAGE[cmd]!);
    return 0;
  }
  return command(rest);
}

export async function run(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  try {
    return await dispatch(cmd, rest);
  } catch (err) {
    const name = cmd && cmd in COMMANDS ? `mailfleet ${cmd}` : 'mailfleet';
    // the operator parses its own flags: its parse errors are usage errors too
    const usage = err instanceof UsageError ? err : usageErrorFrom(err);
    if (usage) {
      process.stderr.write(`${name}: ${usage.message} (see: ${name} --help)\n`);
      return 2;
    }
    // ConfigError messages list the fields at fault, one per line; anything else is one line
    const e = err as Error;
    process.stderr.write(e?.name === 'ConfigError' ? `${e.message}\n` : `${name}: ${e?.message ?? String(err)}\n`);
    return 1;
  }
}
