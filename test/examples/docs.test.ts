// docs/emailrelay.md and docs/senderdomain.md carry a field table generated from crds/:
// every spec field of the CRD is listed, and every listed field exists (so the pages cannot
// drift from the schema the API server enforces).
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import YAML from 'yaml';

const repoRoot = path.resolve(import.meta.dirname, '../..');

/** Dotted spec paths as the tables write them: arrays of objects as `a[].b`, maps as `a.<key>.b`. */
function specPaths(s: any, p = '', depth = 0, out: string[] = []): string[] {
  if (p) out.push(p);
  if (depth >= 5) return out;
  const props = s.type === 'array' ? s.items?.properties : s.properties;
  for (const [k, v] of Object.entries(props ?? {})) specPaths(v, p ? `${p}${s.type === 'array' ? '[]' : ''}.${k}` : k, depth + 1, out);
  for (const [k, v] of Object.entries(s.additionalProperties?.properties ?? {})) specPaths(v, `${p}.<key>.${k}`, depth + 1, out);
  return out;
}

describe('resource pages match the CRDs', () => {
  for (const [doc, crd] of [['emailrelay.md', 'emailrelays.mailfleet.io.yaml'], ['senderdomain.md', 'senderdomains.mailfleet.io.yaml']] as const) {
    it(`docs/${doc} lists exactly the spec fields of crds/${crd}`, () => {
      const schema = YAML.parse(fs.readFileSync(path.join(repoRoot, 'crds', crd), 'utf8')).spec.versions[0].schema.openAPIV3Schema.properties.spec;
      const text = fs.readFileSync(path.join(repoRoot, 'docs', doc), 'utf8');
      const table = text.slice(text.indexOf('## Fields'));
      const listed = [...table.matchAll(/^\| `([^`]+)` \|/gm)].map((m) => m[1]!);
      const want = specPaths(schema);
      expect(want.length).toBeGreaterThan(20);
      expect(want.filter((p) => !listed.includes(p)), 'in the CRD, missing from the page').toEqual([]);
      expect(listed.filter((p) => !want.includes(p)), 'on the page, not in the CRD').toEqual([]);
    });
  }
});
