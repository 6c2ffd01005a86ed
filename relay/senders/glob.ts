// Local-part wildcards ('*' any run, '?' one character), case-insensitive, matched without
// a regular expression. A glob compiled to a regex backtracks: "*a*a*a*a*a*a*a*a*a!"
// against 64 a's froze the event loop. This is the two-pointer matcher: on a mismatch it
// only moves the last '*' one step on, so the work is at most pattern × subject steps
// (both ≤ 64 characters by the schema), never exponential.
export class LocalPartGlob {
  readonly pattern: string;
  readonly #p: string;

  constructor(pattern: string) {
    this.pattern = pattern;
    // Runs of '*' match what one '*' matches; collapsing them keeps the bound tight.
    this.#p = pattern.toLowerCase().replace(/\*+/g, '*');
  }

  test(subject: string): boolean {
    const p = this.#p;
    const s = subject.toLowerCase();
    let pi = 0;
    let si = 0;
    let star = -1; // index in p of the last '*' seen
    let mark = 0; // index in s where that '*' started matching
    // Bounded: each turn advances si, or advances pi past a '*', or moves mark (≤ s.length) forward.
    while (si < s.length) {
      if (pi < p.length && (p[pi] === '?' || p[pi] === s[si])) {
        pi++;
        si++;
      } else if (pi < p.length && p[pi] === '*') {
        star = pi++;
        mark = si;
      } else if (star >= 0) {
        pi = star + 1;
        si = ++mark;
      } else {
        return false;
      }
    }
    while (pi < p.length && p[pi] === '*') pi++;
    return pi === p.length;
  }
}
