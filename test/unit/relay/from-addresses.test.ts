// The From addresses the alignment check reads: a fast path for plain addr-specs
// (relay/senders/headers.ts) must give exactly what nodemailer's addressparser gives, or
// a crafted From could read differently to the check than to the parser it stands for.
import addressparser from 'nodemailer/lib/addressparser';
import { describe, expect, it } from 'vitest';
import { bareAtSigns, fromValueAddresses } from '../../../relay/senders/headers.ts';
import { seededRandom } from '../../support/random.ts';

function byAddressparser(value: string): string[] {
  return addressparser(value, { flatten: true }).flatMap((a) => (a.address ? [a.address] : []));
}

describe('From field addresses', () => {
  it('reads plain and tricky values as addressparser does', () => {
    const values = [
      ' app@example.test', ' <app@example.test>', '<app@example.test>', '\t<a.b.c@d.e.test>\t ', " o'brien+tag@x.test",
      ' "Bank CEO" <ceo@bank.test>', ' ceo@bank.test <app@example.test>', ' app@example.test, ceo@bank.test',
      ' <app@example.test', ' app@example.test>', ' <<app@example.test>>', ' app@@example.test', ' .app@example.test',
      ' app.@example.test', ' app..x@example.test', ' app@example..test', ' (comment) app@example.test', ' app@example.test (c)',
      ' group: a@b.test, c@d.test;', ' "x@y.test"@example.test', ' =?utf-8?q?x?=@d.test', ' app@[127.0.0.1]', ' app', ' @example.test',
      ' app@example.test\r\n', ' <app@example.test> <ceo@bank.test>', ' app@example.test ceo@bank.test', '',
    ];
    for (const v of values) expect(fromValueAddresses(v), JSON.stringify(v)).toEqual(byAddressparser(v));
  });

  it('agrees with addressparser on 20,000 random values built from address characters', () => {
    const alphabet = ['a', 'b', 'Z', '0', '.', '@', '<', '>', ' ', '\t', '"', ',', ';', ':', '(', ')', '\\', '[', ']', "'", '+', '=', '?', '-', '_', '~', '{', '|', '}'];
    const random = seededRandom(9);
    for (let i = 0; i < 20_000; i++) {
      let v = '';
      const len = 1 + Math.floor(random() * 16);
      for (let j = 0; j < len; j++) v += alphabet[Math.floor(random() * alphabet.length)];
      // most random strings miss the fast path: also build ones close to it
      if (i % 2 === 0) v = `${random() < 0.5 ? ' <' : ' '}${v.replace(/[ <>]/g, 'a')}@${random() < 0.5 ? 'x.test' : v}${random() < 0.5 ? '>' : ''}`;
      expect(fromValueAddresses(v), `seed 9, value ${JSON.stringify(v)}`).toEqual(byAddressparser(v));
    }
  });

  it('counts the @ signs outside quoted strings, comments and domain literals', () => {
    const cases: Array<[string, number]> = [
      ['x@b.test', 1], ['<x@b.test> <ceo@bank.test>', 2], ['"ceo@bank.test" <x@b.test>', 1], ['x@b.test (ceo@bank.test)', 1],
      ['x@b.test (nested (ceo@bank.test) comment)', 1], ['"a\\"@b" <x@b.test>', 1], ['(a\\)@b) x@b.test', 1], ['"x@y"@b.test', 1],
      ['a@[1@2]', 1], ['g: a@b.test, c@d.test;', 2], ['<@route.test:x@b.test>', 2], ['', 0],
    ];
    for (const [value, n] of cases) expect(bareAtSigns(value), value).toBe(n);
  });
});
