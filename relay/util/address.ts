// The domain of an address, lower-cased ('' when there is none): how intake, the sender
// policy and the delivery runner group and check addresses.
export function domainOf(address: string): string {
  const at = address.lastIndexOf('@');
  return at < 0 ? '' : address.slice(at + 1).toLowerCase();
}
