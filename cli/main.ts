// Command-line entry: parses the subcommand and hands off. Exit codes: 0 ok, 1 a check
// failed (e.g. invalid config), 2 usage error.
import { parseArgs } from 'node:util';
import { z } from 'zod';
import { loadConfigFile, ConfigError } from '../relay/config/load.ts';
import { relayConfigSchema } from '../relay/config/schema.ts';
import { hashPassword } from '../relay/auth/password.ts';
import { buildRuntime } from '../relay/config/runtime.ts';

const USAGE = `usage: mailfleet <command>
  relay --config FILE        run a relay
  relay --dev                run a relay on the embedded loopback default (npm start)
  operator [flags]           run the operator (see docs/operator.md)
  config check FILE [--schema-only]  validate a relay config and the files it names (exit 1 with the errors)
  config schema              print the JSON Schema of the relay config
  hash-password              read a password on stdin, print its scrypt hash
  suppression list   (--config FILE | --data-dir DIR)
  suppression remove ADDRESS (--config FILE | --data-dir DIR)
`;

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8').replace(/\r?\n$/, '');
}

export async function run(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  switch (cmd) {
    case 'relay': {
      const { values } = parseArgs({ args: rest, options: { config: { type: 'string', short: 'c' }, dev: { type: 'boolean' } } });
      const { runRelay } = await import('./relay.ts');
      return runRelay(values.config, values.dev ?? false);
    }
    case 'operator': {
      const { runOperator } = await import('../operator/main.ts');
      return runOperator(rest);
    }
    case 'config': {
      const schemaOnly = rest.includes('--schema-only');
      const [sub, file] = rest.filter((a) => a !== '--schema-only');
      if (sub === 'schema') {
        process.stdout.write(`${JSON.stringify(z.toJSONSchema(relayConfigSchema, { io: 'input', unrepresentable: 'any' }), null, 2)}\n`);
        return 0;
      }
      if (sub === 'check' && file) {
        try {
          // A full check also reads every referenced file (hashes, keys); --schema-only
          // validates a config written for another machine.
          const cfg = loadConfigFile(file);
          if (!schemaOnly) buildRuntime(cfg);
          process.stdout.write(`${file}: ok\n`);
          return 0;
        } catch (err) {
          process.stderr.write(`${err instanceof ConfigError ? err.message : (err as Error).message}\n`);
          return 1;
        }
      }
      process.stderr.write(USAGE);
      return 2;
    }
    case 'hash-password': {
      const pw = process.stdin.isTTY ? '' : await readStdin();
      if (!pw) { process.stderr.write('give the password on stdin: echo -n secret | mailfleet hash-password\n'); return 2; }
      process.stdout.write(`${await hashPassword(pw)}\n`);
      return 0;
    }
    case 'suppression': {
      const { values, positionals } = parseArgs({ args: rest, allowPositionals: true, options: { config: { type: 'string', short: 'c' }, 'data-dir': { type: 'string' } } });
      const dataDir = values['data-dir'] ?? (values.config ? loadConfigFile(values.config).dataDir : undefined);
      const [sub, address] = positionals;
      if (!dataDir || (sub !== 'list' && sub !== 'remove') || (sub === 'remove' && !address)) { process.stderr.write(USAGE); return 2; }
      const { listSuppressions, removeSuppression } = await import('../relay/suppression/index.ts');
      if (sub === 'list') {
        for (const e of await listSuppressions(dataDir)) {
          process.stdout.write(`${e.address}\t${new Date(e.addedAt).toISOString()}\texpires ${new Date(e.expiresAt).toISOString()}\t${e.code ?? ''}\t${e.reason}\n`);
        }
        return 0;
      }
      const removed = await removeSuppression(dataDir, address!);
      process.stdout.write(removed ? `removed ${address}\n` : `${address} was not suppressed\n`);
      return removed ? 0 : 1;
    }
    default:
      process.stderr.write(USAGE);
      return cmd === undefined || cmd === 'help' || cmd === '--help' ? 0 : 2;
  }
}

