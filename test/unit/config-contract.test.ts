// The relay config is the contract between operator and relay, so it holds two rules for
// every object in it, walked over the JSON Schema that `mailfleet config schema` prints:
// it is strict (a misspelt key is an error naming it, see config.test.ts) and every
// property says what it is.
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { relayConfigSchema } from '../../relay/config/schema.ts';

type Json = Record<string, unknown>;

/** Every object node of a JSON Schema with its path, e.g. delivery.smarthosts[].auth. */
function objectNodes(node: unknown, path = '(root)', out: { path: string; node: Json }[] = []): { path: string; node: Json }[] {
  if (Array.isArray(node)) { node.forEach((n) => objectNodes(n, path, out)); return out; }
  if (!node || typeof node !== 'object') return out;
  const n = node as Json;
  if (n.properties) out.push({ path, node: n });
  for (const [k, v] of Object.entries(n)) {
    if (k === 'properties') {
      for (const [name, sub] of Object.entries(v as Json)) objectNodes(sub, path === '(root)' ? name : `${path}.${name}`, out);
    } else if (k === 'items') objectNodes(v, `${path}[]`, out);
    else if (k === 'additionalProperties') objectNodes(v, `${path}{}`, out);
    else if (typeof v === 'object') objectNodes(v, path, out);
  }
  return out;
}

const jsonSchema = z.toJSONSchema(relayConfigSchema, { io: 'input', unrepresentable: 'any' });
const nodes = objectNodes(jsonSchema);

describe('the relay config contract', () => {
  it('walks the whole tree (the walk itself finds the nested objects)', () => {
    const paths = nodes.map((n) => n.path);
    for (const p of ['(root)', 'listeners[]', 'delivery', 'delivery.smarthosts[].auth', 'domains[].dkim.keys[]', 'rateLimits.destinations{}', 'webhooks[]', 'http']) {
      expect(paths).toContain(p);
    }
  });

  it('describes every property of every object', () => {
    const undescribed = nodes.flatMap(({ path, node }) => Object.entries(node.properties as Json)
      .filter(([, p]) => typeof (p as Json).description !== 'string' || ((p as Json).description as string).length < 3)
      .map(([name]) => (path === '(root)' ? name : `${path}.${name}`)));
    expect(undescribed).toEqual([]);
  });

  it('makes every object strict', () => {
    expect(nodes.filter(({ node }) => node.additionalProperties !== false).map((n) => n.path)).toEqual([]);
  });
});
