// The image-override rule as a pure function: spec.image is refused unless the operator
// allows overrides; the message says what to do on both sides and survives a hostile value.
import { describe, expect, it } from 'vitest';
import { IMAGE_OVERRIDE_NOT_ALLOWED, imageOverrideRefusal } from '../../operator/tenancy/image-override.ts';

describe('imageOverrideRefusal', () => {
  it('lets a relay without spec.image through, allowed or not', () => {
    expect(imageOverrideRefusal({}, false)).toBeUndefined();
    expect(imageOverrideRefusal({ image: undefined }, true)).toBeUndefined();
  });
  it('refuses spec.image by default, naming the image, the flag and the chart value', () => {
    const m = imageOverrideRefusal({ image: 'registry.example/evil:1' }, false);
    expect(m).toMatch(/^spec\.image is set \("registry\.example\/evil:1"\) but this operator does not allow image overrides/);
    expect(m).toContain('--allow-image-override=true');
    expect(m).toContain('allowImageOverride: true');
    expect(m).toMatch(/nothing was rendered/);
    expect(IMAGE_OVERRIDE_NOT_ALLOWED).toBe('ImageOverrideNotAllowed');
  });
  it('honours spec.image when allowed', () => {
    expect(imageOverrideRefusal({ image: 'registry.example/relay:2' }, true)).toBeUndefined();
  });
  it('quotes a hostile value and bounds its length', () => {
    const m = imageOverrideRefusal({ image: `a\nb"${'x'.repeat(5000)}` }, false)!;
    expect(m).not.toContain('\n');
    expect(m.length).toBeLessThan(800);
  });
});
