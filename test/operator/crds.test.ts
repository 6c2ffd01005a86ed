// crds/*.yaml must be exactly what operator/api/*.ts generates: one source, no drift.
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import YAML from 'yaml';
import { crdDir, renderCrds } from '../../operator/api/generate.ts';

describe('CRDs', () => {
  it('match the zod schemas (run npm run crds:generate after changing operator/api)', () => {
    for (const { file, text } of renderCrds()) {
      expect(fs.readFileSync(path.join(crdDir, file), 'utf8'), `${file} is stale: npm run crds:generate`).toBe(text);
    }
  });
  it('are structural: no additionalProperties beside properties, no JSON-Schema-only keywords', () => {
    const walk = (n: unknown, at: string): void => {
      if (!n || typeof n !== 'object') return;
      const o = n as Record<string, unknown>;
      expect(o.properties && o.additionalProperties !== undefined, `${at}: properties and additionalProperties`).toBeFalsy();
      for (const k of ['$schema', 'anyOf', 'oneOf', 'title']) expect(k in o && !at.endsWith('properties'), `${at}: ${k}`).toBe(false);
      for (const [k, v] of Object.entries(o)) walk(v, `${at}.${k}`);
    };
    for (const { text } of renderCrds()) walk(YAML.parse(text), '');
  });
});

describe('EmailRelay: autoscaling needs a persistent queue', () => {
  it('is refused by the operator schema and carried into the CRD as a CEL rule (crd-validation.test.ts runs it on the API server)', async () => {
    const { emailRelaySpec } = await import('../../operator/api/emailrelay.ts');
    const bad = emailRelaySpec.safeParse({ hostname: 'mail.example.net', autoscaling: { maxReplicas: 4 }, queue: { persistence: { enabled: false } } });
    expect(bad.success).toBe(false);
    expect(bad.error?.issues[0]).toMatchObject({ path: ['autoscaling'] });
    expect(bad.error?.issues[0]?.message).toMatch(/autoscaling needs queue.persistence.enabled/);
    expect(emailRelaySpec.safeParse({ hostname: 'mail.example.net', autoscaling: { maxReplicas: 4 } }).success).toBe(true);
    expect(emailRelaySpec.safeParse({ hostname: 'mail.example.net', queue: { persistence: { enabled: false } } }).success).toBe(true);
    const crd = YAML.parse(fs.readFileSync(path.join(crdDir, 'emailrelays.mailfleet.io.yaml'), 'utf8'));
    const spec = crd.spec.versions[0].schema.openAPIV3Schema.properties.spec;
    expect(spec['x-kubernetes-validations'].map((v: { message: string }) => v.message)).toContainEqual(expect.stringMatching(/autoscaling needs queue.persistence.enabled/));
  });
});
