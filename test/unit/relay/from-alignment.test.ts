// Header From alignment with the envelope sender's domain (strict, relaxed, off).
import { describe, expect, it } from 'vitest';
import { aligned } from '../../../relay/senders/domains.ts';

describe('header From alignment', () => {
  it('relaxed: same domain or a subdomain; a parent only when served; never a bare suffix', () => {
    const served = (d: string) => d === 'example.com';
    expect(aligned('example.com', 'example.com', 'strict')).toBe(true);
    expect(aligned('news.example.com', 'example.com', 'strict')).toBe(false);
    expect(aligned('news.example.com', 'example.com', 'relaxed')).toBe(true);
    expect(aligned('example.com', 'bounces.example.com', 'relaxed', served)).toBe(true);
    expect(aligned('com', 'example.com', 'relaxed', served)).toBe(false);
    expect(aligned('test', 'example.test', 'relaxed')).toBe(false);
    expect(aligned('bank.test', 'example.test', 'relaxed', served)).toBe(false);
    expect(aligned('bank.test', 'example.test', 'off')).toBe(true);
  });
});
