// RFC 6531 at delivery. nodemailer adds the SMTPUTF8 parameter by itself when the next hop
// announces the extension, but sends a non-ASCII address without it when the hop does not,
// which RFC 6531 §3.5 forbids. So before such an envelope goes out, the hop's EHLO reply
// is read on a session of its own (hop-probe.ts: same TLS and EHLO name as the pool's;
// cached per target), and the recipients the hop cannot take fail permanently with
// 553 5.6.7 (RFC 6531 §3.5, RFC 6533 "non-ASCII addresses not permitted").

const NON_ASCII = /[^\x00-\x7f]/;

/**
 * The recipients that need SMTPUTF8: all of them when the sender address is non-ASCII
 * (it is in the MAIL command of the one transaction), else those with non-ASCII addresses.
 */
export function needingSmtpUtf8(from: string, recipients: string[]): string[] {
  return NON_ASCII.test(from) ? recipients : recipients.filter((r) => NON_ASCII.test(r));
}

export const NO_SMTPUTF8 = { status: 'failed', code: 553, enhanced: '5.6.7' } as const;

export function noSmtpUtf8Response(remote: string): string {
  return `${remote} does not announce SMTPUTF8, which the non-ASCII address(es) of this message require (RFC 6531 section 3.5)`;
}
