// The Argo CD health check (charts/mailfleet/files/argocd/health.lua, documented in
// docs/gitops.md) on sample objects, run by a real Lua interpreter; the real-status half is in
// examples.test.ts, where the operator reconciles the examples on a control plane.
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { haveTools } from '../support/tools.ts';
import { argoHealth, HEALTH_LUA, kstatus } from './gitops.ts';

const haveLua = haveTools('gitops-lua', ['lua5.4']);

const cond = (type: string, status: string, observedGeneration = 3, message = `${type} is ${status}`) =>
  ({ type, status, observedGeneration, reason: 'R', message, lastTransitionTime: '2026-01-01T00:00:00Z' });
const obj = (kind: string, generation: number, status?: Record<string, unknown>) =>
  ({ apiVersion: 'mailfleet.io/v1alpha1', kind, metadata: { name: 'x', namespace: 'ns', generation }, spec: {}, ...(status ? { status } : {}) });

describe.skipIf(!haveLua)('Argo CD health Lua', () => {
  for (const kind of ['EmailRelay', 'SenderDomain']) {
    it(`${kind}: Healthy only when Ready=True for the current generation`, () => {
      expect(argoHealth(obj(kind, 3, { observedGeneration: 3, conditions: [cond('Ready', 'True', 3, '2/2 pods ready'), cond('Degraded', 'False')] })))
        .toEqual({ status: 'Healthy', message: '2/2 pods ready' });
      // the spec changed and the operator has not caught up: not healthy yet
      expect(argoHealth(obj(kind, 4, { observedGeneration: 3, conditions: [cond('Ready', 'True')] })))
        .toEqual({ status: 'Progressing', message: 'Waiting for the operator to observe generation 4' });
      // status.observedGeneration current but the Ready condition is older
      expect(argoHealth(obj(kind, 4, { observedGeneration: 4, conditions: [cond('Ready', 'True', 3)] })).status).toBe('Progressing');
    });

    it(`${kind}: Progressing without status, while not Ready; Degraded when Degraded=True`, () => {
      expect(argoHealth(obj(kind, 1)).status).toBe('Progressing');
      expect(argoHealth(obj(kind, 1, { observedGeneration: 1 })).status).toBe('Progressing');
      expect(argoHealth(obj(kind, 3, { observedGeneration: 3, conditions: [cond('Ready', 'False', 3, '1/2 pods ready'), cond('Progressing', 'True')] })))
        .toEqual({ status: 'Progressing', message: '1/2 pods ready' });
      expect(argoHealth(obj(kind, 3, { observedGeneration: 3, conditions: [cond('Ready', 'False'), cond('Degraded', 'True', 3, 'tls.issuerRef is set but cert-manager is not installed')] })))
        .toEqual({ status: 'Degraded', message: 'tls.issuerRef is set but cert-manager is not installed' });
      // a Degraded of an older generation does not condemn a fixed spec
      expect(argoHealth(obj(kind, 4, { observedGeneration: 4, conditions: [cond('Ready', 'False', 4), cond('Degraded', 'True', 3)] })).status).toBe('Progressing');
    });
  }

  it('is the script docs/gitops.md shows, verbatim', () => {
    const doc = fs.readFileSync(path.resolve(import.meta.dirname, '../../docs/gitops.md'), 'utf8');
    const lua = fs.readFileSync(HEALTH_LUA, 'utf8');
    const indented = lua.trimEnd().split('\n').map((l) => (l ? `    ${l}` : '')).join('\n');
    expect(doc).toContain(indented); // inside the argocd-cm YAML block
  });
});

describe('kstatus generic rules (transcribed)', () => {
  it('Current once the generation is observed unless Reconciling/Stalled say otherwise', () => {
    expect(kstatus(obj('EmailRelay', 2, { observedGeneration: 1 }))).toBe('InProgress');
    expect(kstatus(obj('EmailRelay', 2, { observedGeneration: 2, conditions: [cond('Ready', 'True', 2)] }))).toBe('Current');
    expect(kstatus(obj('EmailRelay', 2, { observedGeneration: 2, conditions: [cond('Reconciling', 'True', 2)] }))).toBe('InProgress');
    expect(kstatus(obj('EmailRelay', 2, { observedGeneration: 2, conditions: [cond('Stalled', 'True', 2)] }))).toBe('Failed');
  });
});
