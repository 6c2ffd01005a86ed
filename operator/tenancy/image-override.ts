// Who picks the code relays run. An EmailRelay's spec.image would let anyone who may edit
// the EmailRelay run any image under the relay's ServiceAccount, next to the credentials the
// operator mounts (DKIM keys, smarthost passwords). So the platform decides: spec.image is
// honoured only when the operator was started with --allow-image-override (chart value
// allowImageOverride). Otherwise the relay is refused, not rendered with the default image:
// silently running something other than what the spec says would hide the refusal, and
// roll a running relay onto an image its owner did not ask for.

export const IMAGE_OVERRIDE_NOT_ALLOWED = 'ImageOverrideNotAllowed';

/** The refusal message, or undefined when the relay may be rendered. */
export function imageOverrideRefusal(spec: { image?: string | undefined }, allowed: boolean): string | undefined {
  if (spec.image === undefined || allowed) return undefined;
  return `spec.image is set (${JSON.stringify(spec.image).slice(0, 300)}) but this operator does not allow image overrides: `
    + 'remove spec.image to run the platform\'s relay image, or ask the platform team to start the operator with '
    + '--allow-image-override=true (chart value allowImageOverride: true); nothing was rendered for this relay';
}
